import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { saveSafetensors } from '../../src/io/tensors.js';
import { AutoencoderKL, parseAutoencoderKLConfig } from '../../src/models/autoencoder-kl.js';
import { loadAutoencoderFromPath } from '../../src/models/load.js';
import { WeightsError } from '../../src/nn/module.js';
import { liveTensors, manualSeed, noGrad, randn, rand, scope, type Tensor } from '../../src/torch/index.js';
import { readManifestFolder } from '../helpers/manifest.js';
import { sharedPath, skipReason } from '../helpers/shared.js';
import { tinyKL2 as tiny } from '../helpers/tiny-configs.js';

function randomWeights(model: AutoencoderKL, seed = 0): Map<string, Tensor> {
  manualSeed(seed);
  return new Map([...model.stateShapes()].map(([k, s]) => [k, randn(s).mul(0.1)]));
}

/**
 * A tiny model with random weights `w`, and a model folder `dir` (a new temporary one) holding its
 * config.json and `file`, the safetensors of `saved` = toDisk(w).
 */
function tinyOnDisk(prefix: string, file: string, toDisk: (w: Map<string, Tensor>) => Map<string, Tensor>) {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const m = new AutoencoderKL(tiny);
  const w = randomWeights(m);
  const saved = toDisk(w);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(tiny));
  saveSafetensors(join(dir, file), saved);
  return { dir, m, w, saved };
}

test('config: defaults as diffusers (scaling_factor 0.18215 when absent) and clear errors', () => {
  const c = parseAutoencoderKLConfig(tiny);
  assert.equal(c.scaling_factor, 0.18215);
  assert.equal(c.act_fn, 'silu');
  assert.throws(
    () => parseAutoencoderKLConfig({ ...tiny, down_block_types: ['DownEncoderBlock2D', 'AttnDownEncoderBlock2D'] }),
    /unknown down block type 'AttnDownEncoderBlock2D'/,
  );
  assert.throws(
    () => parseAutoencoderKLConfig({ ...tiny, _class_name: 'UNet2DModel' }),
    /_class_name is 'UNet2DModel', expected AutoencoderKL/,
  );
  assert.throws(() => parseAutoencoderKLConfig({ ...tiny, block_out_channels: [8] }), /same non-zero length/);
  assert.throws(() => parseAutoencoderKLConfig({ ...tiny, norm_num_groups: 3 }), /not divisible by norm_num_groups=3/);
  assert.throws(() => parseAutoencoderKLConfig({ ...tiny, act_fn: 'mish' }), /unknown activation function 'mish'/);
});

test('module paths are diffusers state-dict keys (SD v1.5 VAE manifest)', (t) => {
  const dir = sharedPath('golden', 'manifest_sd15_vae');
  if (dir === null) return t.skip(skipReason('golden', 'manifest_sd15_vae'));
  const { config, manifest } = readManifestFolder(dir);
  const m = new AutoencoderKL(config);
  assert.deepEqual([...m.stateShapes().keys()].sort(), manifest.keys.map(([k]) => k).sort());
  assert.equal(m.parameterCount(), manifest.parameter_count);
  assert.equal(m.downscale, 8);
});

test('loadStateDict names missing, unexpected and mis-shaped keys', () => {
  const m = new AutoencoderKL(tiny);
  const w = randomWeights(m);
  try {
    const missing = new Map(w);
    missing.delete('encoder.conv_in.weight');
    assert.throws(
      () => m.loadStateDict(missing),
      (e: unknown) =>
        e instanceof WeightsError && e.code === 'E_WEIGHTS_MISSING' && /encoder\.conv_in\.weight/.test(e.message),
    );
    const extra = new Map(w);
    extra.set('encoder.bogus.weight', w.get('encoder.conv_in.bias')!);
    assert.throws(
      () => m.loadStateDict(extra),
      (e: unknown) =>
        e instanceof WeightsError && e.code === 'E_WEIGHTS_UNEXPECTED' && /encoder\.bogus\.weight/.test(e.message),
    );
    m.loadStateDict(extra, { strict: false });
    const bad = new Map(w);
    bad.set('quant_conv.weight', w.get('encoder.conv_in.weight')!);
    assert.throws(
      () => m.loadStateDict(bad),
      (e: unknown) =>
        e instanceof WeightsError &&
        e.code === 'E_WEIGHTS_SHAPE' &&
        /quant_conv\.weight: expected \[8, 8, 1, 1\], found \[8, 3, 3, 3\]/.test(e.message),
    );
  } finally {
    m.dispose();
    for (const v of w.values()) v.dispose();
  }
});

test('newer diffusers attention names (to_q, to_out.0) load into 0.14 names', () => {
  const rename = (k: string): string =>
    k
      .replace('.query.', '.to_q.')
      .replace('.key.', '.to_k.')
      .replace('.value.', '.to_v.')
      .replace('.proj_attn.', '.to_out.0.');
  const { dir, m, w } = tinyOnDisk(
    'immunize-vae-',
    'diffusion_pytorch_model.safetensors',
    (w) => new Map([...w].map(([k, v]) => [rename(k), v])),
  );
  m.loadStateDict(w);
  const loaded = loadAutoencoderFromPath(dir) as AutoencoderKL;
  try {
    noGrad(() =>
      scope(() => {
        const x = rand([1, 3, 16, 16]).mul(2).sub(1);
        assert.ok(m.forward(x).equal(loaded.forward(x)), 'same outputs from renamed weights');
      }),
    );
  } finally {
    m.dispose();
    loaded.dispose();
    for (const v of w.values()) v.dispose();
  }
});

test('fp16 weights on disk compute in float32 (or stay float16 when asked)', () => {
  const {
    dir,
    m,
    w,
    saved: half,
  } = tinyOnDisk(
    'immunize-vae16-',
    'diffusion_pytorch_model.fp16.safetensors',
    (w) => new Map([...w].map(([k, v]) => [k, v.half()])),
  );
  const a = loadAutoencoderFromPath(dir, { variant: 'fp16' });
  const b = loadAutoencoderFromPath(dir, { dtype: 'bfloat16' });
  try {
    assert.equal(a.stateDict().get('encoder.conv_in.weight')!.dtype, 'float32');
    assert.equal(b.stateDict().get('encoder.conv_in.weight')!.dtype, 'bfloat16');
  } finally {
    for (const x of [a, b, m]) x.dispose();
    for (const v of [...w.values(), ...half.values()]) v.dispose();
  }
});

test('encode/decode shapes, posterior and no leaked tensors', () => {
  const m = new AutoencoderKL(tiny);
  const w = randomWeights(m);
  m.loadStateDict(w);
  for (const v of w.values()) v.dispose();
  const before = liveTensors();
  noGrad(() =>
    scope(() => {
      const x = rand([2, 3, 32, 32]);
      using d = m.encode(x);
      assert.deepEqual(d.mean.shape, [2, 4, 16, 16]);
      assert.ok(d.std.sub(d.logvar.mul(0.5).exp()).abs().max().item() < 1e-6);
      assert.deepEqual(m.decode(d.mean).shape, [2, 3, 32, 32]);
    }),
  );
  assert.equal(liveTensors(), before);
  m.dispose();
});
