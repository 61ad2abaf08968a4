/**
 * The embedded default (`immunize serve` with no --redis, records on disk): killed with SIGKILL
 * while a job runs and others wait, restarted on the same storage, every accepted job completes
 * exactly once with the PNG `immunize protect` writes. Then purify-and-check on a finished job:
 * its rows are those of `immunize protect --check` (both use checkProtection), and bad
 * purification specs get a 4xx.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync } from 'node:fs';
import { basename, join } from 'node:path';
import { parsePurification } from '../../src/purify/index.js';
import { DEFAULT_CHECK_SUITE } from '../../src/robustness/check.js';
import type { PurificationReport } from '../../src/server/check.js';
import {
  alive,
  assertServedAsProtect,
  childEnv,
  childPids,
  createJob,
  freezeWhen,
  killedAfter,
  makePhotos,
  photoForm,
  protectFolder,
  serveArgs,
  settled,
  signalAll,
  startJsonProcess,
  startsById,
  stop,
  tempDir,
  TAEF2,
  TAEF2_ID,
  waitFor,
} from './harness.js';

const skip = existsSync(TAEF2) ? false : `${TAEF2} is missing; skipping`;
const STEPS = 6;
/** Job i uses seed SEEDS[i % 2]; the photos of one seed sit in one folder for one `immunize protect` run. */
const SEEDS = [1, 2];
const N = 4;
const procs = killedAfter();
const log: string[] = [];
let dir = '';
let storage = '';
let url = '';
let server: ChildProcess | null = null;
const jobs: { id: string; photo: string; seed: number }[] = [];

type Rec = {
  id: string;
  kind: string;
  status: string;
  attempts: number;
  completions: number;
  progress: { step: number; steps: number } | null;
  result: Record<string, unknown> | null;
  links: Record<string, string>;
  error: unknown;
};

const record = (id: string): Rec | null => {
  try {
    return JSON.parse(readFileSync(join(storage, 'jobs', id, 'record.json'), 'utf8')) as Rec;
  } catch {
    return null;
  }
};

async function startServer(): Promise<void> {
  const { proc, hello } = await startJsonProcess(
    serveArgs('--storage', storage, '--model', TAEF2),
    childEnv({ IMMUNIZE_RUNNER_START_LOG: join(dir, 'starts.jsonl') }),
    log,
  );
  procs.push(proc);
  server = proc;
  assert.equal(hello['queue'], 'embedded');
  url = String(hello['listening']);
}

async function json<T>(path: string, init?: RequestInit): Promise<{ status: number; body: T }> {
  const res = await fetch(`${url}${path}`, init);
  return { status: res.status, body: (await res.json()) as T };
}

function finished(id: string, path = `/v1/immunizations/${id}`): Promise<Rec> {
  return settled<Rec>(url, path);
}

before(() => {
  if (skip) process.stderr.write(`# ${skip}\n`);
});

test(
  'embedded: SIGKILL while a job runs and others wait, restart on the same storage: each completes once, byte-identical to immunize protect',
  { skip },
  async () => {
    dir = tempDir('embedded');
    storage = join(dir, 'storage');
    const photos = await makePhotos(dir, N);
    for (const s of SEEDS) mkdirSync(join(dir, `seed${s}`));
    const moved = photos.map((p, i) => {
      const to = join(dir, `seed${SEEDS[i % SEEDS.length]}`, basename(p));
      renameSync(p, to);
      return to;
    });
    await startServer();

    // One after the other, so they run in this order (one at a time, oldest first).
    for (const [i, photo] of moved.entries()) {
      const seed = SEEDS[i % SEEDS.length]!;
      const form = photoForm(photo, { preset: 'fast', steps: String(STEPS), seed: String(seed) });
      jobs.push({ id: await createJob(url, form), photo, seed });
    }

    // ---- SIGKILL in the middle of the attack of a job, with the later ones still queued ----
    // One of the first two, so at least two jobs are still waiting (the record's progress is written
    // at the first attack step, then about once a second and at the last step).
    // The server and its runners are stopped (SIGSTOP) before the check that decides: a job that
    // finished between the poll and the kill is not a victim.
    const midAttack = (j: { id: string }): boolean => {
      const r = record(j.id);
      return r?.status === 'running' && r.progress !== null && r.progress.step < r.progress.steps;
    };
    const { found: victim, frozen } = await freezeWhen(
      'one of the first two jobs in the middle of its attack',
      () => jobs.slice(0, 2).find(midAttack),
      midAttack,
      () => [server!.pid!, ...childPids(server!.pid!)],
    );
    const runners = frozen.slice(1);
    await stop(server, 'SIGKILL');
    signalAll(runners, 'SIGCONT');
    const at = jobs.map((j) => record(j.id)!);
    assert.equal(at.find((r) => r.id === victim.id)!.status, 'running');
    const queuedAtKill = at.filter((r) => r.status === 'queued').length;
    assert.ok(queuedAtKill >= 2, `jobs still queued when the server was killed: ${at.map((r) => r.status).join(', ')}`);
    assert.deepEqual(
      at.map((r) => r.completions),
      at.map((r) => (r.status === 'completed' ? 1 : 0)),
      'one completion per completed job, none for the others',
    );
    // The orphaned runner notices that its server is gone and stops (at its next step at the latest).
    if (runners.length > 0)
      await waitFor(
        `the orphaned runner(s) ${runners.join(', ')} to exit`,
        () => runners.every((p) => !alive(p)),
        600,
        50,
      );

    // ---- restart on the same storage: the running job runs again, the queued ones run ----
    await startServer();
    const finals = await Promise.all(jobs.map((j) => finished(j.id)));
    assert.deepEqual(
      finals.map((r) => r.status),
      jobs.map(() => 'completed'),
      JSON.stringify(finals.map((r) => r.error)),
    );
    // Executions counted twice: the records' attempts and the runners' own start log (the victim
    // was mid-attack, so its runner had started it).
    const starts = startsById(join(dir, 'starts.jsonl'));
    for (const j of jobs) {
      const r = record(j.id)!;
      assert.equal(r.completions, 1, `job ${j.id} completions`);
      assert.equal(
        r.attempts,
        j.id === victim.id ? 2 : 1,
        `job ${j.id} attempts (the killed one runs twice, the others once)`,
      );
      assert.equal(starts.get(j.id), r.attempts, `job ${j.id}: runner starts vs attempts`);
    }
    assert.deepEqual(readdirSync(join(storage, 'jobs')).sort(), jobs.map((j) => j.id).sort(), 'no job lost or added');
    assert.equal((await json<{ items: unknown[] }>('/v1/immunizations?limit=100')).body.items.length, N);

    // ---- byte-identical to immunize protect (same seed and options, same SOURCE_DATE_EPOCH) ----
    for (const seed of SEEDS) {
      const out = join(dir, `cli-${seed}`);
      // Seed 1 also runs --check: its rows are compared with the API's check in the next test.
      const check = seed === SEEDS[0] ? ['--check'] : [];
      protectFolder(join(dir, `seed${seed}`), out, String(STEPS), seed, ...check);
      for (const j of jobs.filter((x) => x.seed === seed)) {
        await assertServedAsProtect(url, j.id, j.photo, out, seed);
      }
    }
  },
);

test(
  'purify and check: the suite of immunize protect --check, the same rows; custom chains; bad specs are 400',
  { skip },
  async () => {
    assert.ok(jobs.length === N && server !== null, 'needs the jobs of the previous test');
    const job = jobs[0]!;
    const post = (
      id: string,
      body: unknown,
    ): Promise<{ status: number; body: Rec & { error?: { code: string; field?: string } } }> =>
      json(`/v1/immunizations/${id}/checks`, {
        method: 'POST',
        body: JSON.stringify(body),
        headers: { 'content-type': 'application/json' },
      });

    // Bad specs and bodies: 400 E_VALIDATION naming the field, before anything is queued.
    for (const bad of [
      { purifications: ['jpeg:500'] },
      { purifications: ['sharpen:2'] },
      { purifications: [] },
      { purifications: 'jpeg:75' },
      { purifications: Array(17).fill('jpeg:75') },
      { suite: ['jpeg:75'] },
    ]) {
      const r = await post(job.id, bad);
      assert.equal(r.status, 400, `${JSON.stringify(bad)}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error?.code, 'E_VALIDATION', JSON.stringify(bad));
    }
    assert.equal((await post('0'.repeat(32), {})).status, 404, 'a job that does not exist');
    assert.equal(
      (
        await fetch(`${url}/v1/immunizations/${job.id}/checks`, {
          method: 'POST',
          body: '{"purifications": [',
          headers: { 'content-type': 'application/json' },
        })
      ).status,
      400,
      'malformed JSON',
    );

    // The default suite is protect --check's, row for row.
    const accepted = await post(job.id, {});
    assert.equal(accepted.status, 202, JSON.stringify(accepted.body));
    assert.equal(accepted.body.kind, 'check');
    const custom = await post(job.id, { purifications: ['jpeg:75+blur:1', 'resize:0.5'] });
    assert.equal(custom.status, 202, JSON.stringify(custom.body));
    const done = await finished(accepted.body.id, `/v1/checks/${accepted.body.id}`);
    assert.equal(done.status, 'completed', JSON.stringify(done.error));
    type Row = PurificationReport;
    const result = done.result as {
      immunization: string;
      model: string;
      clean: { reconstructionPsnr: number };
      immunized: { psnr: number; reconstructionPsnr: number };
      purifications: Row[];
    };
    assert.equal(result.immunization, job.id);
    assert.equal(result.model, TAEF2_ID);
    assert.deepEqual(
      result.purifications.map((p) => p.spec),
      DEFAULT_CHECK_SUITE.map((s) => parsePurification(s).spec),
    );
    assert.ok(
      result.purifications.some((p) => p.spec.startsWith('jpeg:')),
      'JPEG rows',
    );
    for (const v of [result.clean.reconstructionPsnr, result.immunized.psnr, result.immunized.reconstructionPsnr])
      assert.ok(Number.isFinite(v), `finite: ${v}`);
    assert.ok(
      result.immunized.reconstructionPsnr < result.clean.reconstructionPsnr,
      `the immunization lowered the reconstruction PSNR (${result.clean.reconstructionPsnr} → ${result.immunized.reconstructionPsnr})`,
    );
    for (const p of result.purifications) {
      for (const k of [
        'psnr',
        'cleanReconstructionPsnr',
        'reconstructionPsnr',
        'gapDb',
        'protectionRemaining',
      ] as const)
        assert.ok(Number.isFinite(p[k]), `${p.spec}.${k} = ${p[k]}`);
      assert.ok(
        p.protectionRemaining >= 0 && p.protectionRemaining <= 1,
        `${p.spec}: protectionRemaining ${p.protectionRemaining}`,
      );
      assert.equal(p.protected, p.verdict === 'holds', p.spec);
    }

    const cli = JSON.parse(
      readFileSync(join(dir, `cli-${job.seed}`, `${basename(job.photo, '.png')}.immunized.check.json`), 'utf8'),
    ) as {
      none: { cleanPsnr: number; immunizedPsnr: number };
      rows: { purification: string; cleanPsnr: number; immunizedPsnr: number; remaining: number; verdict: string }[];
    };
    assert.deepEqual(
      cli.rows.map((r) => r.purification),
      result.purifications.map((p) => p.spec),
    );
    const diffs: [string, number][] = [
      ['none clean', cli.none.cleanPsnr - result.clean.reconstructionPsnr],
      ['none immunized', cli.none.immunizedPsnr - result.immunized.reconstructionPsnr],
    ];
    for (const [i, r] of cli.rows.entries()) {
      const s = result.purifications[i]!;
      diffs.push(
        [`${r.purification} clean`, r.cleanPsnr - s.cleanReconstructionPsnr],
        [`${r.purification} immunized`, r.immunizedPsnr - s.reconstructionPsnr],
      );
      assert.equal(s.verdict, r.verdict, r.purification);
    }
    const worst = diffs.reduce((a, b) => (Math.abs(b[1]) > Math.abs(a[1]) ? b : a));
    assert.ok(
      Math.abs(worst[1]) < 1e-4,
      `API check and immunize protect --check differ most at ${worst[0]}: ${worst[1]} dB`,
    );

    const c2 = await finished(custom.body.id, `/v1/checks/${custom.body.id}`);
    assert.equal(c2.status, 'completed', JSON.stringify(c2.error));
    assert.deepEqual(
      (c2.result as { purifications: Row[] }).purifications.map((p) => p.spec),
      ['jpeg:75+blur:1', 'resize:0.5'].map((s) => parsePurification(s).spec),
    );

    // A job that has not completed cannot be checked yet.
    const form = photoForm(job.photo, { preset: 'fast' }, { name: 'x.png' });
    const fresh = (await json<Rec>('/v1/immunizations', { method: 'POST', body: form })).body;
    const early = await post(fresh.id, {});
    assert.equal(early.status, 409, JSON.stringify(early.body));
    assert.equal(early.body.error?.code, 'E_NOT_READY');
    assert.equal((await json<Rec>(`/v1/immunizations/${fresh.id}/cancel`, { method: 'POST' })).body.status, 'canceled');

    const metrics = await (await fetch(`${url}/metrics`)).text();
    assert.match(metrics, /immunize_jobs_finished_total\{kind="check",status="completed"\} 2/);
    assert.match(metrics, /immunize_process_resident_memory_bytes \d+/);
  },
);
