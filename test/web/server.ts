// Starts a real `immunize serve` (the CLI, as a user runs it) on a free loopback port: embedded
// queue, storage in a temporary folder, TAEF2 as the only model, no API keys (loopback), and the
// page from dist/web (registerWebPage, docs/web.md). It prints one JSON line with its address.
import { spawn } from 'node:child_process';
import { repoRoot } from '../helpers/shared.js';
import { serveArgs } from '../server/harness.js';
import { tempDir } from './harness.js';

export interface TestServer {
  url: string;
  /** The storage folder (kept by `kill`, so a new server can be started on it). */
  storage: string;
  /** kill -9: no clean shutdown, the storage left as it is. */
  kill(): Promise<void>;
  close(): Promise<void>;
}

/**
 * `extraArgs`: more `immunize serve` flags (e.g. `--edit-model` for the edit test). `o.storage` and
 * `o.port` start it on an existing storage and a given port (a restart); that storage is then the
 * caller's to remove.
 */
export async function startServer(
  modelPath: string,
  extraArgs: string[] = [],
  o: { storage?: string; port?: number } = {},
): Promise<TestServer> {
  const dir = o.storage === undefined ? tempDir('immunize-web-') : { path: o.storage, remove: () => {} };
  const child = spawn(
    process.execPath,
    serveArgs(
      '--host',
      '127.0.0.1',
      '--storage',
      dir.path,
      '--model',
      `taef2-hf=${modelPath}`,
      '--retention',
      '1h',
      ...(o.port === undefined ? [] : ['--port', String(o.port)]),
      ...extraArgs,
    ),
    { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'], env: { OMP_WAIT_POLICY: 'passive', ...process.env } },
  );
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => {
    stderr += b.toString();
  });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`immunize serve did not start in 60 s:\n${stderr}`)), 60_000);
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString();
      const line = out.split('\n').find((l) => l.startsWith('{') && l.includes('"listening"'));
      if (line) {
        clearTimeout(timer);
        resolve((JSON.parse(line) as { listening: string }).listening);
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`immunize serve exited with ${code}:\n${stderr}`));
    });
  });
  const exited = new Promise((r) => child.once('exit', r));
  return {
    url,
    storage: dir.path,
    kill: async () => {
      child.kill('SIGKILL');
      await exited;
    },
    close: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
        if (child.exitCode === null) child.kill('SIGKILL');
      }
      dir.remove();
    },
  };
}
