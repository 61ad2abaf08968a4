/**
 * The API under hostile and malformed input, over real HTTP on loopback (the API's own process;
 * jobs are held, never run): uploads that are not plain raster images, costly check suites,
 * requests the router or Node's parser refuses, and the smaller guarantees of issue 14 point 9.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32, deflateSync } from 'node:zlib';
import sharp from 'sharp';
import { buildApi, type Api } from '../../src/server/api.js';
import { hashKey } from '../../src/server/auth.js';
import { EmbeddedQueue } from '../../src/server/queue.js';
import { Storage } from '../../src/server/storage.js';
import { tempDir, testApiConfig } from './harness.js';

const KEY = 'imm_hostile_key_a';
const OTHER = 'imm_hostile_key_b';
const MAX_PIXELS = 1_000_000;
let api: Api;
let storage: Storage;
let url: string;
let port: number;

/** Holds jobs without running them. */
class HoldQueue extends EmbeddedQueue {
  override enqueue(): Promise<void> {
    return Promise.resolve();
  }
}

before(async () => {
  storage = new Storage(tempDir('hostile'));
  const models = [{ id: 'tiny', spec: 'x' }];
  const queue = new HoldQueue(storage, { device: 'cpu', maxPixels: MAX_PIXELS, models, retentionMs: 60_000 });
  api = await buildApi(
    storage,
    queue,
    testApiConfig({
      models,
      keys: [
        { name: 'a', hash: Buffer.from(hashKey(KEY).slice(7), 'hex') },
        { name: 'b', hash: Buffer.from(hashKey(OTHER).slice(7), 'hex') },
      ],
      maxUploadBytes: 2_000_000,
      maxPixels: MAX_PIXELS,
      maxQueue: 10_000,
    }),
  );
  await api.app.listen({ port: 0, host: '127.0.0.1' });
  const a = api.app.server.address();
  port = typeof a === 'object' && a !== null ? a.port : 0;
  url = `http://127.0.0.1:${port}`;
});
after(async () => {
  await api.app.close();
});

const auth = (key = KEY): Record<string, string> => ({ authorization: `Bearer ${key}` });

type ErrorBody = { error?: { code: string; message: string; field?: string } };

async function upload(data: Buffer, name = 'photo', fields: Record<string, string> = {}): Promise<Response> {
  const form = new FormData();
  form.set('image', new Blob([data]), name);
  for (const [k, v] of Object.entries(fields)) form.set(k, v);
  return fetch(`${url}/v1/immunizations`, { method: 'POST', body: form, headers: auth() });
}

/** Sends `text` as it is on a fresh connection and returns the whole answer. */
function raw(text: string): Promise<string> {
  return new Promise((res, rej) => {
    const s = connect(port, '127.0.0.1', () => s.end(text));
    let out = '';
    s.on('data', (d: Buffer) => (out += d.toString('latin1')));
    s.on('close', () => res(out));
    s.on('error', rej);
  });
}

/** An answer in the documented error shape: status, code, JSON body with error.code, nosniff, and not quoting `secret`. */
function assertErrorShape(answer: string, status: number, code: string, secret?: string): void {
  const [head, body] = answer.split('\r\n\r\n', 2) as [string, string];
  assert.match(head, new RegExp(`^HTTP/1.1 ${status} `), answer.slice(0, 300));
  assert.match(head, /content-type: application\/json/i);
  assert.match(head, /x-content-type-options: nosniff/i);
  const parsed = JSON.parse(body) as ErrorBody;
  assert.equal(parsed.error?.code, code, body);
  assert.equal(typeof parsed.error?.message, 'string');
  if (secret !== undefined) assert.ok(!answer.includes(secret), `the answer quotes the URL: ${answer.slice(0, 400)}`);
}

const solid = (w: number, h: number): sharp.Sharp =>
  sharp({ create: { width: w, height: h, channels: 3, background: { r: 90, g: 120, b: 150 } } });

// ---- point 5: uploads ----

test('hostile uploads: SVGs with XInclude, <image href> and external entities are refused as a format (422 E_IMAGE_FORMAT) and no job is made', async () => {
  const canary = join(mkdtempSync(join(tmpdir(), 'immunize-canary-')), 'secret.txt');
  writeFileSync(canary, 'owner: someone else\n');
  const svgs = {
    xinclude: `<svg xmlns="http://www.w3.org/2000/svg" xmlns:xi="http://www.w3.org/2001/XInclude" width="64" height="64"><text x="0" y="20"><xi:include href="${canary}" parse="text"/></text></svg>`,
    imageHref: `<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="64" height="64"><image xlink:href="file://${canary}" width="64" height="64"/><image href="record.json" width="64" height="64"/></svg>`,
    entity: `<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY x SYSTEM "file://${canary}">]><svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><text y="20">&x;</text></svg>`,
    remote: `<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><image href="http://127.0.0.1:${port}/healthz" width="64" height="64"/></svg>`,
  };
  const before = storage.ids().length;
  for (const [name, svg] of Object.entries(svgs)) {
    const res = await upload(Buffer.from(svg), `${name}.png`);
    const body = (await res.json()) as ErrorBody;
    assert.equal(res.status, 422, `${name}: ${JSON.stringify(body)}`);
    assert.equal(body.error?.code, 'E_IMAGE_FORMAT', name);
    assert.equal(body.error?.field, 'image');
    assert.ok(!JSON.stringify(body).includes('someone else'), `${name}: the canary's text came back`);
  }
  assert.equal(storage.ids().length, before, 'a refused upload made a job');
});

test('hostile uploads: polyglots are refused — an SVG behind a PNG signature, an SVG with a JPEG appended, a GIF header over HTML', async () => {
  const svg = Buffer.from(
    '<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><rect width="8" height="8"/></svg>',
  );
  const jpeg = await solid(8, 8).jpeg().toBuffer();
  const cases: [string, Buffer, string][] = [
    [
      'PNG signature then SVG',
      Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), svg]),
      'E_IMAGE',
    ],
    ['SVG then a JPEG', Buffer.concat([svg, jpeg]), 'E_IMAGE_FORMAT'],
    ['GIF header then HTML', Buffer.from('GIF89a<html><script>alert(1)</script></html>'), 'E_IMAGE'],
    ['HTML', Buffer.from('<!doctype html><img src=x onerror=alert(1)>'), 'E_IMAGE_FORMAT'],
  ];
  for (const [name, data, code] of cases) {
    const res = await upload(data);
    const body = (await res.json()) as ErrorBody;
    assert.equal(res.status, 422, `${name}: ${JSON.stringify(body)}`);
    assert.equal(body.error?.code, code, `${name}: ${JSON.stringify(body)}`);
  }
});

test('hostile uploads: this process decodes no SVG at all, even one that got past the magic-byte check (libvips loaders restricted)', async () => {
  const svg = Buffer.from(
    '<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><rect width="8" height="8"/></svg>',
  );
  await assert.rejects(sharp(svg).raw().toBuffer(), /unsupported image format/i);
  // The accepted formats still decode.
  for (const f of ['png', 'jpeg', 'webp', 'tiff', 'gif', 'avif'] as const) {
    const b = await solid(8, 8).toFormat(f).toBuffer();
    assert.equal((await sharp(b).removeAlpha().raw().toBuffer()).length, 8 * 8 * 3, f);
  }
});

test('hostile uploads: a decompression bomb of each accepted format (few bytes, many pixels) is refused from its header with 413', async () => {
  const side = 1100; // 1.21 MP, over the 1 MP limit; solid colour, so each file is small
  for (const f of ['png', 'jpeg', 'webp', 'tiff', 'gif', 'avif'] as const) {
    const data = await solid(side, side).toFormat(f).toBuffer();
    const res = await upload(data, `bomb.${f}`);
    const body = (await res.json()) as ErrorBody;
    assert.equal(res.status, 413, `${f} (${data.length} bytes): ${JSON.stringify(body)}`);
    assert.equal(body.error?.code, 'E_IMAGE_TOO_LARGE', f);
  }
  // A PNG whose header alone declares 50,000 × 50,000 pixels.
  const chunk = (type: string, d: Buffer): Buffer => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(d.length);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(Buffer.concat([Buffer.from(type), d])));
    return Buffer.concat([len, Buffer.from(type), d, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(50_000, 0);
  ihdr.writeUInt32BE(50_000, 4);
  ihdr[8] = 8;
  ihdr[9] = 2;
  const png = Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(Buffer.alloc(1000))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
  assert.equal((await upload(png)).status, 413);
});

test('hostile uploads: each accepted format within the limits is accepted (202)', async () => {
  for (const f of ['png', 'jpeg', 'webp', 'tiff', 'gif', 'avif'] as const) {
    const res = await upload(await solid(40, 30).toFormat(f).toBuffer(), `ok.${f}`);
    assert.equal(res.status, 202, `${f}: ${await res.text()}`);
  }
});

// ---- point 4: check suites ----

/** A completed immunization of key a (its files are never read: checks are held). */
async function completedImmunization(): Promise<string> {
  const res = await upload(await solid(32, 32).png().toBuffer());
  assert.equal(res.status, 202);
  const { id } = (await res.json()) as { id: string };
  storage.update(id, (r) => ({ ...r, status: 'completed', finishedAt: new Date().toISOString() }));
  return id;
}

async function postCheck(
  id: string,
  purifications: string[],
): Promise<{ status: number; body: ErrorBody & { id?: string } }> {
  const res = await fetch(`${url}/v1/immunizations/${id}/checks`, {
    method: 'POST',
    headers: { ...auth(), 'content-type': 'application/json' },
    body: JSON.stringify({ purifications }),
  });
  return { status: res.status, body: (await res.json()) as ErrorBody & { id?: string } };
}

test('check suites: unbounded parameters, long chains and a cost over --max-steps are refused at create time with a 400 naming the problem', async () => {
  const id = await completedImmunization();
  const refused: [string[], RegExp][] = [
    [['median:65'], /size must be .*≤ 15/],
    [['blur:100000'], /sigma must be .*≤ 20/],
    [['blur:1:999'], /kernel size must be .*≤ 121/],
    [[Array(9).fill('hflip').join('+')], /at most 8 steps/],
    [['impress:60'], /cost 121 attack steps .* limit is 100/], // --max-steps 100 here
    [Array(16).fill('impress:3'), /cost 112 attack steps/],
  ];
  for (const [suite, why] of refused) {
    const r = await postCheck(id, suite);
    assert.equal(r.status, 400, `${suite.join(',').slice(0, 60)}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.error?.code, 'E_VALIDATION');
    assert.equal(r.body.error?.field, 'purifications');
    assert.match(r.body.error!.message, why);
  }
  for (const suite of [['median:15', 'blur:20', 'jpeg:75+blur:1+resize:0.5'], ['impress:3']]) {
    const r = await postCheck(id, suite);
    assert.equal(r.status, 202, `${suite.join(',')}: ${JSON.stringify(r.body)}`);
  }
});

// ---- point 8: malformed requests ----

test('malformed multipart: no boundary and a bad boundary are 400 E_BAD_REQUEST in the documented shape, not 500', async () => {
  for (const type of ['multipart/form-data', 'multipart/form-data; boundary=abc']) {
    const answer = await raw(
      `POST /v1/immunizations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\nContent-Type: ${type}\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello`,
    );
    assertErrorShape(answer, 400, 'E_BAD_REQUEST');
  }
  assert.equal((await fetch(`${url}/healthz`)).status, 200, 'the service keeps serving');
});

test('router-level refusals (414 long id, bad URL escape, 431 large headers) use the documented error shape and do not echo the URL', async () => {
  const secret = 'S3CRETPATHPART';
  assertErrorShape(
    await raw(`GET /v1/immunizations/${secret}${'a'.repeat(300)} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`),
    414,
    'E_URI_TOO_LONG',
    secret,
  );
  assertErrorShape(
    await raw(`GET /v1/immunizations/%zz${secret} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`),
    400,
    'E_BAD_REQUEST',
    secret,
  );
  assertErrorShape(
    await raw(`GET /v1/${secret} HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(20_000)}\r\nConnection: close\r\n\r\n`),
    431,
    'E_HEADERS_TOO_LARGE',
    secret,
  );
});

// ---- point 9 ----

test('seed=-0 is normalised to 0 at validation (the record says 0, not -0)', async () => {
  const res = await upload(await solid(16, 16).png().toBuffer(), 'p.png', { seed: '-0' });
  assert.equal(res.status, 202, await res.clone().text());
  const { id } = (await res.json()) as { id: string };
  const r = storage.read(id)!;
  assert.ok(
    Object.is(r.parameters!.seed, 0),
    `seed is ${Object.is(r.parameters!.seed, -0) ? '-0' : r.parameters!.seed}`,
  );
  const { validateOptions } = await import('../../src/server/options.js');
  const v = validateOptions({ seed: '-0' }, { models: [{ id: 'tiny', spec: 'x' }], maxSteps: 100, hasMask: false });
  assert.ok(Object.is(v.parameters.seed, 0) && Object.is(v.options['seed'], 0), 'validateOptions kept -0');
});

test('API answers carry X-Content-Type-Options: nosniff and Cache-Control (no-store for JSON; the result PNG keeps its own)', async () => {
  for (const [path, headers] of [
    ['/healthz', {}],
    ['/v1/config', auth()],
    ['/v1/immunizations', auth()],
    ['/v1/immunizations', {}], // a 401
    ['/v1/nothing-here', auth()], // a 404
  ] as [string, Record<string, string>][]) {
    const res = await fetch(`${url}${path}`, { headers });
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff', path);
    assert.equal(res.headers.get('cache-control'), 'no-store', path);
  }
});

test('Authorization: bearer (lowercase scheme, any case) is accepted; a wrong key still is not', async () => {
  for (const scheme of ['bearer', 'BEARER', 'Bearer']) {
    const res = await fetch(`${url}/v1/immunizations`, { headers: { authorization: `${scheme} ${KEY}` } });
    assert.equal(res.status, 200, scheme);
  }
  assert.equal((await fetch(`${url}/v1/immunizations`, { headers: { authorization: 'bearer nope' } })).status, 401);
});

test('deleting an immunization also removes its queued checks', async () => {
  const id = await completedImmunization();
  const check = await postCheck(id, ['jpeg:75']);
  assert.equal(check.status, 202, JSON.stringify(check.body));
  const checkId = check.body.id!;
  assert.equal((await fetch(`${url}/v1/checks/${checkId}`, { headers: auth() })).status, 200);
  assert.equal((await fetch(`${url}/v1/immunizations/${id}`, { method: 'DELETE', headers: auth() })).status, 204);
  assert.equal((await fetch(`${url}/v1/checks/${checkId}`, { headers: auth() })).status, 404);
  assert.ok(!existsSync(storage.dir(checkId)), 'the check folder is still there');
});
