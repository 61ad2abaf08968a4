/**
 * Queues: where accepted jobs wait and how their progress comes back to the API.
 * - EmbeddedQueue (the default): in this process, one job at a time per device, recovered from the
 *   job records on start so a restart loses no accepted job.
 * - RedisQueue (redis-queue.ts): BullMQ on Redis, consumed by `immunize worker` processes.
 * Both emit 'status' (a record, on every status change) and 'progress' (id, progress).
 */
import { EventEmitter } from 'node:events';
import {
  closeRunners,
  execute,
  failCrashed,
  requeue,
  RunnerCrash,
  type Execution,
  type ExecuteOptions,
} from './execute.js';
import { TERMINAL, type JobProgress, type JobRecord, type Storage } from './storage.js';

export interface QueueCounts {
  queued: number;
  running: number;
}

export interface JobQueue {
  readonly kind: 'embedded' | 'redis';
  readonly events: EventEmitter<{ status: [JobRecord]; progress: [string, JobProgress] }>;
  /** Recovers jobs accepted before a restart. */
  start(): Promise<void>;
  enqueue(id: string): Promise<void>;
  /** Stops a queued or running job; the cancel marker is already written. */
  cancel(id: string): Promise<void>;
  counts(): Promise<QueueCounts>;
  /** 0-based place in the line while queued, when the queue can tell cheaply. */
  position(id: string): number | null;
  ready(): Promise<boolean>;
  close(): Promise<void>;
}

/** How many times a job whose runner crashed is started before it is marked failed. */
export const MAX_ATTEMPTS = 3;

export class EmbeddedQueue implements JobQueue {
  readonly kind = 'embedded' as const;
  readonly events = new EventEmitter<{ status: [JobRecord]; progress: [string, JobProgress] }>();
  private pending: string[] = [];
  private running: { id: string; exec: Execution } | null = null;
  private closed = false;
  private idle: Promise<void> = Promise.resolve();

  constructor(
    private readonly storage: Storage,
    private readonly options: ExecuteOptions,
  ) {}

  start(): Promise<void> {
    const open = this.storage
      .all()
      .filter((r) => !TERMINAL.has(r.status))
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
    for (const r of open) {
      // The API listens before the queue starts: a job created in between is already here.
      if (this.running?.id === r.id || this.pending.includes(r.id)) continue;
      if (r.status === 'running') requeue(this.storage, r.id);
      this.pending.push(r.id);
    }
    this.pump();
    return Promise.resolve();
  }

  enqueue(id: string): Promise<void> {
    if (!this.pending.includes(id) && this.running?.id !== id) this.pending.push(id);
    this.pump();
    return Promise.resolve();
  }

  cancel(id: string): Promise<void> {
    const i = this.pending.indexOf(id);
    if (i >= 0) this.pending.splice(i, 1);
    if (this.running?.id !== id) {
      const r = this.storage.update(id, (x) =>
        TERMINAL.has(x.status)
          ? null
          : {
              ...x,
              status: 'canceled',
              finishedAt: new Date().toISOString(),
              expiresAt: new Date(Date.now() + this.options.retentionMs).toISOString(),
            },
      );
      if (r) this.events.emit('status', r);
    }
    if (this.running?.id === id) this.running.exec.kill();
    return Promise.resolve();
  }

  counts(): Promise<QueueCounts> {
    return Promise.resolve({ queued: this.pending.length, running: this.running === null ? 0 : 1 });
  }

  position(id: string): number | null {
    const i = this.pending.indexOf(id);
    return i < 0 ? null : i;
  }

  ready(): Promise<boolean> {
    return Promise.resolve(!this.closed && this.storage.writable());
  }

  async close(): Promise<void> {
    this.closed = true;
    this.pending = [];
    this.running?.exec.stop();
    await this.idle;
    closeRunners();
  }

  private pump(): void {
    if (this.closed || this.running !== null) return;
    const id = this.pending.shift();
    if (id === undefined) return;
    const exec = execute(this.storage, id, this.options, {
      onStatus: (r) => this.events.emit('status', r),
      onProgress: (jid, p) => this.events.emit('progress', jid, p),
    });
    this.running = { id, exec };
    this.idle = exec.done
      .then(
        () => undefined,
        (e: unknown) => {
          if (this.closed) return;
          const r = this.storage.read(id);
          const message = e instanceof RunnerCrash ? e.message : `internal error: ${(e as Error).message}`;
          if (e instanceof RunnerCrash && r !== null && r.attempts < MAX_ATTEMPTS) {
            const q = requeue(this.storage, id);
            if (q) this.events.emit('status', q);
            this.pending.unshift(id);
          } else {
            const f = failCrashed(this.storage, id, message, this.options.retentionMs);
            if (f) this.events.emit('status', f);
          }
        },
      )
      .finally(() => {
        this.running = null;
        this.pump();
      });
  }
}
