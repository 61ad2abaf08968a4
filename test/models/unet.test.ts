import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { assertStateShapes } from '../helpers/state-shapes.js';
import { saveSafetensors } from '../../src/io/tensors.js';
import {
  CrossAttention,
  UNet2DConditionModel,
  attention,
  loadUNet,
  parseUNet2DConditionConfig,
} from '../../src/models/unet/index.js';
import { WeightsError } from '../../src/nn/module.js';
import {
  grad,
  liveTensors,
  manualSeed,
  noGrad,
  randn,
  scope,
  setNumThreads,
  tensor,
  type DType,
  type Tensor,
} from '../../src/torch/index.js';
import { tinyUNet as tiny } from '../helpers/tiny-configs.js';

// These models are tiny: one thread is as fast, and on a shared 2-core machine OpenMP's
// spin-waiting second thread made this file ~20× slower (measured 23 s vs 1 s under load).
setNumThreads(1);

// Two levels (one upsampler), 8/16 channels, 2 heads, a 12-wide context: big enough to exercise
// every block type and the skip bookkeeping, small enough for a 2-core machine.

function randomWeights(m: UNet2DConditionModel, seed = 0): Map<string, Tensor> {
  manualSeed(seed);
  // Norm scales around 1, everything else small: outputs depend on every weight.
  return new Map(
    [...m.stateShapes()].map(([k, s]) => [
      k,
      scope(() => (s.length === 1 && k.endsWith('.weight') ? randn(s).mul(0.1).add(1) : randn(s).mul(0.2))),
    ]),
  );
}

function tinyModel(config: Record<string, unknown> = tiny, dtype: DType = 'float32', seed = 0): UNet2DConditionModel {
  const m = new UNet2DConditionModel(config);
  const w = randomWeights(m, seed);
  m.loadStateDict(w, { dtype });
  for (const v of w.values()) v.dispose();
  return m;
}

/** Runs `body` on a fresh tiny model under noGrad and a scope, then disposes the model. */
function withTinyModel(body: (m: UNet2DConditionModel) => void): void {
  const m = tinyModel();
  try {
    noGrad(() => scope(() => body(m)));
  } finally {
    m.dispose();
  }
}

const maxAbs = (a: Tensor, b: Tensor): number => scope(() => a.sub(b).abs().max().item());

test('config: diffusers 0.14 defaults, per-block expansion, SD 2.x options', () => {
  const d = parseUNet2DConditionConfig({});
  assert.deepEqual(d.block_out_channels, [320, 640, 1280, 1280]);
  assert.deepEqual(d.attention_head_dim, [8, 8, 8, 8], 'one int means the same head count for every block');
  assert.deepEqual(d.only_cross_attention, [false, false, false, false]);
  assert.equal(d.cross_attention_dim, 1280);
  assert.equal(d.flip_sin_to_cos, true);
  assert.equal(d.mid_block_type, 'UNetMidBlock2DCrossAttn');
  const sd2 = parseUNet2DConditionConfig({
    attention_head_dim: [5, 10, 20, 20],
    use_linear_projection: true,
    upcast_attention: true,
    cross_attention_dim: 1024,
    addition_embed_type: null,
    transformer_layers_per_block: 1,
  });
  assert.deepEqual(sd2.attention_head_dim, [5, 10, 20, 20]);
  assert.equal(sd2.use_linear_projection, true);
  assert.equal(sd2.upcast_attention, true);
  assert.deepEqual(
    parseUNet2DConditionConfig({ ...sd2 }),
    sd2,
    'a parsed config parses to itself (the constructor takes either)',
  );
  // SD 2.x: attention_head_dim counts heads, so every block has 64-wide heads.
  const m = new UNet2DConditionModel(sd2);
  assert.equal(m.downBlocks.at(0).attentions!.at(0).transformerBlocks.at(0).attn1.heads, 5);
  assert.equal(m.downBlocks.at(0).attentions!.at(0).transformerBlocks.at(0).attn1.dimHead, 64);
  assert.equal(m.upBlocks.at(3).attentions!.at(0).transformerBlocks.at(0).attn1.heads, 5, 'up blocks mirror the list');
  assert.equal(m.midBlock!.attentions.at(0).transformerBlocks.at(0).attn1.heads, 20);
  assert.equal(m.downBlocks.at(0).attentions!.at(0).transformerBlocks.at(0).attn2!.upcastAttention, true);
});

test('a tiny config builds with diffusers key names and shapes', () => {
  const shapes = new UNet2DConditionModel(tiny).stateShapes();
  // Up block 0: resnet 0 sees 16 (previous) + 16 (skip) channels, resnet 1 16 + 8 (the first level's skip).
  assertStateShapes(shapes, 'unet-tiny');
  for (const k of [
    'down_blocks.1.downsamplers.0.conv.weight',
    'down_blocks.1.attentions.0.norm.weight',
    'up_blocks.0.attentions.0.norm.weight',
    'up_blocks.1.upsamplers.0.conv.weight',
    'down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.bias',
  ]) {
    assert.equal(shapes.has(k), false, `${k} must not exist`);
  }
  const linear = new UNet2DConditionModel({ ...tiny, use_linear_projection: true }).stateShapes();
  assert.deepEqual(
    linear.get('down_blocks.0.attentions.0.proj_in.weight'),
    [8, 8],
    'use_linear_projection: Linear proj_in',
  );
  assert.deepEqual(linear.get('mid_block.attentions.0.proj_out.weight'), [16, 16]);
  assert.deepEqual(
    new UNet2DConditionModel({ ...tiny, in_channels: 9 }).stateShapes().get('conv_in.weight'),
    [8, 9, 3, 3],
    'inpainting conv_in',
  );
  const oca = new UNet2DConditionModel({ ...tiny, only_cross_attention: true }).stateShapes();
  assert.deepEqual(
    oca.get('down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_k.weight'),
    [8, 12],
    'only_cross_attention: attn1 reads the context',
  );
  assert.deepEqual(
    oca.get('mid_block.attentions.0.transformer_blocks.0.attn1.to_k.weight'),
    [16, 16],
    'the mid block keeps self-attention',
  );
});

test('bad configs: the error names the field', () => {
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ block_out_channels: [8] }, /down_block_types has 2 entries but block_out_channels has 1/],
    [{ up_block_types: ['UpBlock2D'] }, /up_block_types has 1 entries but down_block_types has 2/],
    [
      { down_block_types: ['CrossAttnDownBlock2D', 'AttnDownBlock2D'] },
      /down_block_types\[1\] 'AttnDownBlock2D' is not supported/,
    ],
    [
      { up_block_types: ['UpBlock2D', 'SimpleCrossAttnUpBlock2D'] },
      /up_block_types\[1\] 'SimpleCrossAttnUpBlock2D' is not supported/,
    ],
    [{ attention_head_dim: [2, 2, 2] }, /attention_head_dim has 3 entries but down_block_types has 2/],
    [{ attention_head_dim: 0 }, /attention_head_dim should be a positive integer but is 0/],
    [{ norm_num_groups: 3 }, /norm_num_groups=3 does not divide block_out_channels\[0\]=8/],
    [{ block_out_channels: [8, -16] }, /block_out_channels\[1\] should be a positive integer but is -16/],
    [{ cross_attention_dim: '768' }, /cross_attention_dim should be a positive integer but is 768 of type string/],
    [{ class_embed_type: 'timestep' }, /class_embed_type="timestep" is not supported/],
    [{ resnet_time_scale_shift: 'scale_shift' }, /resnet_time_scale_shift="scale_shift" is not supported/],
    [{ num_attention_heads: 8 }, /num_attention_heads=8 is not supported/],
    [
      { mid_block_type: 'UNetMidBlock2DSimpleCrossAttn' },
      /mid_block_type 'UNetMidBlock2DSimpleCrossAttn' is not supported/,
    ],
    [{ use_linear_projection: 'yes' }, /use_linear_projection should be true or false/],
    [{ act_fn: 'mish' }, /act_fn: unknown activation function 'mish'/],
    [{ conv_in_kernel: 2 }, /conv_in_kernel should be odd/],
    [{ _class_name: 'UNet2DModel' }, /_class_name is 'UNet2DModel', expected UNet2DConditionModel/],
  ];
  for (const [patch, re] of bad) {
    assert.throws(
      () => parseUNet2DConditionConfig({ ...tiny, ...patch }, 'unet/config.json'),
      (e: Error & { code?: string }) =>
        e.code === 'E_CONFIG' && re.test(e.message) && e.message.startsWith('unet/config.json: '),
      `${JSON.stringify(patch)} → ${re}`,
    );
  }
  assert.throws(
    () => new UNet2DConditionModel({ ...tiny, block_out_channels: [8, 10] }),
    /norm_num_groups=4 does not divide block_out_channels\[1\]=10/,
    'the constructor validates too',
  );
});

test('forward: output shape, timestep forms, odd latent sizes', () => {
  withTinyModel((m) => {
    manualSeed(1);
    const x = randn([2, 4, 8, 8]);
    const ctx = randn([2, 5, 12]);
    const out = m.forward(x, 981, ctx);
    assert.deepEqual(out.shape, [2, 4, 8, 8]);
    assert.ok(out.isfinite().all().item() === 1, 'finite');
    assert.ok(out.abs().max().item() > 1e-3, 'not trivially zero');
    assert.ok(
      m.forward(x, tensor(BigInt64Array.from([981n, 981n]), [2]), ctx).equal(out),
      'per-item int64 tensor = the number',
    );
    assert.ok(m.forward(x, tensor(BigInt64Array.from([981n]), []), ctx).equal(out), '0-d tensor = the number');
    assert.ok(m.forward(x, tensor([981], [1], { dtype: 'float64' }), ctx).equal(out), 'float64 tensor = the number');
    assert.ok(maxAbs(m.forward(x, 1, ctx), out) > 1e-4, 'the timestep matters');
    const mixed = m.forward(x, tensor(BigInt64Array.from([10n, 500n]), [2]), ctx);
    assert.ok(mixed.select(0, 0).allclose(m.forward(x, 10, ctx).select(0, 0), 1e-5, 1e-6), 'item 0 at t=10');
    assert.ok(mixed.select(0, 1).allclose(m.forward(x, 500, ctx).select(0, 1), 1e-5, 1e-6), 'item 1 at t=500');
    assert.ok(maxAbs(m.forward(x, 977.25, ctx), m.forward(x, 977, ctx)) > 0, 'fractional timesteps are not truncated');
    assert.ok(maxAbs(m.forward(x, 981, ctx.neg()), out) > 1e-5, 'the context matters');
    // Cross-attention pools over tokens: their order does not matter, their values do.
    assert.ok(m.forward(x, 981, ctx.flip([1])).allclose(out, 1e-4, 1e-5), 'context tokens are a set');
    // 7 is not a multiple of 2^upsamplers = 2: the upsampler goes to the skip's size.
    assert.deepEqual(m.forward(randn([1, 4, 7, 5]), 3, randn([1, 5, 12])).shape, [1, 4, 7, 5]);
  });
});

test('wrong inputs: clear errors before anything runs', () => {
  withTinyModel((m) => {
    const ctx = randn([1, 5, 12]);
    const shapeErr = (re: RegExp) => (e: Error & { code?: string }) => e.code === 'E_SHAPE' && re.test(e.message);
    assert.throws(
      () => m.forward(randn([1, 3, 8, 8]), 1, ctx),
      shapeErr(/sample has 3 channels but this UNet's in_channels is 4; shape \[1, 3, 8, 8\]/),
    );
    assert.throws(() => m.forward(randn([1, 9, 8, 8]), 1, ctx), shapeErr(/9 channels is the inpainting layout/));
    assert.throws(
      () => m.forward(randn([1, 4, 8, 8]), 1, randn([1, 5, 768])),
      shapeErr(
        /encoderHiddenStates should be \[batch, tokens, 12\] \(cross_attention_dim\) but has shape \[1, 5, 768\]/,
      ),
    );
    assert.throws(
      () => m.forward(randn([2, 4, 8, 8]), 1, ctx),
      shapeErr(/encoderHiddenStates has batch 1 but sample has batch 2/),
    );
    assert.throws(() => m.forward(randn([4, 8, 8]), 1, ctx), /sample should be \[batch, 4, height, width\]/);
    assert.throws(
      () => m.forward(randn([1, 4, 8, 8]), tensor([1, 2, 3]), ctx),
      /timestep tensor should be 0-d or have 1 or 1 \(batch\) entries but has shape \[3\]/,
    );
    assert.throws(() => m.forward(randn([1, 4, 8, 8]), NaN, ctx), /timestep should be a finite number/);
    const inpaint = new UNet2DConditionModel({ ...tiny, in_channels: 9 });
    inpaint.initZeros();
    assert.throws(
      () => inpaint.forward(randn([1, 4, 8, 8]), 1, ctx),
      shapeErr(
        /in_channels is 9 \(an inpainting UNet takes cat\(\[latents \(4\), mask \(1\), masked-image latents \(4\)\]\)/,
      ),
    );
    inpaint.dispose();
  });
});

test('gradients to the sample and the context flow, are finite and match central differences (float64)', () => {
  const m = tinyModel(tiny, 'float64');
  try {
    scope(() => {
      manualSeed(2);
      const x = randn([1, 4, 4, 4], { dtype: 'float64' }).requiresGrad_();
      const ctx = randn([1, 3, 12], { dtype: 'float64' }).requiresGrad_();
      const w = randn([1, 4, 4, 4], { dtype: 'float64' });
      const loss = (xx: Tensor, cc: Tensor) => m.forward(xx, 500, cc).mul(w).sum();
      const [gx, gc] = grad(loss(x, ctx), [x, ctx]) as [Tensor, Tensor];
      for (const [g, name] of [
        [gx, 'sample'],
        [gc, 'context'],
      ] as const) {
        assert.ok(g.isfinite().all().item() === 1, `∂/∂${name} is finite`);
        assert.ok(g.abs().max().item() > 1e-6, `∂/∂${name} is not zero`);
      }
      noGrad(() => {
        const h = 1e-5;
        for (const [v, g, name] of [
          [x, gx, 'sample'],
          [ctx, gc, 'context'],
        ] as const) {
          const d = randn(v.shape, { dtype: 'float64' });
          const plus = v === x ? loss(x.add(d.mul(h)), ctx) : loss(x, ctx.add(d.mul(h)));
          const minus = v === x ? loss(x.sub(d.mul(h)), ctx) : loss(x, ctx.sub(d.mul(h)));
          const fd = plus.sub(minus).item() / (2 * h);
          const an = g.mul(d).sum().item();
          assert.ok(
            Math.abs(fd - an) <= 1e-6 * Math.max(1, Math.abs(an)),
            `${name}: directional derivative ${an} vs central difference ${fd}`,
          );
        }
      });
    });
  } finally {
    m.dispose();
  }
});

test('attention: no NaN from uninitialised memory (libtorch 1.13 baddbmm trap); upcast computes scores in float32', () => {
  const att = new CrossAttention(8, { heads: 2, dimHead: 4, crossAttentionDim: 6 });
  manualSeed(3);
  att.loadStateDict(new Map([...att.stateShapes()].map(([k, s]) => [k, randn(s)])));
  try {
    noGrad(() =>
      scope(() => {
        // Tiny products are where beta=0 baddbmm read garbage almost every time.
        const x = randn([1, 3, 8]);
        const c = randn([1, 2, 6]);
        const first = att.forward(x, c);
        assert.ok(first.isfinite().all().item() === 1);
        for (let i = 0; i < 200; i++)
          scope(() => assert.ok(att.forward(x, c).equal(first), `call ${i} differs from the first`));
        // Against the definition: softmax(q kᵀ / √d) v per head.
        const q = x.matmul(att.toQ.weight.t.transpose(0, 1)).view(1, 3, 2, 4).transpose(1, 2);
        const k = c.matmul(att.toK.weight.t.transpose(0, 1)).view(1, 2, 2, 4).transpose(1, 2);
        const v = c.matmul(att.toV.weight.t.transpose(0, 1)).view(1, 2, 2, 4).transpose(1, 2);
        const ref = q.matmul(k.transpose(-1, -2)).div(2).softmax(-1).matmul(v);
        assert.ok(maxAbs(attention(q, k, v, 0.5), ref) < 1e-6, 'attention() = softmax(q kᵀ · scale) v');
        // upcast: bfloat16 q, k → float32 scores and softmax; probabilities back to bfloat16 for v.
        const [qb, kb, vb] = [q.to('bfloat16'), k.to('bfloat16'), v.to('bfloat16')];
        const up = attention(qb, kb, vb, 0.5, { upcast: true });
        assert.equal(up.dtype, 'bfloat16');
        const manual = qb
          .to('float32')
          .matmul(kb.to('float32').transpose(-1, -2))
          .mul(0.5)
          .softmax(-1)
          .to('bfloat16')
          .matmul(vb);
        assert.ok(up.equal(manual), 'upcast path = float32 scores');
      }),
    );
  } finally {
    att.dispose();
  }
});

test('no tensor leak across 20 forward passes (inference and with gradients)', async () => {
  const m = tinyModel();
  const gc = (globalThis as { gc?: () => void }).gc;
  try {
    manualSeed(4);
    const x = randn([1, 4, 4, 4]);
    const ctx = randn([1, 3, 12]);
    gc?.();
    await new Promise((r) => setImmediate(r));
    const before = liveTensors();
    for (let i = 0; i < 20; i++) {
      noGrad(() =>
        scope(() => {
          m.forward(x, 10 * i, ctx);
        }),
      );
      if (i % 5 === 0) {
        scope(() => {
          const xg = x.detach().requiresGrad_();
          grad(m.forward(xg, i, ctx).square().mean(), [xg]);
        });
      }
      m.forward(x, 1.5, ctx, { trace: () => {} }).dispose();
    }
    assert.equal(liveTensors(), before, 'every temporary was freed');
    x.dispose();
    ctx.dispose();
  } finally {
    m.dispose();
  }
});

test('trace reports intermediates by module path, in order', () => {
  withTinyModel((m) => {
    const seen: [string, number[]][] = [];
    m.forward(randn([1, 4, 8, 8]), 7, randn([1, 3, 12]), { trace: (name, t) => seen.push([name, t.shape]) });
    assert.deepEqual(seen, [
      ['time_proj', [1, 8]],
      ['time_embedding', [1, 32]],
      ['conv_in', [1, 8, 8, 8]],
      ['down_blocks.0', [1, 8, 4, 4]],
      ['down_blocks.1', [1, 16, 4, 4]],
      ['mid_block', [1, 16, 4, 4]],
      ['up_blocks.0', [1, 16, 8, 8]],
      ['up_blocks.1', [1, 8, 8, 8]],
    ]);
  });
});

test('loadUNet: unet/ folder, pipeline root, fp16 variant, and clear errors', () => {
  const root = mkdtempSync(join(tmpdir(), 'immunize-unet-'));
  const dir = join(root, 'unet');
  mkdirSync(dir);
  writeFileSync(join(root, 'model_index.json'), '{}');
  writeFileSync(join(dir, 'config.json'), JSON.stringify(tiny));
  const ref = tinyModel();
  const half = new Map([...ref.stateDict()].map(([k, v]) => [k, v.to('float16')]));
  saveSafetensors(join(dir, 'diffusion_pytorch_model.safetensors'), ref.stateDict());
  saveSafetensors(join(dir, 'diffusion_pytorch_model.fp16.safetensors'), half);
  try {
    noGrad(() =>
      scope(() => {
        const x = randn([1, 4, 4, 4]);
        const ctx = randn([1, 3, 12]);
        const want = ref.forward(x, 5, ctx);
        for (const p of [dir, root, join(dir, 'diffusion_pytorch_model.safetensors')]) {
          using u = loadUNet(p);
          assert.ok(u.forward(x, 5, ctx).equal(want), `loaded from ${p}`);
        }
        using u16 = loadUNet(dir, { variant: 'fp16' });
        assert.equal(u16.dtype, 'float32', 'fp16 on disk converts to the compute dtype');
        assert.ok(u16.convIn.weight.t.equal(half.get('conv_in.weight')!.to('float32')), 'the .fp16 file was chosen');
      }),
    );
    const bare = mkdtempSync(join(tmpdir(), 'immunize-unet-'));
    writeFileSync(join(bare, 'diffusion_pytorch_model.safetensors'), '');
    assert.throws(
      () => loadUNet(bare),
      (e: Error & { code?: string }) => e.code === 'E_MODEL_FILE' && /no config\.json/.test(e.message),
    );
    assert.throws(() => loadUNet(join(root, 'nope')), /UNet not found: .*nope does not exist/);
    writeFileSync(join(root, 'unet.ckpt'), 'x');
    assert.throws(
      () => loadUNet(join(root, 'unet.ckpt')),
      (e: Error & { code?: string }) => e.code === 'E_PICKLE_REFUSED',
    );
    const partial = join(root, 'partial');
    mkdirSync(partial);
    writeFileSync(join(partial, 'config.json'), JSON.stringify(tiny));
    const some = new Map([...ref.stateDict()].filter(([k]) => k !== 'conv_out.bias'));
    saveSafetensors(join(partial, 'diffusion_pytorch_model.safetensors'), some);
    assert.throws(
      () => loadUNet(partial),
      (e: unknown) => e instanceof WeightsError && e.code === 'E_WEIGHTS_MISSING' && /conv_out\.bias/.test(e.message),
    );
    writeFileSync(join(partial, 'config.json'), JSON.stringify({ ...tiny, attention_head_dim: [1, 2, 3] }));
    assert.throws(
      () => loadUNet(partial),
      (e: Error & { code?: string }) =>
        e.code === 'E_CONFIG' &&
        e.message.includes(join(partial, 'config.json')) &&
        /attention_head_dim has 3 entries/.test(e.message),
    );
  } finally {
    ref.dispose();
    for (const v of half.values()) v.dispose();
  }
});
