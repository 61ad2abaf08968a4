// Starts a real `immunize serve` (the CLI, as a user runs it) on a free loopback port: embedded
// queue, storage in a temporary folder, TAEF2 as the only model, no API keys (loopback), and the
// page from dist/web (registerWebPage, docs/web.md). It prints one JSON line with its address.
import { spawn } from 'node:child_process';
import { repoRoot } from '../helpers/shared.js';
import { serveArgs } from '../server/harness.js';
import { tempDir } from './harness.js';

export interface TestServer {
  url: string;
  close(): Promise<void>;
}

/** `extraArgs`: more `immunize serve` flags (e.g. `--edit-model` for the edit test). */
export async function startServer(modelPath: string, extraArgs: string[] = []): Promise<TestServer> {
  const dir = tempDir('immunize-web-');
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
  return {
    url,
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
