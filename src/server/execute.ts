/**
 * Runs one job to its end on this machine: marks it running, forks the runner (runner.ts), relays
 * progress, honours cancel requests, and writes the final record. Shared by the embedded queue and
 * the Redis worker. Exactly once: a job whose record is already terminal is never run again (a
 * redelivered job after a worker died between finishing and acknowledging is a no-op), and only
 * this function marks a record completed.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { hostname } from 'node:os';
import { fileURLToPath } from 'node:url';
import { TERMINAL, type JobProgress, type JobRecord, type Storage } from './storage.js';
import type { RunnerMessage, RunnerSettings } from './runner.js';

const RUNNER = fileURLToPath(new URL('./runner.js', import.meta.url));

export interface ExecuteHooks {
  /** A status change (running, completed, …), with the record as written. */
  onStatus?(r: JobRecord): void;
  onProgress?(id: string, p: JobProgress): void;
}

export interface ExecuteOptions extends RunnerSettings {
  retentionMs: number;
  /** Threads for libtorch in the runner (IMMUNIZE_NUM_THREADS), default: inherited. */
  threads?: number;
  /** How often the cancel marker is looked at while running. */
  cancelPollMs?: number;
}

/** The child died without reporting (killed, out of memory, crashed): the job may be retried. */
export class RunnerCrash extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RunnerCrash';
  }
}

export type Outcome = 'completed' | 'failed' | 'canceled' | 'skipped';

export interface Execution {
  readonly done: Promise<Outcome>;
  /** Stops the runner now (cancel). */
  kill(): void;
  /** Stops the runner for a shutdown: the job is not canceled, `done` rejects and the job stays open for a restart. */
  stop(): void;
}

function finish(r: JobRecord, status: 'completed' | 'failed' | 'canceled', retentionMs: number): JobRecord {
  const now = Date.now();
  return { ...r, status, finishedAt: new Date(now).toISOString(), expiresAt: new Date(now + retentionMs).toISOString() };
}

export function execute(storage: Storage, id: string, o: ExecuteOptions, hooks: ExecuteHooks = {}): Execution {
  let child: ChildProcess | null = null;
  let killed = false;
  let stopping = false;
  const kill = (): void => {
    killed = true;
    child?.kill('SIGKILL');
  };
  const stop = (): void => {
    stopping = true;
    child?.kill('SIGKILL');
  };
  const done = (async (): Promise<Outcome> => {
    const r0 = storage.read(id);
    if (r0 === null || TERMINAL.has(r0.status)) return 'skipped';
    if (storage.cancelRequested(id)) {
      const c = storage.update(id, (r) => (TERMINAL.has(r.status) ? null : finish(r, 'canceled', o.retentionMs)));
      if (c) hooks.onStatus?.(c);
      return 'canceled';
    }
    const started = storage.update(id, (r) => ({ ...r, status: 'running', startedAt: new Date().toISOString(), attempts: r.attempts + 1, worker: `${hostname()}:${process.pid}`, progress: null, error: null }));
    if (started === null) return 'skipped';
    hooks.onStatus?.(started);

    const env: NodeJS.ProcessEnv = { ...process.env, IMMUNIZE_RUNNER: JSON.stringify({ device: o.device, maxPixels: o.maxPixels, models: o.models } satisfies RunnerSettings), IMMUNIZE_QUIET: '1' };
    if (o.threads !== undefined) env['IMMUNIZE_NUM_THREADS'] = String(o.threads);
    const c = fork(RUNNER, [storage.root, id], { env, stdio: ['ignore', 'ignore', 'inherit', 'ipc'], execArgv: [] });
    child = c;
    if (killed || stopping) c.kill('SIGKILL');
    const t0 = performance.now();
    let lastWrite = 0;
    let final: RunnerMessage | null = null;
    const poll = setInterval(() => {
      if (storage.cancelRequested(id)) kill();
    }, o.cancelPollMs ?? 250);
    c.on('message', (m: RunnerMessage) => {
      if (m.type !== 'progress') {
        final = m;
        return;
      }
      const fraction = m.steps > 0 ? Math.min(1, m.step / m.steps) : 0;
      const elapsed = performance.now() - t0;
      const p: JobProgress = { step: m.step, steps: m.steps, loss: m.loss, fraction, etaMs: m.step > 0 && m.step < m.steps ? Math.round((elapsed / m.step) * (m.steps - m.step)) : m.step >= m.steps ? 0 : null };
      hooks.onProgress?.(id, p);
      const now = performance.now();
      if (now - lastWrite > 1000 || m.step >= m.steps) {
        lastWrite = now;
        storage.update(id, (r) => (r.status === 'running' ? { ...r, progress: p } : null));
      }
    });
    const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => c.on('exit', (code, signal) => res({ code, signal })));
    clearInterval(poll);
    child = null;
    const msg = final as RunnerMessage | null;
    if (stopping) throw new RunnerCrash(`job ${id} stopped by a shutdown`);
    if (killed || storage.cancelRequested(id)) {
      const rec = storage.update(id, (r) => (TERMINAL.has(r.status) ? null : finish({ ...r }, 'canceled', o.retentionMs)));
      if (rec) hooks.onStatus?.(rec);
      return 'canceled';
    }
    if (msg?.type === 'done') {
      const rec = storage.update(id, (r) => (TERMINAL.has(r.status) ? null : finish({ ...r, completions: r.completions + 1, result: msg.result, progress: r.progress === null ? null : { ...r.progress, fraction: 1, etaMs: 0 } }, 'completed', o.retentionMs)));
      if (rec) hooks.onStatus?.(rec);
      return 'completed';
    }
    if (msg?.type === 'error') {
      const rec = storage.update(id, (r) => (TERMINAL.has(r.status) ? null : finish({ ...r, error: { code: msg.code, message: msg.message } }, 'failed', o.retentionMs)));
      if (rec) hooks.onStatus?.(rec);
      return 'failed';
    }
    throw new RunnerCrash(`the runner for job ${id} ended without a result (exit ${exit.code ?? exit.signal})`);
  })();
  return { done, kill, stop };
}

/** Marks a job failed after its runner kept crashing. */
export function failCrashed(storage: Storage, id: string, message: string, retentionMs: number): JobRecord | null {
  return storage.update(id, (r) => (TERMINAL.has(r.status) ? null : finish({ ...r, error: { code: 'E_WORKER_CRASHED', message } }, 'failed', retentionMs)));
}

/** Puts a job whose runner crashed back in the queued state (it will be retried). */
export function requeue(storage: Storage, id: string): JobRecord | null {
  return storage.update(id, (r) => (TERMINAL.has(r.status) ? null : { ...r, status: 'queued', progress: null }));
}
