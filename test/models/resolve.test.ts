// `--model` given as a Hugging Face repo id: only the autoencoder's files are downloaded (vae/
// of a pipeline repo, with the fp16 weights when asked), into the standard hub cache, then loaded.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { serialize, type RawTensor } from '../../src/io/safetensors.js';
import { AutoencoderKL } from '../../src/models/autoencoder-kl.js';
import { loadAutoencoder } from '../../src/models/resolve.js';
import { tinyKL as config } from '../helpers/tiny-configs.js';

process.env['IMMUNIZE_QUIET'] = '1';
for (const k of ['HF_TOKEN', 'HF_HUB_OFFLINE', 'HF_ENDPOINT']) delete process.env[k];

function weights(dtype: 'F32' | 'F16'): Buffer {
  const m = new AutoencoderKL(config);
  const raw: Record<string, RawTensor> = {};
  for (const [k, shape] of m.stateShapes()) {
    const n = shape.reduce((a, b) => a * b, 1);
    raw[k] = { dtype, shape, data: new Uint8Array(n * (dtype === 'F32' ? 4 : 2)) };
  }
  m.dispose();
  return serialize(raw);
}

const FILES = new Map<string, Buffer>([
  ['model_index.json', Buffer.from('{"_class_name": "StableDiffusionPipeline"}')],
  ['vae/config.json', Buffer.from(JSON.stringify(config))],
  ['vae/diffusion_pytorch_model.safetensors', weights('F32')],
  ['vae/diffusion_pytorch_model.fp16.safetensors', weights('F16')],
  ['unet/config.json', Buffer.from('{"_class_name": "UNet2DConditionModel"}')],
  ['unet/diffusion_pytorch_model.safetensors', Buffer.alloc(4096)],
]);
const COMMIT = 'a'.repeat(40);
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const requested: string[] = [];
let server: Server;
let endpoint = '';
const work = mkdtempSync(join(tmpdir(), 'immunize-resolve-'));

before(async () => {
  server = createServer((req, res) => {
    const u = new URL(req.url!, 'http://x');
    if (u.pathname === '/api/models/acme/sd/revision/main') {
      res.setHeader('Content-Type', 'application/json');
      res.end(
        JSON.stringify({ sha: COMMIT, siblings: [...FILES].map(([p, b]) => ({ rfilename: p, size: b.length })) }),
      );
      return;
    }
    const m = /^\/acme\/sd\/resolve\/[^/]+\/(.+)$/.exec(u.pathname);
    const body = m ? FILES.get(m[1]!) : undefined;
    if (body === undefined) {
      res.writeHead(404, { 'X-Error-Code': 'EntryNotFound' });
      res.end();
      return;
    }
    requested.push(m![1]!);
    res.writeHead(200, { 'X-Repo-Commit': COMMIT, ETag: `"${sha256(body)}"`, 'Content-Length': body.length });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const a = server.address();
  endpoint = `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`;
});
after(() => {
  server.close();
  rmSync(work, { recursive: true, force: true });
});

test('a pipeline repo id downloads only vae/ and loads the AutoencoderKL', async () => {
  requested.length = 0;
  const cacheDir = join(work, 'cache-a');
  const vae = await loadAutoencoder('acme/sd', { hub: { endpoint, cacheDir } });
  assert.ok(vae instanceof AutoencoderKL);
  vae.dispose();
  assert.deepEqual([...new Set(requested)].sort(), [
    'model_index.json',
    'vae/config.json',
    'vae/diffusion_pytorch_model.safetensors',
  ]);
  assert.equal(readFileSync(join(cacheDir, 'models--acme--sd', 'refs', 'main'), 'utf8'), COMMIT);
  requested.length = 0;
  const again = await loadAutoencoder('acme/sd', { hub: { endpoint, cacheDir } });
  again.dispose();
  assert.deepEqual(requested, [], 'the second load comes from the cache');
});

test('variant fp16 fetches the fp16 weights instead and computes in float32', async () => {
  requested.length = 0;
  const vae = await loadAutoencoder('acme/sd', { variant: 'fp16', hub: { endpoint, cacheDir: join(work, 'cache-b') } });
  assert.ok(requested.includes('vae/diffusion_pytorch_model.fp16.safetensors'));
  assert.ok(!requested.includes('vae/diffusion_pytorch_model.safetensors'));
  assert.equal((vae as AutoencoderKL).stateDict().get('encoder.conv_in.weight')!.dtype, 'float32');
  vae.dispose();
});

test('offline with an empty cache: a clear error naming the repo', async () => {
  await assert.rejects(
    loadAutoencoder('acme/sd', { hub: { endpoint, cacheDir: join(work, 'cache-c'), offline: true } }),
    (e: Error & { code?: string }) => {
      assert.equal(e.code, 'E_HUB_OFFLINE');
      assert.match(e.message, /acme\/sd/);
      return true;
    },
  );
});
