/**
 * "Test the protection" through the API (docs/api.md, edits): an immunization of a 64² photo, then
 * `POST /v1/immunizations/{id}/edits` with the tiny img2img repository of the conformance cases —
 * a job of its own on the embedded queue and its runner — that edits the original and the
 * immunized photo with the same prompt and seed. Both PNGs decode at the photo's size, the same
 * request twice gives the same bytes, bad requests get 4xx JSON errors, another key sees 404, and
 * Redis mode answers 501. Also: a failed job's message names no server path (scrub.ts).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { buildApi, type Api } from '../../src/server/api.js';
import { hashKey } from '../../src/server/auth.js';
import type { EditingConfig } from '../../src/server/edits.js';
import { EmbeddedQueue, type JobQueue } from '../../src/server/queue.js';
import { Storage, type JobRecord } from '../../src/server/storage.js';
import { encodeImage, readImage } from '../../src/io/images.js';
import { loadStableDiffusion } from '../../src/pipelines/components.js';
import { inpaint } from '../../src/pipelines/generate.js';
import { seededNoise } from '../../src/pipelines/noise.js';
import { tensor, type Tensor } from '../../src/torch/index.js';
import { sharedPath } from '../helpers/shared.js';
import { makePhotos, tempDir, testApiConfig, waitFor } from './harness.js';

const IMG2IMG = sharedPath('golden', 'pipeline_img2img');
const INPAINT = sharedPath('golden', 'pipeline_inpaint');
const TAEF2_DIR = sharedPath('models', 'taef2-hf');
const why =
  IMG2IMG === null || TAEF2_DIR === null || sharedPath('images') === null
    ? 'the shared tiny img2img repository, TAEF2 or the photos are missing (../shared); skipping'
    : false;
const KEY_A = 'imm_edit_key_a';
const KEY_B = 'imm_edit_key_b';
const A = { authorization: `Bearer ${KEY_A}` };
const B = { authorization: `Bearer ${KEY_B}` };

type Rec = {
  id: string;
  kind: string;
  status: string;
  immunization?: string;
  options: Record<string, unknown>;
  progress: { step: number; steps: number; fraction: number } | null;
  error: { code: string; message: string } | null;
  result: Record<string, unknown> | null;
  links: Record<string, string>;
};
type Err = { error: { code: string; message: string; field?: string } };

describe('edits: test the protection', { skip: why, timeout: 600_000 }, () => {
  let api: Api;
  let storage: Storage;
  let queue: EmbeddedQueue;
  let photo: Buffer;
  let immunization: Rec;
  // A model folder whose weights are cut short: its jobs fail in the runner, with the loader naming the file.
  const brokenDir = join(tempDir('edits-broken'), 'broken-model');
  const models = [
    { id: 'taef2-hf', spec: TAEF2_DIR! },
    { id: 'broken-taef2', spec: brokenDir },
  ];
  const editing: EditingConfig = {
    img2img: { id: 'tiny-img2img', spec: IMG2IMG! },
    inpaint: INPAINT === null ? null : { id: 'tiny-inpaint', spec: INPAINT },
    maxSteps: 10,
  };
  const keys = [
    { name: 'a', hash: Buffer.from(hashKey(KEY_A).slice(7), 'hex') },
    { name: 'b', hash: Buffer.from(hashKey(KEY_B).slice(7), 'hex') },
  ];
  const apiConfig = testApiConfig({ models, keys, retentionMs: 3_600_000, webRoot: null });

  before(async () => {
    process.env['OMP_WAIT_POLICY'] = 'passive';
    process.env['IMMUNIZE_QUIET'] = '1';
    process.env['HF_HUB_OFFLINE'] = '1';
    mkdirSync(brokenDir);
    writeFileSync(
      join(brokenDir, 'taef2.safetensors'),
      readFileSync(join(TAEF2_DIR!, 'taef2.safetensors')).subarray(0, 4096),
    );
    const dir = tempDir('edits');
    storage = new Storage(join(dir, 'storage'));
    queue = new EmbeddedQueue(storage, {
      device: 'cpu',
      maxPixels: 1_000_000,
      models,
      retentionMs: 3_600_000,
      threads: 1,
      editing: { img2img: editing.img2img, inpaint: editing.inpaint },
    });
    api = await buildApi(storage, queue, { ...apiConfig, editing });
    await queue.start();
    photo = readFileSync((await makePhotos(dir, 1, 64))[0]!);
    // A mask protecting the middle, so inpainting has something to repaint around it.
    const mask = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#000000' } })
      .composite([
        {
          input: await sharp({ create: { width: 32, height: 32, channels: 3, background: '#ffffff' } })
            .png()
            .toBuffer(),
          left: 16,
          top: 16,
        },
      ])
      .png()
      .toBuffer();
    immunization = await runMasked(mask, { preset: 'fast', steps: '2', seed: '1' });
    assert.equal(immunization.status, 'completed', JSON.stringify(immunization.error));
  });

  after(async () => {
    await api?.app.close();
    await queue?.close();
  });

  function multipart(parts: { name: string; data: Buffer | string; filename?: string }[]): {
    payload: Buffer;
    headers: Record<string, string>;
  } {
    const b = 'xxEDITxx';
    const chunks: Buffer[] = [];
    for (const p of parts)
      chunks.push(
        Buffer.from(
          `--${b}\r\nContent-Disposition: form-data; name="${p.name}"${p.filename ? `; filename="${p.filename}"` : ''}\r\n\r\n`,
        ),
        Buffer.from(p.data),
        Buffer.from('\r\n'),
      );
    chunks.push(Buffer.from(`--${b}--\r\n`));
    return { payload: Buffer.concat(chunks), headers: { 'content-type': `multipart/form-data; boundary=${b}`, ...A } };
  }

  async function create(
    parts: { name: string; data: Buffer | string; filename?: string }[],
  ): Promise<{ status: number; body: Rec | Err }> {
    const m = multipart(parts);
    const res = await api.app.inject({
      method: 'POST',
      url: '/v1/immunizations',
      payload: m.payload,
      headers: m.headers,
    });
    return { status: res.statusCode, body: res.json() };
  }

  /** Creates a job from the photo, `mask` and `fields` (in their order), asserts that it is accepted and waits for its end. */
  async function runMasked(mask: Buffer, fields: Record<string, string>): Promise<Rec> {
    const created = await create([
      { name: 'image', data: photo, filename: 'p.png' },
      { name: 'mask', data: mask, filename: 'm.png' },
      ...Object.entries(fields).map(([name, data]) => ({ name, data })),
    ]);
    assert.equal(created.status, 202, JSON.stringify(created.body));
    return finished(`/v1/immunizations/${(created.body as Rec).id}`, A);
  }

  async function get<T>(
    url: string,
    headers: Record<string, string> = A,
  ): Promise<{ status: number; body: T; raw: Buffer; type: string }> {
    const res = await api.app.inject({ method: 'GET', url, headers });
    return {
      status: res.statusCode,
      body: String(res.headers['content-type'] ?? '').startsWith('application/json') ? res.json() : (null as T),
      raw: res.rawPayload,
      type: String(res.headers['content-type']),
    };
  }

  async function postEdit(
    id: string,
    body: unknown,
    headers: Record<string, string> = A,
  ): Promise<{ status: number; body: Rec & Err }> {
    const res = await api.app.inject({
      method: 'POST',
      url: `/v1/immunizations/${id}/edits`,
      headers: { ...headers, 'content-type': 'application/json' },
      payload: typeof body === 'string' ? body : JSON.stringify(body),
    });
    return { status: res.statusCode, body: res.json() };
  }

  function finished(url: string, headers: Record<string, string>): Promise<Rec> {
    return waitFor(
      `${url} to finish`,
      async () => {
        const r = (await get<Rec>(url, headers)).body;
        return ['completed', 'failed', 'canceled'].includes(r.status) ? r : null;
      },
      6000,
      100,
    );
  }

  async function runEdit(body: Record<string, unknown>): Promise<{ rec: Rec; original: Buffer; immunized: Buffer }> {
    const r = await postEdit(immunization.id, body);
    assert.equal(r.status, 202, JSON.stringify(r.body));
    assert.equal(r.body.kind, 'edit');
    assert.equal(r.body.immunization, immunization.id);
    const rec = await finished(`/v1/edits/${r.body.id}`, A);
    assert.equal(rec.status, 'completed', JSON.stringify(rec.error));
    const original = await get<null>(`/v1/edits/${rec.id}/original.png`);
    const immunized = await get<null>(rec.links['immunized']!, {}); // the read token alone is enough
    assert.equal(original.status, 200);
    assert.equal(immunized.status, 200);
    assert.equal(original.type, 'image/png');
    return { rec, original: original.raw, immunized: immunized.raw };
  }

  test('/v1/config says editing is available, by model ids only', async () => {
    const c = (
      await get<{
        editing: {
          available: boolean;
          modes: string[];
          models: Record<string, string | null>;
          testModels: string[];
          limits: { maxSteps: number };
        };
      }>('/v1/config', {})
    ).body;
    assert.equal(c.editing.available, true);
    assert.equal(c.editing.models['img2img'], 'tiny-img2img');
    // The conformance pipelines are test-sized: the page says their edits are noise (issue 14 point 13).
    assert.deepEqual(c.editing.testModels, ['tiny-img2img', ...(INPAINT === null ? [] : ['tiny-inpaint'])]);
    assert.equal(c.editing.limits.maxSteps, 10);
    assert.doesNotMatch(JSON.stringify(c), /\/work|golden|shared/, 'the config must not reveal server paths');
  });

  test('an img2img edit of both photos completes; both PNGs decode at the photo size; same seed, same bytes', async () => {
    const body = { prompt: 'two men in a wedding', seed: 3, steps: 3, strength: 0.7 };
    const first = await runEdit(body);
    const res = first.rec.result as {
      width: number;
      height: number;
      stepsRun: number;
      seed: number;
      model: string;
      between: { psnr: number; ssim: number };
      inputs: { psnr: number };
      original: { sha256: string };
      immunized: { sha256: string };
    };
    assert.equal(res.stepsRun, 2, 'strength 0.7 of 3 steps runs 2 (diffusers)');
    assert.equal(res.model, 'tiny-img2img');
    assert.deepEqual(
      first.rec.progress && [first.rec.progress.step, first.rec.progress.steps],
      [4, 4],
      'progress counts the steps of both edits',
    );
    for (const png of [first.original, first.immunized]) {
      const meta = await sharp(png).metadata();
      assert.deepEqual([meta.format, meta.width, meta.height], ['png', 64, 64]);
    }
    // The PSNR reported between the two edits is the one of the PNGs as served (and they differ).
    const served = await psnr8(first.original, first.immunized);
    assert.ok(served < 80, `the edits of the original and the immunized photo differ (${served} dB)`);
    assert.ok(
      Math.abs(res.between.psnr - served) <= 1e-3,
      `PSNR between the edits: reported ${res.between.psnr} dB, recomputed from the PNGs ${served} dB`,
    );
    assert.ok(res.between.ssim > -1 && res.between.ssim <= 1, `SSIM between the edits: ${res.between.ssim}`);
    assert.ok(Number.isFinite(res.inputs.psnr), 'PSNR of the immunized photo against the original');
    const again = await runEdit(body);
    assert.ok(
      again.original.equals(first.original),
      'the same prompt and seed must give the same edit of the original',
    );
    assert.ok(
      again.immunized.equals(first.immunized),
      'the same prompt and seed must give the same edit of the immunized photo',
    );
    assert.equal((again.rec.result as typeof res).immunized.sha256, res.immunized.sha256);
    // Another seed, another edit.
    const other = await runEdit({ ...body, seed: 4 });
    assert.ok(!other.original.equals(first.original), 'another seed gave the same edit');
    // Another key sees neither the edit nor its images.
    assert.equal((await get<Err>(`/v1/edits/${first.rec.id}`, B)).status, 404);
    assert.equal((await get<Err>(`/v1/edits/${first.rec.id}/immunized.png`, B)).status, 404);
    assert.equal((await get<Err>(`/v1/immunizations/${first.rec.id}`)).status, 404, 'an edit is not an immunization');
  });

  test(
    'inpainting repaints what the mask did not protect',
    { skip: INPAINT === null ? 'no tiny inpainting repository' : false },
    async () => {
      const body = { prompt: 'a plane', seed: 5, steps: 2, mode: 'inpaint' };
      const { rec, original } = await runEdit(body);
      const res = rec.result as { mode: string; width: number; negativePrompt: string; guidance: number };
      assert.deepEqual([res.mode, res.width], ['inpaint', 64]);
      // The same edit run here with the repaint mask spelled out (1 outside the protected 32×32
      // middle): the served edit of the original is that one, not the one repainting the middle.
      const middle = (inside: number) =>
        tensor(
          Float32Array.from({ length: 64 * 64 }, (_, i) => {
            const [y, x] = [Math.floor(i / 64), i % 64];
            return y >= 16 && y < 48 && x >= 16 && x < 48 ? inside : 1 - inside;
          }),
          [1, 1, 64, 64],
        );
      using sd = await loadStableDiffusion(INPAINT!);
      const { tensor: image } = await readImage(photo);
      const edit = (mask: Tensor) =>
        encodeImage(
          inpaint(sd, image, {
            prompt: body.prompt,
            negativePrompt: res.negativePrompt,
            steps: body.steps,
            guidance: res.guidance,
            eta: 0,
            noise: seededNoise(body.seed),
            mask,
          }).image,
          { format: 'png' },
        );
      assert.ok(
        (await edit(middle(0))).equals(original),
        'the served edit is the one that repaints outside the protected middle',
      );
      assert.ok(
        !(await edit(middle(1))).equals(original),
        'repainting the protected middle instead gives another edit (the check can tell)',
      );
    },
  );

  test("bad requests get 4xx JSON errors naming the field; another key's job is 404", async () => {
    const id = immunization.id;
    const cases: [string, unknown, number, string, string?][] = [
      ['no prompt', { seed: 1 }, 400, 'E_VALIDATION', 'prompt'],
      ['empty prompt', { prompt: '   ' }, 400, 'E_VALIDATION', 'prompt'],
      ['prompt not a string', { prompt: 42 }, 400, 'E_VALIDATION', 'prompt'],
      ['prompt too long', { prompt: 'x'.repeat(501) }, 400, 'E_VALIDATION', 'prompt'],
      ['control characters', { prompt: 'a\nb' }, 400, 'E_VALIDATION', 'prompt'],
      ['negative seed', { prompt: 'a', seed: -1 }, 400, 'E_VALIDATION', 'seed'],
      ['fractional seed', { prompt: 'a', seed: 1.5 }, 400, 'E_VALIDATION', 'seed'],
      ['seed as a string', { prompt: 'a', seed: '7' }, 400, 'E_VALIDATION', 'seed'],
      ['seed too large', { prompt: 'a', seed: 2 ** 40 }, 400, 'E_VALIDATION', 'seed'],
      ['zero steps', { prompt: 'a', steps: 0 }, 400, 'E_VALIDATION', 'steps'],
      ['steps over the limit', { prompt: 'a', steps: 11 }, 400, 'E_VALIDATION', 'steps'],
      ['fractional steps', { prompt: 'a', steps: 2.5 }, 400, 'E_VALIDATION', 'steps'],
      ['strength 0', { prompt: 'a', strength: 0 }, 400, 'E_VALIDATION', 'strength'],
      ['no denoising step', { prompt: 'a', steps: 2, strength: 0.3 }, 400, 'E_VALIDATION', 'strength'],
      ['guidance too large', { prompt: 'a', guidance: 1000 }, 400, 'E_VALIDATION', 'guidance'],
      ['unknown mode', { prompt: 'a', mode: 'outpaint' }, 400, 'E_VALIDATION', 'mode'],
      ['unknown field (a path)', { prompt: 'a', model: '/etc' }, 400, 'E_VALIDATION', 'model'],
      ['not an object', [1, 2], 400, 'E_VALIDATION'],
      ['malformed JSON', '{"prompt":', 400, 'E_BAD_REQUEST'],
    ];
    for (const [name, body, status, code, field] of cases) {
      const r = await postEdit(id, body);
      assert.equal(r.status, status, `${name}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error?.code, code, name);
      if (field !== undefined) assert.equal(r.body.error.field, field, name);
      assert.doesNotMatch(r.body.error.message, /\n\s+at /, `${name}: a stack trace`);
    }
    assert.equal((await postEdit(id, { prompt: 'a' }, B)).status, 404, "another key's immunization");
    assert.equal((await postEdit(id, { prompt: 'a' }, { authorization: '' })).status, 401);
    assert.equal((await postEdit('0'.repeat(32), { prompt: 'a' })).status, 404);
    assert.equal((await postEdit('not-a-job-id', { prompt: 'a' })).status, 400);
    // An immunization that has not completed cannot be edited yet.
    const queued: JobRecord = {
      ...storage.read(id)!,
      id: Storage.newId(),
      status: 'queued',
      startedAt: null,
      finishedAt: null,
      expiresAt: null,
      result: null,
    };
    storage.create(queued, []);
    const notReady = await postEdit(queued.id, { prompt: 'a' });
    assert.equal(notReady.status, 409);
    assert.equal(notReady.body.error.code, 'E_NOT_READY');
    storage.remove(queued.id);
  });

  test('without an editing model, or with Redis, editing is a clear 501', async () => {
    const bare = await buildApi(storage, queue, { ...apiConfig, editing: null });
    const redisLike: JobQueue = Object.assign(Object.create(queue) as JobQueue, { kind: 'redis' as const });
    const redis = await buildApi(storage, redisLike, { ...apiConfig, editing });
    try {
      for (const [name, app] of [
        ['no model', bare.app],
        ['redis', redis.app],
      ] as const) {
        const c = (await app.inject({ method: 'GET', url: '/v1/config' })).json<{
          editing: { available: boolean; reason: string };
        }>();
        assert.equal(c.editing.available, false, name);
        assert.match(c.editing.reason, /edit/, name);
        const r = await app.inject({
          method: 'POST',
          url: `/v1/immunizations/${immunization.id}/edits`,
          headers: { ...A, 'content-type': 'application/json' },
          payload: '{"prompt":"a"}',
        });
        assert.equal(r.statusCode, 501, name);
        assert.equal(r.json<Err>().error.code, 'E_NOT_IMPLEMENTED', name);
      }
    } finally {
      await bare.app.close();
      await redis.app.close();
    }
  });

  test("a failed job's message names the model by its id, never by its server path", async () => {
    // The broken model's weights are cut short: the loader fails in the runner, naming the file.
    const mask = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#ffffff' } })
      .png()
      .toBuffer();
    const rec = await runMasked(mask, { model: 'broken-taef2', steps: '1' });
    assert.equal(rec.status, 'failed');
    const message = rec.error!.message;
    assert.ok(
      !message.includes(brokenDir) && !message.includes(TAEF2_DIR!) && !message.includes(storage.root),
      `the message names a server path: ${message}`,
    );
    assert.doesNotMatch(message, /(^|[\s'"(:])\/[^\s/]+\//, `the message contains an absolute path: ${message}`);
    assert.match(message, /broken-taef2/, `the message should still say which model: ${message}`);
  });
});

/** PSNR (dB) of two same-size 8-bit PNGs from their decoded pixels, as piq: 10·log10(1 / (MSE + 1e-8)) on [0, 1]. */
async function psnr8(a: Buffer, b: Buffer): Promise<number> {
  const [x, y] = await Promise.all([a, b].map((p) => sharp(p).removeAlpha().raw().toBuffer()));
  let se = 0;
  for (let i = 0; i < x!.length; i++) se += (x![i]! - y![i]!) ** 2;
  return 10 * Math.log10(1 / (se / x!.length / 255 ** 2 + 1e-8));
}
