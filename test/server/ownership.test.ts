/**
 * Storage has one owner (issue 14 point 1): a second `immunize serve` on the storage of a live
 * embedded server — its port taken, a free port, a host that does not resolve — and a worker
 * refuse to start, exit non-zero and touch nothing; the live server completes its job once. A
 * server that cannot listen exits before it re-queues or runs a job, also on a storage whose
 * owner died (its stale lock does not block a restart).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import {
  BIN,
  childEnv,
  childPids,
  createJob,
  killedAfter,
  makePhotos,
  photoForm,
  refusedStart,
  serveArgs,
  settled,
  signalAll,
  snapshot,
  startJsonProcess,
  startsById,
  stop,
  tempDir,
  TAEF2,
  waitFor,
} from './harness.js';

const skip = existsSync(TAEF2) ? false : `${TAEF2} is missing; skipping`;
const procs = killedAfter();
/** A key, so that a non-loopback --host gets as far as listening (without keys it is refused earlier). */
const KEYS = { IMMUNIZE_API_KEYS: `test:sha256:${createHash('sha256').update('k').digest('hex')}` };

type Rec = { status: string; completions: number; attempts: number; result: { sha256?: string } | null };
const record = (storage: string, id: string): Rec =>
  JSON.parse(readFileSync(join(storage, 'jobs', id, 'record.json'), 'utf8')) as Rec;

/** Starts an embedded server on `storage` and one job on it that is under way. */
async function serverWithRunningJob(
  name: string,
  steps: string,
): Promise<{ dir: string; storage: string; startLog: string; url: string; pid: number; id: string }> {
  const dir = tempDir(name);
  const [photo] = await makePhotos(dir, 1, 64);
  const storage = join(dir, 'store');
  const startLog = join(dir, 'starts.jsonl');
  writeFileSync(startLog, '');
  const { proc, hello } = await startJsonProcess(
    serveArgs('--storage', storage, '--model', TAEF2),
    childEnv({ IMMUNIZE_RUNNER_START_LOG: startLog }),
  );
  procs.push(proc);
  const url = String(hello['listening']);
  const id = await createJob(url, photoForm(photo!, { preset: 'fast', steps, seed: '3' }));
  await waitFor(
    'the job to be under way',
    () => record(storage, id).status === 'running' && startsById(startLog).size > 0,
  );
  return { dir, storage, startLog, url, pid: proc.pid!, id };
}

test(
  'a second serve (port taken, free port, unknown host) or a worker on a live server’s storage exits non-zero, touching nothing; the job completes once',
  { skip },
  async () => {
    const a = await serverWithRunningJob('owner', '40');
    // Frozen, the live server changes nothing itself: what changes now is the newcomers' doing.
    const frozen = [a.pid, ...childPids(a.pid)];
    signalAll(frozen, 'SIGSTOP');
    try {
      const before = snapshot(a.storage);
      const port = new URL(a.url).port;
      const attempts: [string, string[], NodeJS.ProcessEnv][] = [
        ['port taken', serveArgs('--storage', a.storage, '--model', TAEF2).concat('--port', port), childEnv()],
        ['free port', serveArgs('--storage', a.storage, '--model', TAEF2), childEnv()],
        [
          'unknown host',
          serveArgs('--storage', a.storage, '--model', TAEF2, '--host', 'no-such-host.invalid'),
          childEnv(KEYS),
        ],
        [
          'worker',
          [BIN, 'worker', '--redis', 'redis://127.0.0.1:1', '--storage', a.storage, '--model', TAEF2],
          childEnv(),
        ],
      ];
      for (const [what, args, env] of attempts) {
        const { code, output } = await refusedStart(args, env);
        assert.ok(typeof code === 'number' && code !== 0, `${what}: exit ${String(code)}\n${output}`);
        assert.match(output, /in use by an embedded immunize serve \(pid \d+/, what);
        assert.deepEqual(snapshot(a.storage), before, `${what}: the storage was touched`);
      }
    } finally {
      signalAll(frozen, 'SIGCONT');
    }
    const r = await settled<{ status: string }>(a.url, `/v1/immunizations/${a.id}`);
    assert.equal(r.status, 'completed');
    const rec = record(a.storage, a.id);
    assert.equal(rec.completions, 1);
    assert.equal(rec.attempts, 1);
    assert.equal(startsById(a.startLog).get(a.id), 1, 'the job was started by one runner only');
    const png = readFileSync(join(a.storage, 'jobs', a.id, 'result.png'));
    assert.equal(createHash('sha256').update(png).digest('hex'), rec.result?.sha256, 'result.png matches its record');
  },
);

test(
  'on the storage of a killed server, a serve that cannot listen (port taken, unknown host) exits non-zero before it re-queues a job; a restart then completes it',
  { skip },
  async () => {
    const a = await serverWithRunningJob('stale', '8');
    const proc = procs.at(-1)!;
    await stop(proc, 'SIGKILL');
    await waitFor('its runner to stop', () => childPids(a.pid).length === 0 || null, 600, 100).catch(() => undefined);
    const jobs = join(a.storage, 'jobs');
    const before = snapshot(jobs);
    const blocker = createServer();
    await new Promise<void>((res) => blocker.listen(0, '127.0.0.1', res));
    try {
      const port = String((blocker.address() as { port: number }).port);
      const attempts: [string, string[], NodeJS.ProcessEnv][] = [
        ['port taken', serveArgs('--storage', a.storage, '--model', TAEF2).concat('--port', port), childEnv()],
        [
          'unknown host',
          serveArgs('--storage', a.storage, '--model', TAEF2, '--host', 'no-such-host.invalid'),
          childEnv(KEYS),
        ],
      ];
      for (const [what, args, env] of attempts) {
        const { code, output } = await refusedStart(args, env);
        assert.ok(typeof code === 'number' && code !== 0, `${what}: exit ${String(code)}\n${output}`);
        assert.deepEqual(snapshot(jobs), before, `${what}: a job was touched`);
        assert.equal(startsById(a.startLog).get(a.id), 1, `${what}: the job was started again`);
      }
    } finally {
      blocker.close();
    }
    // The dead owner's lock is stale: a restart takes the storage and completes the job.
    const { proc: b, hello } = await startJsonProcess(
      serveArgs('--storage', a.storage, '--model', TAEF2),
      childEnv({ IMMUNIZE_RUNNER_START_LOG: a.startLog }),
    );
    procs.push(b);
    const r = await settled<{ status: string }>(String(hello['listening']), `/v1/immunizations/${a.id}`);
    assert.equal(r.status, 'completed');
    assert.equal(record(a.storage, a.id).completions, 1);
  },
);
