/**
 * Scale-out on Redis with BullMQ. The API enqueues job ids (the BullMQ job id *is* the job id, so
 * a repeated add is a no-op); `immunize worker` processes consume one job at a time each and run
 * it with execute(). Records and results live in the shared storage directory; progress and
 * status changes come back to every API process through BullMQ's event stream (QueueEvents).
 *
 * A worker killed mid-job stops renewing its lock; after `lockMs` another worker's stalled-job
 * check moves the job back to the wait list and it runs again (attempts + 1). Nothing is lost and
 * execute()'s terminal-record guard keeps it from completing twice.
 */
import { EventEmitter } from 'node:events';
import { Queue, QueueEvents, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { closeRunners, execute, failCrashed, requeue, RunnerCrash, type ExecuteOptions } from './execute.js';
import type { JobQueue, QueueCounts } from './queue.js';
import { TERMINAL, type JobProgress, type JobRecord, type Storage } from './storage.js';

export const QUEUE_NAME = 'immunize';
/** Starts of a job whose runner or worker keeps dying, before it is marked failed. */
export const REDIS_ATTEMPTS = 5;

type Payload = { type: 'progress'; progress: JobProgress } | { type: 'status' };

export function redisConnection(url: string): Redis {
  // BullMQ needs maxRetriesPerRequest: null for blocking commands.
  return new Redis(url, { maxRetriesPerRequest: null, enableReadyCheck: true });
}

export class RedisQueue implements JobQueue {
  readonly kind = 'redis' as const;
  readonly events = new EventEmitter<{ status: [JobRecord]; progress: [string, JobProgress] }>();
  private readonly conn: Redis;
  private readonly queue: Queue;
  private readonly queueEvents: QueueEvents;

  constructor(
    private readonly storage: Storage,
    url: string,
    private readonly retentionMs: number,
    prefix?: string,
  ) {
    this.conn = redisConnection(url);
    this.queue = new Queue(QUEUE_NAME, { connection: this.conn, ...(prefix ? { prefix } : {}) });
    this.queueEvents = new QueueEvents(QUEUE_NAME, { connection: redisConnection(url), ...(prefix ? { prefix } : {}) });
    const status = (id: string): void => {
      const r = this.storage.read(id);
      if (r !== null) this.events.emit('status', r);
    };
    this.queueEvents.on('progress', ({ jobId, data }) => {
      const p = data as Payload;
      if (p !== null && typeof p === 'object' && p.type === 'progress') this.events.emit('progress', jobId, p.progress);
      else status(jobId);
    });
    this.queueEvents.on('completed', ({ jobId }) => status(jobId));
    this.queueEvents.on('failed', ({ jobId }) => status(jobId));
    this.queueEvents.on('stalled', ({ jobId }) => status(jobId));
    this.queueEvents.on('error', () => {
      /* reconnects by itself; readiness reports it */
    });
  }

  async start(): Promise<void> {
    await this.queueEvents.waitUntilReady();
    // A record accepted but never added (the API died between the two) is added now; adding an
    // id BullMQ already has is a no-op.
    for (const r of this.storage.all())
      if (r.status === 'queued' && !this.storage.cancelRequested(r.id)) await this.enqueue(r.id);
  }

  async enqueue(id: string): Promise<void> {
    await this.queue.add(
      'job',
      { id },
      {
        jobId: id,
        attempts: REDIS_ATTEMPTS,
        backoff: { type: 'fixed', delay: 1000 },
        removeOnComplete: { age: 7 * 86400 },
        removeOnFail: { age: 7 * 86400 },
      },
    );
  }

  async cancel(id: string): Promise<void> {
    const job = await this.queue.getJob(id);
    const state = job === undefined ? 'unknown' : await job.getState();
    if (state === 'active') return; // its worker sees the cancel marker within a fraction of a second
    if (job !== undefined && state !== 'completed' && state !== 'failed') {
      try {
        await job.remove();
      } catch {
        /* taken by a worker meanwhile: it sees the marker */
      }
    }
    const r = this.storage.update(id, (x) =>
      TERMINAL.has(x.status) || x.status === 'running'
        ? null
        : {
            ...x,
            status: 'canceled',
            finishedAt: new Date().toISOString(),
            expiresAt: new Date(Date.now() + this.retentionMs).toISOString(),
          },
    );
    if (r) this.events.emit('status', r);
  }

  async counts(): Promise<QueueCounts> {
    const c = await this.queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
    return { queued: (c['waiting'] ?? 0) + (c['delayed'] ?? 0) + (c['prioritized'] ?? 0), running: c['active'] ?? 0 };
  }

  position(): number | null {
    return null;
  }

  async ready(): Promise<boolean> {
    try {
      return (await this.conn.ping()) === 'PONG' && this.storage.writable();
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    await this.queueEvents.close();
    await this.queue.close();
    this.conn.disconnect();
  }
}

export interface WorkerOptions extends ExecuteOptions {
  redis: string;
  /** BullMQ lock duration: how long a dead worker's job waits before another worker takes it. */
  lockMs?: number;
  prefix?: string;
  log?: (line: string) => void;
}

/** An `immunize worker`: consumes one job at a time. */
export function startWorker(storage: Storage, o: WorkerOptions): { worker: Worker; close(): Promise<void> } {
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const lockMs = o.lockMs ?? 30_000;
  const processor = async (job: Job<{ id: string }>): Promise<string> => {
    const id = job.data.id;
    const publish = (p: Payload): void => {
      void job.updateProgress(p).catch(() => {
        /* best effort */
      });
    };
    const exec = execute(storage, id, o, {
      onStatus: () => publish({ type: 'status' }),
      onProgress: (_id, progress) => publish({ type: 'progress', progress }),
    });
    try {
      const outcome = await exec.done;
      log(`job ${id}: ${outcome} (attempt ${job.attemptsMade + 1})`);
      return outcome;
    } catch (e) {
      if (e instanceof RunnerCrash && job.attemptsMade + 1 < (job.opts.attempts ?? 1)) {
        requeue(storage, id);
        publish({ type: 'status' });
      } else {
        failCrashed(storage, id, (e as Error).message, o.retentionMs);
      }
      log(`job ${id}: ${(e as Error).message}`);
      throw e;
    }
  };
  const worker = new Worker(QUEUE_NAME, processor, {
    connection: redisConnection(o.redis),
    concurrency: 1,
    lockDuration: lockMs,
    stalledInterval: lockMs,
    maxStalledCount: REDIS_ATTEMPTS,
    ...(o.prefix ? { prefix: o.prefix } : {}),
  });
  worker.on('error', (e) => log(`worker: ${e.message}`));
  return {
    worker,
    close: async () => {
      await worker.close();
      closeRunners();
    },
  };
}
