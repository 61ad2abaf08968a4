/**
 * Issue 14's service points that need real processes: `immunize serve` refuses a non-loopback
 * host without keys (a name is resolved, not read as text), listing does not hold up other
 * requests, the PNG's XMP names the model id, and an orphaned runner stops at its next step.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { probeImage } from '../../src/io/images.js';
import { Storage, newJobRecord, type JobRecord } from '../../src/server/storage.js';
import {
  alive,
  childEnv,
  createJob,
  killedAfter,
  makePhotos,
  photoForm,
  serveArgs,
  settled,
  startJsonProcess,
  TAEF2,
  tempDir,
  waitFor,
} from './harness.js';

const procs = killedAfter();
const noModel = existsSync(TAEF2) ? false : `${TAEF2} is missing; skipping`;

test('loopback check: addresses are parsed and names resolved, so 127.attacker.example is not loopback', async () => {
  const { isLoopbackHost } = await import('../../src/cli/serve.js');
  for (const h of ['127.0.0.1', '127.1.2.3', '::1', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1', 'localhost'])
    assert.equal(await isLoopbackHost(h), true, h);
  for (const h of ['127.attacker.example', '127.0.0.1.nip.example', '0.0.0.0', '::', '10.0.0.1', '::ffff:10.0.0.1'])
    assert.equal(await isLoopbackHost(h), false, h);
});

test('immunize serve without keys refuses --host 127.attacker.example and exits non-zero, listening nowhere', () => {
  const r = spawnSync(process.execPath, serveArgs('--host', '127.attacker.example', '--storage', tempDir('lo')), {
    env: childEnv(),
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.notEqual(r.status, 0, r.stdout);
  assert.match(r.stderr, /refusing to listen on 127\.attacker\.example without API keys/);
  assert.doesNotMatch(r.stdout, /listening/);
});

test('listing does not block: a status call is answered while 20 lists of 1,500 records are under way', async () => {
  const storage = new Storage(tempDir('list'));
  const now = new Date().toISOString();
  const template: JobRecord = {
    ...newJobRecord('immunization', 'anonymous'),
    status: 'completed',
    startedAt: now,
    finishedAt: now,
    attempts: 1,
    completions: 1,
  };
  const ids = Array.from({ length: 1500 }, () => Storage.newId());
  for (const id of ids) storage.create({ ...template, id }, []);
  const { proc, hello } = await startJsonProcess(serveArgs('--storage', storage.root), childEnv());
  procs.push(proc);
  const url = String(hello['listening']);

  const order: string[] = [];
  const lists = Array.from({ length: 20 }, (_, i) =>
    fetch(`${url}/v1/immunizations?limit=5`).then(async (r) => {
      assert.equal(r.status, 200);
      await r.arrayBuffer();
      order.push(`list${i}`);
    }),
  );
  // Sent after the 20 lists, which are all in flight together: had listing blocked the event loop,
  // the status call would be answered after (nearly) all of them; listing in batches lets it
  // through among them. (Sent once the first list was answered instead, it would find the others
  // nearly done — they advance together — and come last either way.)
  await new Promise((resolve) => setTimeout(resolve, 20));
  const status = fetch(`${url}/v1/immunizations/${ids[0]}`).then(async (r) => {
    assert.equal(r.status, 200);
    await r.arrayBuffer();
    order.push('status');
  });
  await Promise.all([...lists, status]);
  assert.ok(
    order.indexOf('status') < order.length - 2,
    `the status call waited for the lists in front of it: ${order.join(' ')}`,
  );
});

test("the PNG XMP label names the model by its id, not by the server's file or folder", { skip: noModel }, async () => {
  const dir = tempDir('xmp');
  const [photo] = await makePhotos(dir, 1, 32);
  const { proc, hello } = await startJsonProcess(
    serveArgs('--storage', join(dir, 'store'), '--model', `house-model=${TAEF2}`),
    childEnv(),
  );
  procs.push(proc);
  const url = String(hello['listening']);
  const id = await createJob(url, photoForm(photo!, { preset: 'fast', steps: '1' }));
  const done = await settled<{ status: string; error: unknown }>(url, `/v1/immunizations/${id}`);
  assert.equal(done.status, 'completed', JSON.stringify(done.error));
  const png = Buffer.from(await (await fetch(`${url}/v1/immunizations/${id}/result.png`)).arrayBuffer());
  const xmp = (await probeImage(png)).xmp ?? '';
  assert.match(xmp, /house-model/, xmp);
  assert.doesNotMatch(xmp, /taef2/, xmp);
  // A check with an impress row (accepted within --max-steps) runs it against the job's model.
  const res = await fetch(`${url}/v1/immunizations/${id}/checks`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ purifications: ['impress:2', 'jpeg:75'] }),
  });
  assert.equal(res.status, 202, await res.clone().text());
  const checkId = ((await res.json()) as { id: string }).id;
  const check = await settled<{ status: string; error: unknown }>(url, `/v1/checks/${checkId}`);
  assert.equal(check.status, 'completed', JSON.stringify(check.error));
});

test(
  'an orphaned runner (its server killed with SIGKILL) stops at its next step and writes no result',
  { skip: noModel },
  async () => {
    const dir = tempDir('orphan');
    const [photo] = await makePhotos(dir, 1, 64);
    const startLog = join(dir, 'starts.jsonl');
    writeFileSync(startLog, '');
    const storage = join(dir, 'store');
    const { proc, hello } = await startJsonProcess(
      serveArgs('--storage', storage, '--model', TAEF2),
      childEnv({ IMMUNIZE_RUNNER_START_LOG: startLog }),
    );
    procs.push(proc);
    const url = String(hello['listening']);
    // Long enough that it cannot finish between the kill and the runner's next step.
    const id = await createJob(url, photoForm(photo!, { preset: 'fast', steps: '1000' }));
    await waitFor('the attack to be under way', async () => {
      const r = (await (await fetch(`${url}/v1/immunizations/${id}`)).json()) as { progress: { step: number } | null };
      return (r.progress?.step ?? 0) >= 2;
    });
    const runner = (JSON.parse(readFileSync(startLog, 'utf8').split('\n')[0]!) as { pid: number }).pid;
    proc.kill('SIGKILL');
    await waitFor('the orphaned runner to exit', () => !alive(runner), 1200, 100);
    assert.ok(!existsSync(join(storage, 'jobs', id, 'result.png')), 'the orphan computed the job to its end');
  },
);
