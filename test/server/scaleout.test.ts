/**
 * Fault and load test of the scale-out: a real redis-server on 127.0.0.1, one API and two
 * workers; 30 jobs submitted at once (TAEF2 at 64², 2 steps, 3 seeds); a worker killed with
 * SIGKILL in the middle of a job (a new one started) and the API killed and restarted during the
 * run. Every job completes exactly once and its PNG is byte-identical to `immunize protect`.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  assertServedAsProtect,
  BIN,
  childEnv,
  createJob,
  freezeWhen,
  killedAfter,
  makePhotos,
  photoForm,
  protectFolder,
  redisSkip,
  startJsonProcess,
  startRedis,
  startsById,
  stop,
  tempDir,
  TAEF2,
  waitFor,
} from './harness.js';

const skip = redisSkip() || (existsSync(TAEF2) ? false : `${TAEF2} is missing; skipping`);
const SEEDS = [1, 2, 3];
const STEPS = '2';
const procs = killedAfter();
let dir = '';

test(
  '30 jobs, two workers, a worker killed mid-job and the API restarted: each completes once, byte-identical to immunize protect',
  { skip },
  async () => {
    dir = tempDir('scaleout');
    const storage = join(dir, 'storage');
    const photosDir = join(dir, 'photos');
    mkdirSync(photosDir);
    const photos = await makePhotos(photosDir, 10);
    const redis = await startRedis(dir);
    procs.push(redis.proc);
    const log: string[] = [];
    // Every runner appends a line per job start: a count of executions independent of the records.
    const startLog = join(dir, 'starts.jsonl');
    const env = childEnv({ IMMUNIZE_RUNNER_START_LOG: startLog });
    const common = ['--redis', redis.url, '--storage', storage, '--model', TAEF2];
    const startApi = async (): Promise<{ proc: ChildProcess; url: string }> => {
      const { proc, hello } = await startJsonProcess(
        [BIN, 'serve', '--port', '0', ...common, '--rate-create', '0', '--rate-requests', '0'],
        env,
        log,
      );
      procs.push(proc);
      return { proc, url: String(hello['listening']) };
    };
    const startWorkerProc = async (): Promise<ChildProcess> => {
      const { proc } = await startJsonProcess([BIN, 'worker', ...common, '--lock-ms', '1000'], env, log);
      procs.push(proc);
      return proc;
    };
    let api = await startApi();

    // ---- 30 concurrent creates, queued before any worker runs ----
    const jobs: { photo: string; seed: number }[] = [];
    for (const seed of SEEDS) for (const photo of photos) jobs.push({ photo, seed });
    const created = await Promise.all(
      jobs.map(async (j) => {
        return createJob(api.url, photoForm(j.photo, { steps: STEPS, seed: String(j.seed), preset: 'fast' }));
      }),
    );
    assert.equal(new Set(created).size, 30);

    // ---- an SSE stream per job on this API, open before the workers start ----
    const streams = await Promise.all(created.map((id) => openStream(`${api.url}/v1/immunizations/${id}/events`)));
    const workerA = await startWorkerProc();
    await startWorkerProc();

    const record = (id: string): Record<string, unknown> | null => {
      try {
        return JSON.parse(readFileSync(join(storage, 'jobs', id, 'record.json'), 'utf8')) as Record<string, unknown>;
      } catch {
        return null;
      }
    };
    const runningOnA = (id: string): boolean => {
      const r = record(id);
      return r !== null && r['status'] === 'running' && String(r['worker']).endsWith(`:${workerA.pid}`);
    };
    const ended = (s: Stream): boolean => /event: end\ndata: \{[^\n]*"status":"completed"/.test(s.text);

    // ---- kill -9 worker A in the middle of a job, once a job has ended on the SSE ----
    // SIGSTOP first, then check the job is still running on A: a job A finished in between is not a victim.
    const { found: victim } = await freezeWhen(
      'a job running on worker A after a completed one',
      () => streams.some(ended) && created.find(runningOnA),
      runningOnA,
      () => [workerA.pid!],
    );
    await stop(workerA, 'SIGKILL');

    // ---- restart the API at once: the victim cannot be finished yet (worker B waits out A's lock) ----
    const doneBefore = created.filter((id) => record(id)?.['status'] === 'completed').length;
    await stop(api.proc, 'SIGKILL');
    await startWorkerProc();
    api = await startApi();

    const sse = streams.find(ended)!.text;
    assert.match(
      sse,
      new RegExp(`event: progress\ndata: \\{"id":"[0-9a-f]{32}","step":\\d+,"steps":${STEPS}`),
      'SSE progress events from a worker',
    );
    assert.ok(doneBefore < 30, `the API restart happened before the run ended (${doneBefore} done)`);

    // One list request per poll (not 30 status requests): the API shares the two cores with the workers.
    const finals = await waitFor(
      'all 30 jobs to finish',
      async () => {
        const { items } = (await (await fetch(`${api.url}/v1/immunizations?limit=100`)).json()) as {
          items: { id: string; status: string }[];
        };
        const byId = new Map(items.map((r) => [r.id, r]));
        const rs = created.map((id) => byId.get(id));
        return rs.every((r) => r !== undefined && ['completed', 'failed', 'canceled'].includes(r.status))
          ? (rs as { id: string; status: string }[])
          : null;
      },
      1200,
      500,
    );
    assert.deepEqual(
      finals.map((r) => r.status),
      created.map(() => 'completed'),
    );

    // Exactly once, counted twice: the records' attempts and the runners' own start log. A job rerun
    // while it still ran (a stalled lock) shows as a second attempt and a second start. The killed
    // job ran twice; its first start may be missing if A was killed between marking it running and
    // its runner starting it.
    const starts = startsById(startLog);
    assert.deepEqual(
      [...starts.keys()].filter((id) => !created.includes(id)),
      [],
      'the start log names only submitted jobs',
    );
    for (const id of created) {
      const r = record(id)!;
      assert.equal(r['completions'], 1, `job ${id} completions`);
      if (id === victim) {
        assert.equal(
          r['attempts'],
          2,
          `the job on the killed worker was run once more (attempts ${String(r['attempts'])})`,
        );
        assert.ok([1, 2].includes(starts.get(id) ?? 0), `the killed job started ${starts.get(id) ?? 0} times`);
      } else {
        assert.equal(r['attempts'], 1, `job ${id} attempts`);
        assert.equal(starts.get(id), 1, `job ${id} was started ${starts.get(id) ?? 0} times by a runner`);
      }
    }
    assert.deepEqual(readdirSync(join(storage, 'jobs')).sort(), [...created].sort());
    const list = (await (await fetch(`${api.url}/v1/immunizations?limit=100`)).json()) as { items: { id: string }[] };
    assert.equal(list.items.length, 30);

    // ---- byte-identical to immunize protect with the same seed and options ----
    for (const seed of SEEDS) {
      const out = join(dir, `cli-${seed}`);
      protectFolder(photosDir, out, STEPS, seed);
      for (const [i, j] of jobs.entries()) {
        if (j.seed !== seed) continue;
        await assertServedAsProtect(api.url, created[i]!, j.photo, out, seed);
      }
    }
    writeFileSync(join(dir, 'log.txt'), log.join('\n'));
  },
);

interface Stream {
  text: string;
}

/** Reads an SSE response into `text` until it ends or its server dies (then it just stops growing). */
async function openStream(url: string): Promise<Stream> {
  const res = await fetch(url);
  assert.equal(res.status, 200, url);
  const stream: Stream = { text: '' };
  const decoder = new TextDecoder();
  void (async () => {
    try {
      for await (const chunk of res.body as AsyncIterable<Uint8Array>)
        stream.text += decoder.decode(chunk, { stream: true });
    } catch {
      /* the API was killed */
    }
  })();
  return stream;
}

before(() => {
  if (skip) process.stderr.write(`# ${skip}\n`);
});
