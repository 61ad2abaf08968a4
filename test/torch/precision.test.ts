/**
 * The mixed-precision policy (src/torch/precision.ts): which operators run in bf16 and which in
 * fp32, that the attack's gradient through each model family agrees with fp32's, and the
 * refusals and `auto`'s choice (with a faked /proc/cpuinfo).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { atPrecision, encoderAttack, tinyEncoder, klEncoder } from '../../src/attacks/encoder.js';
import { AutoencoderKL } from '../../src/models/autoencoder-kl.js';
import { AutoencoderTiny } from '../../src/models/autoencoder-tiny.js';
import { CLIPTextModel } from '../../src/models/clip/text-model.js';
import { UNet2DConditionModel } from '../../src/models/unet/unet-2d-condition.js';
import type { Module } from '../../src/nn/module.js';
import {
  F,
  autoPrecision,
  checkPrecision,
  grad,
  manualSeed,
  nativeBf16Flag,
  noGrad,
  rand,
  randn,
  reducedPrecision,
  scope,
  setNumThreads,
  tensor,
  withPrecision,
  type Tensor,
} from '../../src/torch/index.js';
import { native } from '../../src/torch/native.js';
import { seededWeights } from '../helpers/seeded-weights.js';
import { tinyCLIP, tinyKL2, tinyUNet } from '../helpers/tiny-configs.js';

// Tiny models: one thread is as fast and does not spin against other jobs (see unet.test.ts).
setNumThreads(1);

const bf16 = <T>(fn: () => T): T => withPrecision('bf16', 'cpu', fn);
const cosine = (a: Tensor, b: Tensor): number =>
  scope(() => a.mul(b).sum().item() / (a.norm().item() * b.norm().item()));
/** ‖a − b‖ / ‖b‖. */
const relError = (a: Tensor, b: Tensor): number => scope(() => a.float().sub(b).norm().item() / b.norm().item());

/** A model with the golden cases' seeded weights over its own keys (randn·0.02, zero biases, unit norms). */
function seeded<M extends Module>(m: M): M {
  return m.loadStateDict(seededWeights([...m.stateShapes()].map(([k, s]) => [k, s, 'F32'])));
}

test('under bf16, convolutions and matrix products run in bf16 and conv outputs are channels-last', () => {
  scope(() => {
    const x = randn([1, 4, 8, 8]);
    const w = randn([4, 4, 3, 3]);
    const y = bf16(() => F.conv2d(x, w, null, { padding: 1 }));
    assert.equal(y.dtype, 'bfloat16');
    assert.deepEqual(y.strides, [256, 1, 32, 4], 'NHWC in memory');
    assert.equal(bf16(() => F.linear(randn([2, 8]), randn([3, 8]))).dtype, 'bfloat16');
    assert.equal(bf16(() => randn([2, 3, 4]).matmul(randn([2, 4, 5]))).dtype, 'bfloat16');
    // Outside the region nothing changes.
    const y32 = F.conv2d(x, w, null, { padding: 1 });
    assert.equal(y32.dtype, 'float32');
    assert.deepEqual(y32.strides, [256, 64, 8, 1]);
  });
});

test('under bf16, normalisations, softmax and losses take bf16 inputs and compute in fp32', () => {
  scope(() => {
    const x = randn([2, 8, 4, 4]).to('bfloat16');
    bf16(() => {
      assert.equal(F.groupNorm(x, 4, randn([8]), randn([8])).dtype, 'float32');
      assert.equal(F.layerNorm(x, [4], randn([4]), randn([4])).dtype, 'float32');
      assert.equal(F.batchNorm(x, randn([8]), randn([8]).abs()).dtype, 'float32');
      assert.equal(x.softmax(-1).dtype, 'float32');
      assert.equal(x.logSoftmax(-1).dtype, 'float32');
      assert.equal(x.softmax(-1, 'bfloat16').dtype, 'bfloat16', 'an explicit dtype is obeyed');
      assert.equal(F.mseLoss(x, x.float()).dtype, 'float32');
      // fp32 tensors (the attack's state) stay fp32 through element-wise work.
      const s = randn([3]);
      assert.equal(s.add(1).sign().clamp(-0.5, 0.5).dtype, 'float32');
    });
  });
});

test('the GroupNorm of a bf16 input equals the fp32 GroupNorm of the same values', () => {
  scope(() => {
    // Large mean, small spread: the statistics bf16 would get wrong (values are bf16-exact, 0.5 apart).
    const x = randn([1, 8, 16, 16]).mul(2).add(100).to('bfloat16');
    const got = bf16(() => F.groupNorm(x, 2));
    const want = F.groupNorm(x.float(), 2);
    assert.ok(relError(got, want) < 1e-6, `relative error ${relError(got, want)}`);
  });
});

test('withPrecision restores the previous state, also after a throw; fp32 inside bf16 turns autocast off', () => {
  scope(() => {
    const x = randn([1, 2, 4, 4]);
    const w = randn([2, 2, 1, 1]);
    bf16(() => {
      const inner = withPrecision('fp32', 'cpu', () => {
        assert.equal(reducedPrecision(), null);
        assert.equal(native.autocastState().cpu, false);
        return F.conv2d(x, w);
      });
      assert.equal(inner.dtype, 'float32');
      assert.equal(reducedPrecision(), 'bfloat16');
      assert.equal(F.conv2d(x, w).dtype, 'bfloat16', 'the outer region resumes');
    });
    assert.throws(() =>
      bf16(() => {
        throw new Error('boom');
      }),
    );
    assert.equal(reducedPrecision(), null);
    assert.equal(native.autocastState().cpu, false);
  });
});

test('refusals: fp16 on the CPU, unknown precisions and devices', () => {
  assert.throws(() => checkPrecision('fp16', 'cpu'), /fp16 runs on CUDA only.*use bf16/);
  assert.throws(() => checkPrecision('half', 'cpu'), /precision to be one of fp32, bf16, fp16 but received half/);
  assert.throws(() => withPrecision('bf16', 'mps', () => 1), /cpu or cuda, not mps/);
  assert.throws(() => native.setAutocast('cpu', true, 6), /bfloat16 or float16/);
  assert.equal(checkPrecision('fp16', 'cuda:1'), 'fp16');
});

const cpuinfo = (flags: string): string =>
  `processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu sse2 avx2 ${flags}\n\nprocessor\t: 1\nflags\t\t: fpu sse2 avx2 ${flags}\n`;

test('auto: bf16 where the CPU has avx512_bf16 or AMX, or on CUDA; fp32 elsewhere, with the reason', () => {
  assert.deepEqual(autoPrecision('cpu', cpuinfo('avx512f avx512_bf16')), {
    precision: 'bf16',
    reason: 'this CPU has avx512_bf16',
  });
  assert.equal(autoPrecision('cpu', cpuinfo('amx_tile amx_bf16')).precision, 'bf16');
  assert.deepEqual(autoPrecision('cpu', cpuinfo('avx512f avx512bw')), {
    precision: 'fp32',
    reason: 'this CPU has no native bf16 (avx512_bf16 or amx_bf16)',
  });
  assert.equal(autoPrecision('cpu', null).precision, 'fp32', 'no /proc/cpuinfo (not Linux)');
  // A flag's name inside another line is not a flag.
  assert.equal(nativeBf16Flag('model name\t: avx512_bf16 lookalike\nflags\t: sse2\n'), null);
  assert.deepEqual(autoPrecision('cuda', cpuinfo('')), { precision: 'bf16', reason: 'CUDA' });
});

/** ∂‖E(x) − E(gray)‖/∂x with the encoder at `precision`. */
function attackGradient(enc: ReturnType<typeof tinyEncoder>, x: Tensor, precision: 'fp32' | 'bf16'): Tensor {
  const e = atPrecision(enc, precision);
  return scope(() => {
    const target = noGrad(() => e.encode01(x.mul(0).add(0.5)));
    const xa = x.detach().requiresGrad_();
    const z = e.encode01(xa);
    assert.equal(z.dtype, 'float32', 'the latent comes back in fp32');
    const [g] = grad(z.sub(target).norm(), [xa]);
    assert.equal(g!.dtype, 'float32', 'the gradient on the image is fp32');
    return g!;
  });
}

test('the encoder-attack gradient in bf16 agrees with fp32: AutoencoderKL and TAEF2-style AutoencoderTiny', () => {
  manualSeed(3);
  const x = rand([1, 3, 32, 32]);
  const kl = seeded(new AutoencoderKL(tinyKL2));
  const tiny = seeded(
    new AutoencoderTiny({
      encoder_block_out_channels: [8, 8],
      decoder_block_out_channels: [8, 8],
      num_encoder_blocks: [1, 2],
      num_decoder_blocks: [2, 1],
      latent_channels: 4,
      use_midblock_gn: true, // TAEF2's GroupNorm branch
    }),
  );
  try {
    for (const [name, enc] of [
      ['AutoencoderKL', klEncoder(kl)],
      ['AutoencoderTiny', tinyEncoder(tiny)],
    ] as const) {
      const [g32, g16] = [attackGradient(enc, x, 'fp32'), attackGradient(enc, x, 'bf16')];
      const c = cosine(g32, g16);
      assert.ok(c > 0.98 && c < 1, `${name}: cosine ${c}`);
      g32.dispose();
      g16.dispose();
    }
  } finally {
    x.dispose();
    kl.dispose();
    tiny.dispose();
  }
});

test('the UNet and CLIP run under bf16 and stay close to fp32', () => {
  const unet = seeded(new UNet2DConditionModel(tinyUNet));
  const clip = seeded(new CLIPTextModel(tinyCLIP));
  try {
    noGrad(() =>
      scope(() => {
        manualSeed(5);
        const sample = randn([1, 4, 8, 8]);
        const context = randn([1, 3, 12]);
        const u32 = unet.forward(sample, 10, context);
        const u16 = bf16(() => unet.forward(sample, 10, context));
        assert.equal(u16.shape.join(), u32.shape.join());
        assert.ok(relError(u16, u32) < 0.05, `UNet: relative error ${relError(u16, u32)}`);
        const ids = tensor(BigInt64Array.from([1n, 5, 7, 19].map(BigInt)), [1, 4]);
        const c32 = clip.forward(ids).lastHiddenState;
        const c16 = bf16(() => clip.forward(ids).lastHiddenState);
        assert.equal(c16.dtype, 'float32', 'CLIP ends in a LayerNorm: fp32');
        assert.ok(relError(c16, c32) < 0.05, `CLIP: relative error ${relError(c16, c32)}`);
      }),
    );
  } finally {
    unet.dispose();
    clip.dispose();
  }
});

test('an encoder attack in bf16 keeps its state in fp32 and lowers the loss', () => {
  manualSeed(4);
  const x = rand([1, 3, 16, 16]);
  const tiny = seeded(
    new AutoencoderTiny({
      encoder_block_out_channels: [8],
      decoder_block_out_channels: [8],
      num_encoder_blocks: [1],
      num_decoder_blocks: [1],
    }),
  );
  try {
    const r = encoderAttack(tiny, x, { eps: 8 / 255, stepSize: 2 / 255, steps: 5, precision: 'bf16', seed: 1 });
    assert.equal(r.adv.dtype, 'float32');
    assert.ok(r.finalLoss < r.losses[0]!, `loss ${r.losses[0]} → ${r.finalLoss}`);
    assert.ok(scope(() => r.adv.sub(x).abs().max().item()) <= 8 / 255 + 1e-6);
    r.adv.dispose();
  } finally {
    x.dispose();
    tiny.dispose();
  }
});
