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
import { setTimeout as delay } from 'node:timers/promises';
import { Queue, QueueEvents, WaitingError, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import {
  closeRunners,
  execute,
  failCrashed,
  parseWorkerLabel,
  requeue,
  RunnerCrash,
  type Execution,
  type ExecuteOptions,
} from './execute.js';
import type { JobQueue, QueueCounts } from './queue.js';
import { TERMINAL, type JobProgress, type JobRecord, type Storage } from './storage.js';
import { gone } from './storage-lock.js';

export const QUEUE_NAME = 'immunize';
/** Starts of a job whose runner or worker keeps dying, before it is marked failed. */
export const REDIS_ATTEMPTS = 5;

type Payload = { type: 'progress'; progress: JobProgress } | { type: 'status' };

/**
 * How long one of the API's Redis commands may go unanswered. A request makes at most two (a
 * create: counts, add), so with Redis stopped `/readyz` answers 503 within 2 s and a create within 5 s.
 */
export const REDIS_COMMAND_TIMEOUT_MS = 1000;

/**
 * How often an API also puts back what Redis lost without the connection dropping (a flushed
 * database, a failover behind a proxy, a job requeued by its worker after Redis lost it).
 * $IMMUNIZE_REDIS_RECONCILE_MS overrides it (the tests shorten it).
 */
export const RECONCILE_MS = ((): number => {
  const v = Number(process.env['IMMUNIZE_REDIS_RECONCILE_MS']);
  return Number.isSafeInteger(v) && v >= 100 ? v : 60_000;
})();

/** How long closing waits for BullMQ before the connections are cut (a stopped Redis never answers). */
const CLOSE_WAIT_MS = 2000;

/** A connection for BullMQ's blocking commands (QueueEvents, Worker): they wait by design, so no timeout. */
export function redisConnection(url: string): Redis {
  // BullMQ needs maxRetriesPerRequest: null for blocking commands.
  return new Redis(url, { maxRetriesPerRequest: null, enableReadyCheck: true });
}

/**
 * The API's connection for the commands a request waits on (add, counts, cancel, ping). With Redis
 * unreachable they fail at once instead of waiting in ioredis's offline queue — where an abandoned
 * create would be added when Redis came back, its client long gone — and a command left
 * unanswered fails after REDIS_COMMAND_TIMEOUT_MS.
 */
function commandConnection(url: string): Redis {
  return new Redis(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: REDIS_COMMAND_TIMEOUT_MS,
    enableReadyCheck: true,
  });
}

export class RedisQueue implements JobQueue {
  readonly kind = 'redis' as const;
  readonly events = new EventEmitter<{ status: [JobRecord]; progress: [string, JobProgress] }>();
  private readonly conn: Redis;
  private readonly eventsConn: Redis;
  private readonly queue: Queue;
  private readonly queueEvents: QueueEvents;
  private connects = 0;
  private reconciling: Promise<void> = Promise.resolve();
  private reconcileTimer: NodeJS.Timeout | undefined;
  private reconcileQueued = false;

  constructor(
    private readonly storage: Storage,
    url: string,
    private readonly retentionMs: number,
    prefix?: string,
  ) {
    this.conn = commandConnection(url);
    this.eventsConn = redisConnection(url);
    this.queue = new Queue(QUEUE_NAME, { connection: this.conn, ...(prefix ? { prefix } : {}) });
    this.queueEvents = new QueueEvents(QUEUE_NAME, { connection: this.eventsConn, ...(prefix ? { prefix } : {}) });
    this.queue.on('error', () => {
      /* a lost connection: requests answer 503, readiness reports it */
    });
    // Back after a lost connection, Redis may have restarted empty: put back what it lost.
    this.conn.on('ready', () => {
      if (++this.connects > 1) this.reconcileSoon();
    });
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
    await this.queue.waitUntilReady();
    await this.reconcile();
    this.reconcileTimer = setInterval(() => this.reconcileSoon(), RECONCILE_MS).unref();
  }

  /** One reconciliation after the one under way; a failed one (Redis gone again) waits for the next. */
  private reconcileSoon(): void {
    if (this.reconcileQueued) return;
    this.reconcileQueued = true;
    this.reconciling = this.reconciling
      .then(() => {
        this.reconcileQueued = false;
        return this.reconcile();
      })
      .catch(() => undefined);
  }

  /**
   * Adds to BullMQ every open job it does not have: a record accepted but never added (the API
   * died between the two) and, after Redis restarted empty, every queued job. Run at start, on
   * every reconnection and every RECONCILE_MS. Adding an id BullMQ
   * already has is a no-op. A running job that Redis lost is added again only when its worker is
   * known to be gone (on this host); a live worker completes its record without Redis.
   */
  private async reconcile(): Promise<void> {
    // Read asynchronously: on a reconnection the API is serving requests meanwhile.
    for (const r of await this.storage.allAsync()) {
      if (TERMINAL.has(r.status)) continue;
      // A cancel asked while Redis was unreachable (answered 503) takes effect now.
      if (this.storage.cancelRequested(r.id)) await this.cancel(r.id);
      else if (r.status === 'queued') await this.enqueue(r.id);
      else if (r.status === 'running' && workerGone(r) && (await this.queue.getJob(r.id)) === undefined) {
        const q = requeue(this.storage, r.id);
        if (q) this.events.emit('status', q);
        await this.enqueue(r.id);
      }
    }
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
    clearInterval(this.reconcileTimer);
    // BullMQ leaves the connections it was given open: cut them, or they keep the process alive.
    await Promise.race([
      Promise.allSettled([this.queueEvents.close(), this.queue.close()]),
      delay(CLOSE_WAIT_MS, undefined, { ref: false }),
    ]);
    this.conn.disconnect();
    this.eventsConn.disconnect();
  }
}

/** Whether the process named in a running record's `worker` (host:pid) has certainly ended. */
function workerGone(r: JobRecord): boolean {
  const w = parseWorkerLabel(r.worker);
  return w !== null && gone({ ...w, start: null });
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
  let current: Execution | null = null;
  let closing = false;
  /** A shutdown: the job goes back to the wait list for another worker, its record back to queued. */
  const handBack = async (job: Job<{ id: string }>, token: string | undefined): Promise<never> => {
    const q = requeue(storage, job.data.id);
    if (q) await job.updateProgress({ type: 'status' } satisfies Payload).catch(() => undefined);
    await job.moveToWait(token);
    log(`job ${job.data.id}: handed back (shutdown)`);
    throw new WaitingError();
  };
  const processor = async (job: Job<{ id: string }>, token?: string): Promise<string> => {
    const id = job.data.id;
    if (closing) return handBack(job, token);
    const publish = (p: Payload): void => {
      void job.updateProgress(p).catch(() => {
        /* best effort */
      });
    };
    const exec = execute(storage, id, o, {
      onStatus: () => publish({ type: 'status' }),
      onProgress: (_id, progress) => publish({ type: 'progress', progress }),
    });
    current = exec;
    try {
      const outcome = await exec.done;
      log(`job ${id}: ${outcome} (attempt ${job.attemptsMade + 1})`);
      return outcome;
    } catch (e) {
      if (closing && e instanceof RunnerCrash) return await handBack(job, token);
      if (e instanceof RunnerCrash && job.attemptsMade + 1 < (job.opts.attempts ?? 1)) {
        requeue(storage, id);
        publish({ type: 'status' });
      } else {
        failCrashed(storage, id, (e as Error).message, o.retentionMs);
      }
      log(`job ${id}: ${(e as Error).message}`);
      throw e;
    } finally {
      current = null;
    }
  };
  const conn = redisConnection(o.redis);
  const worker = new Worker(QUEUE_NAME, processor, {
    connection: conn,
    concurrency: 1,
    lockDuration: lockMs,
    stalledInterval: lockMs,
    maxStalledCount: REDIS_ATTEMPTS,
    ...(o.prefix ? { prefix: o.prefix } : {}),
  });
  worker.on('error', (e) => log(`worker: ${e.message}`));
  return {
    worker,
    // Prompt: no new job is taken, the running one is stopped and handed back (it would otherwise
    // hold the shutdown for as long as it runs), and a stopped Redis cannot hold it either.
    close: async () => {
      closing = true;
      const closed = worker.close();
      (current as Execution | null)?.stop();
      await Promise.race([closed.catch(() => undefined), delay(CLOSE_WAIT_MS, undefined, { ref: false })]);
      conn.disconnect();
      closeRunners();
    },
  };
}
