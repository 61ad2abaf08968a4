/** Bad requests get the right 4xx JSON error and the service keeps serving (embedded queue, no job runs). */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { crc32, deflateSync } from 'node:zlib';
import sharp from 'sharp';
import { buildApi, type Api } from '../../src/server/api.js';
import { hashKey } from '../../src/server/auth.js';
import type { JobQueue } from '../../src/server/queue.js';
import { EmbeddedQueue } from '../../src/server/queue.js';
import { Storage } from '../../src/server/storage.js';
import { tempDir, testApiConfig } from './harness.js';

let api: Api;
let storage: Storage;
const KEY_A = 'imm_test_key_a';
const KEY_B = 'imm_test_key_b';

/** Holds jobs without running them: the tests here are about the API's checks. */
class HoldQueue extends EmbeddedQueue {
  override enqueue(): Promise<void> {
    return Promise.resolve();
  }
}

before(async () => {
  storage = new Storage(tempDir('api'));
  // Never loaded (the queue holds every job); "inpaint" in the id makes it a model that may run every method.
  const models = [{ id: 'tiny', spec: 'x-inpaint' }];
  const queue: JobQueue = new HoldQueue(storage, {
    device: 'cpu',
    maxPixels: 1_000_000,
    models,
    retentionMs: 60_000,
  });
  const keys = [
    { name: 'a', hash: Buffer.from(hashKey(KEY_A).slice(7), 'hex') },
    { name: 'b', hash: Buffer.from(hashKey(KEY_B).slice(7), 'hex') },
  ];
  api = await buildApi(storage, queue, testApiConfig({ models, keys, maxUploadBytes: 50_000 }));
});
after(async () => {
  await api.app.close();
});

function multipart(parts: { name: string; data: Buffer | string; filename?: string }[]): {
  payload: Buffer;
  headers: Record<string, string>;
} {
  const b = 'xxBOUNDARYxx';
  const chunks: Buffer[] = [];
  for (const p of parts) {
    chunks.push(
      Buffer.from(
        `--${b}\r\nContent-Disposition: form-data; name="${p.name}"${p.filename ? `; filename="${p.filename}"` : ''}\r\n${p.filename ? 'Content-Type: application/octet-stream\r\n' : ''}\r\n`,
      ),
      Buffer.from(p.data),
      Buffer.from('\r\n'),
    );
  }
  chunks.push(Buffer.from(`--${b}--\r\n`));
  return {
    payload: Buffer.concat(chunks),
    headers: { 'content-type': `multipart/form-data; boundary=${b}`, authorization: `Bearer ${KEY_A}` },
  };
}

const png = (w: number, h: number): Promise<Buffer> =>
  sharp({ create: { width: w, height: h, channels: 3, background: { r: 90, g: 120, b: 150 } } })
    .png()
    .toBuffer();

/** A PNG whose header declares 50,000 × 50,000 pixels (7.5 GB decoded) in a few dozen bytes. */
function pixelBomb(): Buffer {
  const chunk = (type: string, data: Buffer): Buffer => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(td));
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(50_000, 0);
  ihdr.writeUInt32BE(50_000, 4);
  ihdr[8] = 8;
  ihdr[9] = 2;
  return Buffer.concat([
    Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(Buffer.alloc(1000))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

async function create(
  parts: { name: string; data: Buffer | string; filename?: string }[],
  headers: Record<string, string> = {},
): Promise<{ status: number; body: { error?: { code: string; field?: string; message: string }; id?: string } }> {
  const m = multipart(parts);
  const res = await api.app.inject({
    method: 'POST',
    url: '/v1/immunizations',
    payload: m.payload,
    headers: { ...m.headers, ...headers },
  });
  return { status: res.statusCode, body: res.json() };
}

test('visibility: a bad minSsim or budget is a 400 naming the field; /v1/config lists the presets in plain words and the old alias', async () => {
  const img = await png(32, 32);
  for (const [name, data, says] of [
    ['minSsim', '1.5', /minSsim: must be at least 0 and at most 0\.999 but received 1\.5/],
    ['minSsim', 'invisible', /minSsim: /],
    ['budget', 'wavy', /budget: /],
  ] as const) {
    const r = await create([
      { name: 'image', data: img, filename: 'x.png' },
      { name, data },
    ]);
    assert.equal(r.status, 400, `${name}=${data}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.error?.code, 'E_VALIDATION');
    assert.equal(r.body.error?.field, name);
    assert.match(r.body.error!.message, says);
  }
  const noise = await create([
    { name: 'image', data: img, filename: 'x.png' },
    { name: 'method', data: 'noise' },
    { name: 'minSsim', data: '0.9' },
  ]);
  assert.equal(noise.status, 400);
  assert.equal(noise.body.error?.field, 'minSsim');

  const config = (
    await api.app.inject({ method: 'GET', url: '/v1/config', headers: { authorization: `Bearer ${KEY_A}` } })
  ).json() as {
    defaults: { preset: string };
    presets: { id: string; budget: string; minSsim: number | null; stop: string }[];
    presetAliases: Record<string, string>;
  };
  assert.equal(config.defaults.preset, 'balanced');
  const byId = Object.fromEntries(config.presets.map((p) => [p.id, p]));
  assert.deepEqual([byId['balanced']!.budget, byId['balanced']!.minSsim], ['texture', 0.9]);
  assert.deepEqual(
    [byId['strong']!.budget, byId['strong']!.minSsim, byId['strong']!.stop],
    ['uniform', null, 'converged'],
  );
  assert.deepEqual(config.presetAliases, { default: 'strong' });

  // An old client's `default` is accepted, runs strong, and its record says the name is deprecated.
  const old = await create([
    { name: 'image', data: img, filename: 'x.png' },
    { name: 'preset', data: 'default' },
  ]);
  assert.equal(old.status, 202, JSON.stringify(old.body));
  const options = (old.body as { options?: { preset: string; notes?: string[] } }).options!;
  assert.equal(options.preset, 'strong');
  assert.match(options.notes?.[0] ?? '', /'default' is now called 'strong'.*deprecated/);
});

test('bad requests: each gets its 4xx and code, and the service keeps serving', async () => {
  const img = await png(32, 32);
  /** The photo and one more field. */
  const withField = (name: string, data: string) =>
    create([
      { name: 'image', data: img, filename: 'x.png' },
      { name, data },
    ]);
  const cases: [
    string,
    Promise<{ status: number; body: { error?: { code: string; message?: string } } }>,
    number,
    string,
  ][] = [
    ['missing image', create([{ name: 'steps', data: '3' }]), 400, 'E_MISSING_FIELD'],
    [
      'corrupt image',
      create([{ name: 'image', data: Buffer.concat([img.subarray(0, 60), Buffer.alloc(40)]), filename: 'x.png' }]),
      422,
      'E_IMAGE',
    ],
    ['not an image', create([{ name: 'image', data: 'hello, world', filename: 'x.png' }]), 422, 'E_IMAGE_FORMAT'],
    ['pixel bomb', create([{ name: 'image', data: pixelBomb(), filename: 'bomb.png' }]), 413, 'E_IMAGE_TOO_LARGE'],
    [
      'mask size mismatch',
      create([
        { name: 'image', data: img, filename: 'x.png' },
        { name: 'mask', data: await png(16, 16), filename: 'm.png' },
      ]),
      422,
      'E_IMAGE_SIZE',
    ],
    ['eps out of range', withField('eps', '2'), 400, 'E_VALIDATION'],
    ['unknown option', withField('output', '/etc/passwd'), 400, 'E_VALIDATION'],
    ['model path instead of id', withField('model', '/etc'), 400, 'E_VALIDATION'],
    ['steps over the limit', withField('steps', '101'), 400, 'E_VALIDATION'],
    [
      'oversize upload',
      create([{ name: 'image', data: Buffer.alloc(60_000, 1), filename: 'big.png' }]),
      413,
      'E_UPLOAD_TOO_LARGE',
    ],
    [
      'missing key',
      create([{ name: 'image', data: img, filename: 'x.png' }], { authorization: '' }),
      401,
      'E_UNAUTHORIZED',
    ],
    [
      'wrong key',
      create([{ name: 'image', data: img, filename: 'x.png' }], { authorization: 'Bearer nope' }),
      401,
      'E_UNAUTHORIZED',
    ],
  ];
  for (const [name, p, status, code] of cases) {
    const r = await p;
    assert.equal(r.status, status, `${name}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.error?.code, code, name);
    assert.equal(typeof r.body.error?.message, 'string', name);
  }
  const notMultipart = await api.app.inject({
    method: 'POST',
    url: '/v1/immunizations',
    payload: { image: 'x' },
    headers: { authorization: `Bearer ${KEY_A}` },
  });
  assert.equal(notMultipart.statusCode, 415);

  // Still serving: a valid request is accepted; key B cannot see key A's job; a read token can.
  const ok = await create([
    { name: 'image', data: img, filename: 'x.png' },
    { name: 'eps', data: '8/255' },
    { name: 'seed', data: '5' },
  ]);
  assert.equal(ok.status, 202, JSON.stringify(ok.body));
  const id = ok.body.id!;
  const asB = await api.app.inject({ method: 'GET', url: `/v1/immunizations/${id}`, headers: { 'x-api-key': KEY_B } });
  assert.equal(asB.statusCode, 404);
  assert.equal(asB.json().error.code, 'E_NOT_FOUND');
  const asA = await api.app.inject({ method: 'GET', url: `/v1/immunizations/${id}`, headers: { 'x-api-key': KEY_A } });
  assert.equal(asA.statusCode, 200);
  assert.equal(asA.json().options.eps, 8 / 255);
  const withToken = await api.app.inject({ method: 'GET', url: asA.json().links.self as string });
  assert.equal(withToken.statusCode, 200);
  const tokenForOther = await api.app.inject({
    method: 'DELETE',
    url: `/v1/immunizations/${id}?token=${storage.token(id)}`,
  });
  assert.equal(tokenForOther.statusCode, 401, 'a read token cannot delete');
  const notReady = await api.app.inject({
    method: 'GET',
    url: `/v1/immunizations/${id}/result.png`,
    headers: { 'x-api-key': KEY_A },
  });
  assert.equal(notReady.statusCode, 409);
  const badId = await api.app.inject({
    method: 'GET',
    url: '/v1/immunizations/..%2F..%2Fetc',
    headers: { 'x-api-key': KEY_A },
  });
  assert.equal(badId.statusCode, 400);
  const cancel = await api.app.inject({
    method: 'POST',
    url: `/v1/immunizations/${id}/cancel`,
    headers: { 'x-api-key': KEY_A },
  });
  assert.equal(cancel.json().status, 'canceled');
  const del = await api.app.inject({
    method: 'DELETE',
    url: `/v1/immunizations/${id}`,
    headers: { 'x-api-key': KEY_A },
  });
  assert.equal(del.statusCode, 204);
  assert.equal(storage.read(id), null);
  assert.equal((await api.app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200);
  const metrics = await api.app.inject({ method: 'GET', url: '/metrics' });
  assert.match(metrics.body, /immunize_http_requests_total\{route="\/v1\/immunizations",status="413"\} 2/);
  assert.match(metrics.body, /# TYPE immunize_gpu_memory_used_bytes gauge/);
  const cors = await api.app.inject({ method: 'GET', url: '/v1/config', headers: { origin: 'https://evil.example' } });
  assert.equal(cors.headers['access-control-allow-origin'], undefined, 'CORS is off by default');
  const doc = (await api.app.inject({ method: 'GET', url: '/v1/openapi.json' })).json() as {
    openapi: string;
    paths: Record<string, unknown>;
  };
  assert.equal(doc.openapi, '3.1.0');
  assert.ok('/v1/immunizations/{id}/events' in doc.paths);
});

test('the OpenAPI document and the create route agree on the fields: each documented field is accepted, its documented enum is enforced, an undocumented one refused', async () => {
  const doc = (await api.app.inject({ method: 'GET', url: '/v1/openapi.json' })).json() as {
    paths: Record<
      string,
      {
        post?: {
          requestBody: {
            content: Record<
              string,
              { schema: { properties: Record<string, { enum?: string[]; default?: string; format?: string }> } }
            >;
          };
        };
      }
    >;
  };
  const props = doc.paths['/v1/immunizations']!.post!.requestBody.content['multipart/form-data']!.schema.properties;
  const img = await png(32, 32);
  const examples: Record<string, string> = {
    model: 'tiny',
    eps: '8/255',
    stepSize: '1/255',
    steps: '3',
    size: '16',
    seed: '4',
    robustSamples: '2',
    diffusionSteps: '2',
    gradReps: '2',
    minSsim: '0.95',
  };
  const fields = Object.keys(props).filter((k) => props[k]!.format !== 'binary');
  assert.ok(fields.length >= 14, `documented fields: ${fields.join(', ')}`);
  for (const k of fields) {
    const p = props[k]!;
    const good = p.enum?.find((e) => e !== p.default) ?? examples[k];
    assert.ok(good !== undefined, `no example for the documented field ${k}`);
    const extra =
      k === 'robustSamples'
        ? [{ name: 'robust', data: 'jpeg' }]
        : k === 'invertMask' || (k === 'method' && good === 'diffusion')
          ? [{ name: 'mask', data: img, filename: 'm.png' }]
          : [];
    const ok = await create([{ name: 'image', data: img, filename: 'x.png' }, { name: k, data: good }, ...extra]);
    assert.equal(ok.status, 202, `${k}=${good} is documented, so accepted: ${JSON.stringify(ok.body)}`);
    if (p.enum !== undefined) {
      const bad = await create([
        { name: 'image', data: img, filename: 'x.png' },
        { name: k, data: 'not-in-the-enum' },
      ]);
      assert.equal(bad.status, 400, `${k}: a value outside the documented enum`);
      assert.equal(bad.body.error?.field, k);
    }
  }
  const undocumented = await create([
    { name: 'image', data: img, filename: 'x.png' },
    { name: 'tile', data: '64' },
  ]);
  assert.equal(undocumented.status, 400, 'tile is a command-line parameter, not documented for the API');
  assert.equal(undocumented.body.error?.field, 'tile');
});

test('the OpenAPI document is generated from the routes: every documented path parameter, query parameter and JSON body is enforced as documented', async () => {
  type Schema = {
    type?: string | string[];
    pattern?: string;
    enum?: string[];
    required?: string[];
    additionalProperties?: boolean;
    properties?: Record<string, Schema>;
    minimum?: number;
    maximum?: number;
  };
  type Op = {
    parameters?: { name: string; in: string; schema: Schema }[];
    requestBody?: { content: Record<string, { schema: Schema }> };
  };
  const doc = (await api.app.inject({ method: 'GET', url: '/v1/openapi.json' })).json() as {
    paths: Record<string, Record<string, Op>>;
  };
  const auth = { authorization: `Bearer ${KEY_A}` };
  const someId = 'f'.repeat(32);
  let checked = 0;
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const url = (id: string): string => path.replace('{id}', id);
      const send = (u: string, payload?: unknown) =>
        api.app.inject({
          method: method.toUpperCase() as 'GET',
          url: u,
          headers: auth,
          ...(payload === undefined ? {} : { payload: payload as object }),
        });
      const pathParam = op.parameters?.find((p) => p.in === 'path');
      if (pathParam?.schema.pattern !== undefined && op.requestBody?.content['multipart/form-data'] === undefined) {
        const bad = await send(url('not-an-id'));
        assert.equal(bad.statusCode, 400, `${method} ${path}: an id against the documented pattern is refused`);
        assert.equal(bad.json().error.field, 'id');
        checked++;
      }
      for (const q of op.parameters?.filter(
        (p) => p.in === 'query' && (p.schema.enum !== undefined || p.schema.pattern !== undefined),
      ) ?? []) {
        const bad = await send(`${url(someId)}?${q.name}=${encodeURIComponent('no such value!')}`);
        assert.equal(bad.statusCode, 400, `${method} ${path}: query ${q.name} outside its documented values`);
        assert.equal(bad.json().error.field, q.name);
        const good = q.schema.enum?.[0] ?? '5';
        const ok = await send(`${url(someId)}?${q.name}=${good}`);
        assert.notEqual(
          ok.statusCode,
          400,
          `${method} ${path}: query ${q.name}=${good} is documented, so not refused: ${ok.body}`,
        );
        checked++;
      }
      const body = op.requestBody?.content['application/json']?.schema;
      if (body !== undefined) {
        if (body.additionalProperties === false) {
          const bad = await send(url(someId), {
            notDocumented: 1,
            ...Object.fromEntries((body.required ?? []).map((k) => [k, 'x'])),
          });
          assert.equal(bad.statusCode, 400, `${method} ${path}: an undocumented field`);
          assert.equal(bad.json().error.field, 'notDocumented');
        }
        for (const k of body.required ?? []) {
          const bad = await send(url(someId), {});
          assert.equal(bad.statusCode, 400, `${method} ${path}: required ${k} missing`);
          assert.equal(bad.json().error.field, k);
        }
        for (const [k, p] of Object.entries(body.properties ?? {})) {
          if (p.type !== 'integer') continue;
          const bad = await send(url(someId), {
            ...Object.fromEntries((body.required ?? []).map((r) => [r, 'x'])),
            [k]: '7',
          });
          assert.equal(bad.statusCode, 400, `${method} ${path}: ${k} as text is not the documented integer`);
          assert.equal(bad.json().error.field, k);
        }
        // What the document allows passes the route's validation: the job does not exist (404), the body is fine.
        const minimal = Object.fromEntries((body.required ?? []).map((k) => [k, 'x']));
        const fine = await send(url(someId), minimal);
        assert.equal(fine.statusCode, 404, `${method} ${path}: a documented body reaches the handler: ${fine.body}`);
        checked++;
      }
    }
  }
  assert.ok(checked >= 15, `only ${checked} checks ran`);
});
