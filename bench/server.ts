/**
 * `npm run bench:server`: a bounded loopback load test of the immunization service.
 *
 * Four cases, each a fresh `immunize serve` (and workers) on a fresh storage folder:
 *   server_embedded_1   the default: jobs run in the API's own runner, one at a time
 *   server_embedded_1_fresh_runner   the same with a new runner process per job
 *                       (IMMUNIZE_RUNNER_MAX_JOBS=1): what keeping the runner saves
 *   server_redis_1      --redis with one `immunize worker`
 *   server_redis_2      --redis with two workers
 * Each submits JOBS immunizations at once (TAEF2, 64² crops of ../shared/images, `fast` preset,
 * STEPS steps, 1 libtorch thread per job) and times the first submit to the last completion
 * (jobs/minute). Meanwhile an open-loop client sends GET /v1/immunizations/{id} at a fixed rate
 * and records each status request's latency (p50/p99). One JSON line per case on stdout, as
 * `npm run bench` does; progress on stderr. Every case stops at its deadline (what finished by
 * then is reported, with `timedOut`), so the whole run stays under about five minutes.
 *
 * Settings: IMMUNIZE_BENCH_JOBS (default 16), IMMUNIZE_BENCH_STEPS (default 3),
 * IMMUNIZE_BENCH_SIZE (default 64), IMMUNIZE_BENCH_STATUS_RPS (default 20),
 * IMMUNIZE_BENCH_CASE_S (deadline per case, default 65), IMMUNIZE_SHARED.
 * Not a *.bench.ts file on purpose: `npm run bench` measures the engine, and this starts servers.
 */
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import {
  BIN,
  childEnv,
  makePhotos,
  photoForm,
  REDIS,
  serveArgs,
  startJsonProcess,
  startRedis,
  stop,
  TAEF2,
  tempDir,
} from '../test/server/harness.js';

const num = (name: string, def: number): number => {
  const v = Number(process.env[name]);
  return Number.isFinite(v) && v > 0 ? v : def;
};
const JOBS = num('IMMUNIZE_BENCH_JOBS', 16);
const STEPS = num('IMMUNIZE_BENCH_STEPS', 3);
const SIZE = num('IMMUNIZE_BENCH_SIZE', 64);
const RPS = num('IMMUNIZE_BENCH_STATUS_RPS', 20);
const CASE_S = num('IMMUNIZE_BENCH_CASE_S', 65);

interface Case {
  name: string;
  queue: 'embedded' | 'redis';
  workers: number;
  /** A fresh runner process per job (IMMUNIZE_RUNNER_MAX_JOBS=1) instead of one kept across jobs. */
  freshRunner?: boolean;
}
const CASES: Case[] = [
  { name: 'server_embedded_1', queue: 'embedded', workers: 1 },
  { name: 'server_embedded_1_fresh_runner', queue: 'embedded', workers: 1, freshRunner: true },
  { name: 'server_redis_1', queue: 'redis', workers: 1 },
  { name: 'server_redis_2', queue: 'redis', workers: 2 },
];

/** Quantile of sorted values, linear interpolation (numpy's default). */
function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const i = (sorted.length - 1) * q;
  const lo = Math.floor(i);
  const hi = Math.ceil(i);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (i - lo);
}

const round = (x: number, d = 1): number => Math.round(x * 10 ** d) / 10 ** d;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function runCase(c: Case, photos: string[], work: string): Promise<Record<string, unknown>> {
  const dir = join(work, c.name);
  mkdirSync(dir);
  const storage = join(dir, 'storage');
  const procs: ChildProcess[] = [];
  const log: string[] = [];
  const load0 = loadavg()[0]!;
  try {
    const model = ['--storage', storage, '--model', `taef2=${TAEF2}`];
    let redisArgs: string[] = [];
    if (c.queue === 'redis') {
      const redis = await startRedis(dir);
      procs.push(redis.proc);
      redisArgs = ['--redis', redis.url];
    }
    const env = childEnv(c.freshRunner ? { IMMUNIZE_RUNNER_MAX_JOBS: '1' } : {});
    const api = await startJsonProcess(serveArgs(...model, ...redisArgs), env, log);
    procs.push(api.proc);
    const url = String(api.hello['listening']);
    for (let i = 0; c.queue === 'redis' && i < c.workers; i++) {
      const w = await startJsonProcess([BIN, 'worker', ...model, ...redisArgs, '--threads', '1'], env, log);
      procs.push(w.proc);
    }

    const t0 = performance.now();
    const deadline = t0 + CASE_S * 1000;
    const ids = await Promise.all(
      photos.slice(0, JOBS).map(async (p, i) => {
        const form = photoForm(p, { preset: 'fast', steps: String(STEPS), seed: String(i) });
        const res = await fetch(`${url}/v1/immunizations`, { method: 'POST', body: form });
        if (res.status !== 202) throw new Error(`create: ${res.status} ${await res.text()}`);
        return ((await res.json()) as { id: string }).id;
      }),
    );

    // Open loop: one status request every 1000/RPS ms whatever the previous took, round-robin over the jobs.
    const latencies: number[] = [];
    let errors = 0;
    let running = true;
    const inflight: Promise<void>[] = [];
    const poller = (async () => {
      for (let k = 0; running; k++) {
        const id = ids[k % ids.length]!;
        inflight.push(
          (async () => {
            const s = performance.now();
            try {
              const res = await fetch(`${url}/v1/immunizations/${id}`);
              await res.arrayBuffer();
              if (res.status === 200) latencies.push(performance.now() - s);
              else errors++;
            } catch {
              errors++;
            }
          })(),
        );
        await sleep(1000 / RPS);
      }
    })();

    // Completion is read from the records (not the API), so the measurement adds no requests.
    const finished = new Map<string, { status: string; runMs: number | null }>();
    let tLast = t0;
    while (finished.size < ids.length && performance.now() < deadline) {
      for (const id of ids) {
        if (finished.has(id)) continue;
        try {
          const r = JSON.parse(readFileSync(join(storage, 'jobs', id, 'record.json'), 'utf8')) as {
            status: string;
            startedAt: string | null;
            finishedAt: string | null;
          };
          if (r.status === 'completed' || r.status === 'failed' || r.status === 'canceled') {
            finished.set(id, {
              status: r.status,
              runMs: r.startedAt && r.finishedAt ? Date.parse(r.finishedAt) - Date.parse(r.startedAt) : null,
            });
            tLast = performance.now();
          }
        } catch {
          /* being replaced: read again next round */
        }
      }
      await sleep(100);
    }
    running = false;
    await poller;
    await Promise.all(inflight);
    const completed = [...finished.values()].filter((f) => f.status === 'completed');
    const timedOut = finished.size < ids.length;
    const wallS = ((timedOut ? performance.now() : tLast) - t0) / 1000;
    const lat = latencies.sort((a, b) => a - b);
    const runs = completed
      .map((f) => f.runMs)
      .filter((x): x is number => x !== null)
      .sort((a, b) => a - b);
    return {
      name: c.name,
      queue: c.queue,
      workers: c.workers,
      runnerReused: !c.freshRunner,
      jobs: ids.length,
      completed: completed.length,
      jobsFailed: finished.size - completed.length,
      timedOut,
      wallS: round(wallS),
      jobsPerMinute: round((completed.length / wallS) * 60, 2),
      median_msPerJobRun: round(quantile(runs, 0.5), 0),
      status: {
        n: lat.length,
        errors,
        ratePerS: RPS,
        p50Ms: round(quantile(lat, 0.5), 2),
        p99Ms: round(quantile(lat, 0.99), 2),
        maxMs: round(lat[lat.length - 1] ?? NaN, 2),
      },
      image: `${SIZE}x${SIZE}`,
      steps: STEPS,
      model: 'taef2',
      threadsPerJob: 1,
      cores: availableParallelism(),
      loadavg1: round(load0, 2),
      loadavg1End: round(loadavg()[0]!, 2),
    };
  } catch (e) {
    process.stderr.write(`${c.name}: ${(e as Error).message}\n${log.join('\n').slice(-2000)}\n`);
    return { name: c.name, failed: (e as Error).message.split('\n')[0] };
  } finally {
    for (const p of procs.reverse()) await stop(p, 'SIGKILL');
  }
}

async function main(): Promise<number> {
  if (!existsSync(TAEF2)) {
    for (const c of CASES)
      console.log(JSON.stringify({ name: c.name, skipped: `${TAEF2} is missing (set IMMUNIZE_SHARED)` }));
    return 0;
  }
  const work = tempDir('bench-server');
  try {
    const photos = await makePhotos(work, JOBS, SIZE);
    let failed = 0;
    for (const c of CASES) {
      if (c.queue === 'redis' && !existsSync(REDIS)) {
        console.log(JSON.stringify({ name: c.name, skipped: `${REDIS} is not installed` }));
        continue;
      }
      process.stderr.write(
        `bench:server ${c.name}: ${JOBS} jobs, ${STEPS} steps at ${SIZE}², status requests at ${RPS}/s …\n`,
      );
      const r = await runCase(c, photos, work);
      if ('failed' in r && typeof r['failed'] === 'string') failed++;
      console.log(JSON.stringify(r));
    }
    return failed === 0 ? 0 : 1;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

process.exitCode = await main();
