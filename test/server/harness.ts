/** Test harness for the service: a real redis-server, `immunize serve`/`worker` processes, small photos. */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, join, relative } from 'node:path';
import { after } from 'node:test';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import type { ApiConfig } from '../../src/server/api.js';

export const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
export const BIN = join(ROOT, 'bin', 'immunize.js');
export const SHARED = process.env['IMMUNIZE_SHARED'] ?? join(ROOT, '..', 'shared');
export const TAEF2 = join(SHARED, 'models', 'taef2-hf', 'taef2.safetensors');
/**
 * TAEF2 served as `--model PATH`: its id is then the file name, the name `immunize protect --model
 * PATH` writes in the XMP label, so the service's PNG and the command's have the same bytes.
 */
export const TAEF2_ID = basename(TAEF2);
export const IMAGES = join(SHARED, 'images');
export const REDIS = '/usr/bin/redis-server';
/** Fixed date in the XMP label and sidecar, so the CLI and the service write the same bytes. */
export const SOURCE_DATE_EPOCH = '1700000000';

export const childEnv = (extra: Record<string, string> = {}): NodeJS.ProcessEnv => ({
  ...process.env,
  OMP_WAIT_POLICY: 'passive',
  IMMUNIZE_NUM_THREADS: '1',
  IMMUNIZE_QUIET: '1',
  SOURCE_DATE_EPOCH,
  ...extra,
});

/** Why a service test cannot run here, or null. Without CI a missing redis-server skips; in CI it fails. */
export function redisSkip(): string | false {
  if (existsSync(REDIS)) return false;
  if (process.env['CI']) throw new Error(`${REDIS} is missing but CI is set: install Debian's redis-server`);
  return `${REDIS} is not installed (apt-get install redis-server); skipping the Redis tests`;
}

export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (typeof a === 'object' && a !== null ? res(a.port) : rej(new Error('no port'))));
    });
  });
}

/** An in-process API's configuration for tests: no limits in the way (no rates, 100 steps), `overrides` on top. */
export function testApiConfig(overrides: Partial<ApiConfig> & Pick<ApiConfig, 'models'>): ApiConfig {
  return {
    keys: [],
    maxUploadBytes: 1_000_000,
    maxPixels: 1_000_000,
    maxSteps: 100,
    rateCreate: 0,
    rateRequests: 0,
    maxQueue: 100,
    retentionMs: 60_000,
    corsOrigins: [],
    version: 'test',
    ...overrides,
  };
}

export function tempDir(name: string): string {
  return mkdtempSync(join(tmpdir(), `immunize-${name}-`));
}

/** The arguments of `immunize serve` on a free port with `flags`, one thread and no rate limits. */
export function serveArgs(...flags: string[]): string[] {
  return [BIN, 'serve', '--port', '0', ...flags, '--threads', '1', '--rate-create', '0', '--rate-requests', '0'];
}

/** Starts a process and resolves with the first stdout line that parses as JSON. */
export function startJsonProcess(
  args: string[],
  env: NodeJS.ProcessEnv,
  log: string[] = [],
): Promise<{ proc: ChildProcess; hello: Record<string, unknown> }> {
  return new Promise((res, rej) => {
    const proc = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let buf = '';
    let done = false;
    proc.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      for (;;) {
        const i = buf.indexOf('\n');
        if (i < 0) break;
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        log.push(line);
        if (!done && line.startsWith('{')) {
          done = true;
          res({ proc, hello: JSON.parse(line) as Record<string, unknown> });
        }
      }
    });
    proc.stderr!.on('data', (d: Buffer) => log.push(d.toString()));
    proc.on('exit', (code) => {
      if (!done)
        rej(
          new Error(
            `${args.slice(0, 2).join(' ')} exited with ${code} before it was ready:\n${log.join('').slice(-3000)}`,
          ),
        );
    });
  });
}

/** Starts a private redis-server with an empty database, on `port` (a restart) or a free one. */
export async function startRedis(dir: string, port?: number): Promise<{ proc: ChildProcess; url: string }> {
  port ??= await freePort();
  const proc = spawn(
    REDIS,
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      dir,
      '--save',
      '',
      '--appendonly',
      'no',
      '--protected-mode',
      'yes',
    ],
    { stdio: 'ignore' },
  );
  const url = `redis://127.0.0.1:${port}`;
  for (let i = 0; i < 200; i++) {
    const r = spawnSync('redis-cli', ['-p', String(port), 'ping'], { encoding: 'utf8' });
    if (r.stdout?.trim() === 'PONG') return { proc, url };
    if (r.error !== undefined && i > 20) break; // no redis-cli: fall back to waiting on the port below
    await new Promise((r2) => setTimeout(r2, 50));
  }
  await new Promise((r2) => setTimeout(r2, 500));
  return { proc, url };
}

export function stop(proc: ChildProcess | null | undefined, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (!proc || proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((res) => {
    proc.once('exit', () => res());
    proc.kill(signal);
  });
}

/** A list for the processes a test file starts: each is killed (SIGKILL) after the file's tests. */
export function killedAfter(): ChildProcess[] {
  const procs: ChildProcess[] = [];
  after(async () => {
    for (const p of procs) await stop(p, 'SIGKILL');
  });
  return procs;
}

/** Small test photos: 64×64 crops of the shared photos (different content each). */
export async function makePhotos(dir: string, n: number, size = 64): Promise<string[]> {
  const sources = readdirSync(IMAGES)
    .filter((f) => /\.(png|jpe?g)$/i.test(f))
    .sort()
    .map((f) => join(IMAGES, f));
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const src = sources[i % sources.length]!;
    const meta = await sharp(src).metadata();
    const s = Math.min(meta.width!, meta.height!);
    const k = Math.floor(i / sources.length);
    const crop = Math.max(size, Math.floor(s / (2 + k)));
    const left = Math.min(meta.width! - crop, k * 17);
    const p = join(dir, `photo${String(i).padStart(2, '0')}.png`);
    await sharp(src).extract({ left, top: 0, width: crop, height: crop }).resize(size, size).png().toFile(p);
    out.push(p);
  }
  return out;
}

export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | null | undefined | false> | T | null | undefined | false,
  tries = 2400,
  everyMs = 100,
): Promise<T> {
  for (let i = 0; i < tries; i++) {
    const v = await fn();
    if (v !== null && v !== undefined && v !== false) return v;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Sends `sig` to each pid, skipping those that have already gone. */
export function signalAll(pids: readonly number[], sig: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, sig);
    } catch {
      /* exited meanwhile */
    }
  }
}

/**
 * Waits until `find` names something, freezes the processes `pids()` (SIGSTOP) and keeps it only
 * if `holds` is still true of it; otherwise thaws them and waits again. What was seen then cannot
 * change before the caller acts on the frozen processes (a SIGKILL "in the middle of a job").
 */
export async function freezeWhen<T>(
  what: string,
  find: () => T | null | undefined | false,
  holds: (found: T) => boolean,
  pids: () => number[],
): Promise<{ found: T; frozen: number[] }> {
  for (;;) {
    const found = await waitFor(what, find, 6000, 20);
    const frozen = pids();
    signalAll(frozen, 'SIGSTOP');
    if (holds(found)) return { found, frozen };
    signalAll(frozen, 'SIGCONT');
  }
}

/** Pids of the processes whose parent is `pid` (from /proc; empty where /proc is absent). */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  let names: string[] = [];
  try {
    names = readdirSync('/proc').filter((n) => /^\d+$/.test(n));
  } catch {
    return out;
  }
  for (const n of names) {
    try {
      // "pid (comm) state ppid …": comm may hold spaces and parentheses, so parse after the last ')'.
      const stat = readFileSync(`/proc/${n}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(n));
    } catch {
      /* exited meanwhile */
    }
  }
  return out;
}

/** Whether a process exists (and is not a zombie). */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  }
}

/** How often each job id appears in a runner start log (IMMUNIZE_RUNNER_START_LOG). */
export function startsById(file: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const line of readFileSync(file, 'utf8').split('\n').filter(Boolean)) {
    const id = String((JSON.parse(line) as { id: unknown }).id);
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return counts;
}

/**
 * The multipart form of POST /v1/immunizations: `photo` as the PNG field `image` (sent as `name`),
 * then `mask` (a PNG path) when given, then `fields` in their order.
 */
export function photoForm(
  photo: string,
  fields: Record<string, string> = {},
  { name = basename(photo), mask }: { name?: string; mask?: string } = {},
): FormData {
  const form = new FormData();
  form.set('image', new Blob([readFileSync(photo)], { type: 'image/png' }), name);
  if (mask !== undefined) form.set('mask', new Blob([readFileSync(mask)], { type: 'image/png' }), basename(mask));
  for (const [k, v] of Object.entries(fields)) form.set(k, v);
  return form;
}

/** Creates a job on the service at `url` from `form`, asserts that it is accepted (202) and returns its id. */
export async function createJob(url: string, form: FormData): Promise<string> {
  const res = await fetch(`${url}/v1/immunizations`, { method: 'POST', body: form });
  assert.equal(res.status, 202, await res.clone().text());
  return ((await res.json()) as { id: string }).id;
}

/** Polls GET `url + path` (a job or a check) until its status is completed, failed or canceled. */
export function settled<T extends { status: string }>(
  url: string,
  path: string,
  what = `${path} to finish`,
  tries = 3000,
  everyMs = 200,
): Promise<T> {
  return waitFor(
    what,
    async () => {
      const r = (await (await fetch(`${url}${path}`)).json()) as T;
      return ['completed', 'failed', 'canceled'].includes(r.status) ? r : null;
    },
    tries,
    everyMs,
  );
}

/**
 * Runs `immunize protect` on the folder `photos` into the folder `out` with the options of a
 * service job (TAEF2, the fast preset, `steps`, `seed`) and `more`; asserts that it succeeded.
 */
export function protectFolder(photos: string, out: string, steps: string, seed: number, ...more: string[]): void {
  const r = spawnSync(
    process.execPath,
    [
      BIN,
      'protect',
      photos,
      '-o',
      out,
      '--model',
      TAEF2,
      '--steps',
      steps,
      '--seed',
      String(seed),
      '--preset',
      'fast',
      '--max-pixels',
      '16000000',
      ...more,
    ],
    { env: childEnv(), encoding: 'utf8' },
  );
  assert.equal(r.status, 0, r.stderr);
}

/** Asserts that job `id`'s served result.png has the bytes `protectFolder` wrote for `photo` into `out`. */
export async function assertServedAsProtect(
  url: string,
  id: string,
  photo: string,
  out: string,
  seed: number,
): Promise<void> {
  const cli = readFileSync(join(out, `${basename(photo, '.png')}.immunized.png`));
  const res = await fetch(`${url}/v1/immunizations/${id}/result.png`);
  assert.equal(res.status, 200);
  assert.ok(
    Buffer.from(await res.arrayBuffer()).equals(cli),
    `job ${id} (${basename(photo)}, seed ${seed}) differs from immunize protect`,
  );
}

/** Waits up to `ms` for `proc` to exit: its exit code (or signal name), or null if it is still running then. */
export function exitWithin(proc: ChildProcess, ms: number): Promise<number | string | null> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve(proc.exitCode ?? proc.signalCode);
  return new Promise((res) => {
    const timer = setTimeout(() => {
      proc.off('exit', onExit);
      res(null);
    }, ms);
    const onExit = (code: number | null, signal: NodeJS.Signals | null): void => {
      clearTimeout(timer);
      res(code ?? signal);
    };
    proc.once('exit', onExit);
  });
}

/**
 * Runs `immunize` with `args` that is expected to refuse to start: its exit code (null if it was
 * still running after `ms`, then it is killed) and everything it printed.
 */
export async function refusedStart(
  args: string[],
  env: NodeJS.ProcessEnv,
  ms = 30_000,
): Promise<{ code: number | string | null; output: string }> {
  const proc = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  proc.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const code = await exitWithin(proc, ms);
  if (code === null) await stop(proc, 'SIGKILL');
  return { code, output };
}

/**
 * Every file under `dir` (relative path → size, mtime and sha256): equal snapshots mean nothing was
 * touched. A storage lock file (`*.lock`) is compared by content only: its live holder touches it.
 */
export function snapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else {
        const s = statSync(p);
        const mtime = e.name.endsWith('.lock') ? '' : s.mtimeMs;
        out.set(relative(dir, p), `${s.size} ${mtime} ${createHash('sha256').update(readFileSync(p)).digest('hex')}`);
      }
    }
  };
  walk(dir);
  return out;
}
