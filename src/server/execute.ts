/**
 * Runs one job to its end on this machine: marks it running, hands it to a runner process
 * (runner.ts; kept between jobs, replaced when it is killed or crashes), relays progress, honours
 * cancel requests (by killing the runner), and writes the final record. Shared by the embedded queue and
 * the Redis worker. Exactly once: a job whose record is already terminal is never run again (a
 * redelivered job after a worker died between finishing and acknowledging is a no-op), and only
 * this function marks a record completed.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { hostname } from 'node:os';
import { fileURLToPath } from 'node:url';
import { TERMINAL, type JobProgress, type JobRecord, type Storage } from './storage.js';
import type { RunnerMessage, RunnerSettings, RunRequest } from './runner.js';

const RUNNER = fileURLToPath(new URL('./runner.js', import.meta.url));

/** The `worker` a running record names: this process as host:pid. */
export function workerLabel(): string {
  return `${hostname()}:${process.pid}`;
}

/** The host and pid of a record's `worker`, or null when it names none. */
export function parseWorkerLabel(label: string | null | undefined): { host: string; pid: number } | null {
  const m = /^(.*):(\d+)$/.exec(label ?? '');
  return m === null ? null : { host: m[1]!, pid: Number(m[2]) };
}
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

/**
 * Jobs one runner process runs before a fresh one replaces it (bounds what a leak could grow to).
 * $IMMUNIZE_RUNNER_MAX_JOBS overrides it; 1 starts a fresh process per job (the benchmark compares).
 */
export const RUNNER_JOBS = ((): number => {
  const v = Number(process.env['IMMUNIZE_RUNNER_MAX_JOBS']);
  return Number.isSafeInteger(v) && v >= 1 ? v : 50;
})();

interface Runner {
  proc: ChildProcess;
  key: string;
  jobs: number;
  /** True once the runner listens for jobs, false if it exited first. */
  ready: Promise<boolean>;
}

/** At most one idle runner per settings: a queue or a worker runs one job at a time. */
const idleRunners = new Map<string, Runner>();

function takeRunner(key: string, env: () => NodeJS.ProcessEnv): Runner {
  const r = idleRunners.get(key);
  idleRunners.delete(key);
  if (r !== undefined && r.proc.connected && r.proc.exitCode === null && r.proc.signalCode === null) {
    r.proc.ref();
    r.proc.channel?.ref();
    return r;
  }
  r?.proc.kill('SIGKILL');
  const proc = fork(RUNNER, [], { env: env(), stdio: ['ignore', 'ignore', 'inherit', 'ipc'], execArgv: [] });
  proc.on('error', () => {
    /* a failed kill or send; its exit ends the job */
  });
  const ready = new Promise<boolean>((res) => {
    const onMessage = (m: RunnerMessage): void => {
      if (m.type !== 'ready') return;
      proc.off('message', onMessage);
      res(true);
    };
    proc.on('message', onMessage);
    proc.once('exit', () => res(false));
  });
  return { proc, key, jobs: 0, ready };
}

/** Keeps a runner that finished its job for the next one; idle, it does not keep this process alive. */
function releaseRunner(r: Runner): void {
  if (r.jobs >= RUNNER_JOBS || !r.proc.connected || idleRunners.has(r.key)) {
    r.proc.kill('SIGKILL');
    return;
  }
  r.proc.unref();
  r.proc.channel?.unref();
  idleRunners.set(r.key, r);
}

/** Stops the idle runners (a shutdown). A runner whose parent dies exits by itself. */
export function closeRunners(): void {
  for (const r of idleRunners.values()) r.proc.kill('SIGKILL');
  idleRunners.clear();
}

function finish(r: JobRecord, status: 'completed' | 'failed' | 'canceled', retentionMs: number): JobRecord {
  const now = Date.now();
  return {
    ...r,
    status,
    finishedAt: new Date(now).toISOString(),
    expiresAt: new Date(now + retentionMs).toISOString(),
  };
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
    const started = storage.update(id, (r) => ({
      ...r,
      status: 'running',
      startedAt: new Date().toISOString(),
      attempts: r.attempts + 1,
      worker: workerLabel(),
      progress: null,
      error: null,
    }));
    if (started === null) return 'skipped';
    hooks.onStatus?.(started);

    const settings = JSON.stringify({
      device: o.device,
      maxPixels: o.maxPixels,
      models: o.models,
      ...(o.editing === undefined ? {} : { editing: o.editing }),
    } satisfies RunnerSettings);
    const runner = takeRunner(`${settings}|${o.threads ?? ''}`, () => {
      const env: NodeJS.ProcessEnv = { ...process.env, IMMUNIZE_RUNNER: settings, IMMUNIZE_QUIET: '1' };
      if (o.threads !== undefined) env['IMMUNIZE_NUM_THREADS'] = String(o.threads);
      return env;
    });
    const c = runner.proc;
    child = c;
    if (killed || stopping) c.kill('SIGKILL');
    const t0 = performance.now();
    let lastWrite = 0;
    const poll = setInterval(() => {
      if (storage.cancelRequested(id)) kill();
    }, o.cancelPollMs ?? 250);
    const onProgress = (m: Extract<RunnerMessage, { type: 'progress' }>): void => {
      const fraction = m.steps > 0 ? Math.min(1, m.step / m.steps) : 0;
      const elapsed = performance.now() - t0;
      const p: JobProgress = {
        step: m.step,
        steps: m.steps,
        loss: m.loss,
        fraction,
        etaMs:
          m.etaMs !== undefined
            ? m.etaMs
            : m.step > 0 && m.step < m.steps
              ? Math.round((elapsed / m.step) * (m.steps - m.step))
              : m.step >= m.steps
                ? 0
                : null,
      };
      hooks.onProgress?.(id, p);
      const now = performance.now();
      if (now - lastWrite > 1000 || m.step >= m.steps) {
        lastWrite = now;
        storage.update(id, (r) => (r.status === 'running' ? { ...r, progress: p } : null));
      }
    };
    // The job's end: its final message, or the runner's exit without one.
    let exit = '';
    const final = await new Promise<RunnerMessage | null>((res) => {
      const onMessage = (m: RunnerMessage): void => {
        if (m.type === 'progress') onProgress(m);
        else if (m.type === 'done' || m.type === 'error') end(m);
      };
      const onExit = (code: number | null, signal: NodeJS.Signals | null): void => {
        exit = String(code ?? signal);
        end(null);
      };
      const end = (m: RunnerMessage | null): void => {
        c.off('message', onMessage);
        c.off('exit', onExit);
        res(m);
      };
      c.on('message', onMessage);
      c.on('exit', onExit);
      if (c.exitCode !== null || c.signalCode !== null) onExit(c.exitCode, c.signalCode);
      void runner.ready.then((ok) => {
        // With a callback, a runner that died meanwhile is an error here, not an unhandled 'error' event.
        if (ok && !killed && !stopping && c.connected)
          c.send(
            {
              type: 'run',
              root: storage.root,
              id,
              ...(started.parameters === undefined ? {} : { parameters: started.parameters }),
            } satisfies RunRequest,
            (e) => {
              if (e) c.kill('SIGKILL');
            },
          );
      });
    });
    clearInterval(poll);
    child = null;
    runner.jobs++;
    if (final !== null && !killed && !stopping) releaseRunner(runner);
    else c.kill('SIGKILL');
    const msg = final;
    if (stopping) throw new RunnerCrash(`job ${id} stopped by a shutdown`);
    if (killed || storage.cancelRequested(id)) {
      const rec = storage.update(id, (r) =>
        TERMINAL.has(r.status) ? null : finish({ ...r }, 'canceled', o.retentionMs),
      );
      if (rec) hooks.onStatus?.(rec);
      return 'canceled';
    }
    if (msg?.type === 'done') {
      const rec = storage.update(id, (r) =>
        TERMINAL.has(r.status)
          ? null
          : finish(
              {
                ...r,
                completions: r.completions + 1,
                result: msg.result,
                progress: r.progress === null ? null : { ...r.progress, fraction: 1, etaMs: 0 },
              },
              'completed',
              o.retentionMs,
            ),
      );
      if (rec) hooks.onStatus?.(rec);
      return 'completed';
    }
    if (msg?.type === 'error') {
      const rec = storage.update(id, (r) =>
        TERMINAL.has(r.status)
          ? null
          : finish({ ...r, error: { code: msg.code, message: msg.message } }, 'failed', o.retentionMs),
      );
      if (rec) hooks.onStatus?.(rec);
      return 'failed';
    }
    throw new RunnerCrash(`the runner for job ${id} ended without a result (exit ${exit})`);
  })();
  return { done, kill, stop };
}

/** Marks a job failed after its runner kept crashing. */
export function failCrashed(storage: Storage, id: string, message: string, retentionMs: number): JobRecord | null {
  return storage.update(id, (r) =>
    TERMINAL.has(r.status)
      ? null
      : finish({ ...r, error: { code: 'E_WORKER_CRASHED', message } }, 'failed', retentionMs),
  );
}

/** Puts a job whose runner crashed back in the queued state (it will be retried). */
export function requeue(storage: Storage, id: string): JobRecord | null {
  return storage.update(id, (r) => (TERMINAL.has(r.status) ? null : { ...r, status: 'queued', progress: null }));
}
