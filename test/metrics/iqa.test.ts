import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  FULL_REFERENCE_METRICS,
  MetricInputError,
  multiScaleSsim,
  psnr,
  srsim,
  ssim,
} from '../../src/metrics/index.js';
import { pyRound, rgb2yiq } from '../../src/metrics/functional.js';
import { imresize } from '../../src/metrics/imresize.js';
import {
  assertGradcheck,
  cat,
  full,
  grad,
  liveTensors,
  manualSeed,
  noGrad,
  rand,
  randn,
  scope,
  type Tensor,
} from '../../src/torch/index.js';

// Smallest side each metric accepts with its defaults (MS-SSIM: (11 − 1)·2⁴ + 1).
const SIDE: Record<string, number> = { multi_scale_ssim: 161 };
const side = (name: string) => SIDE[name] ?? 48;
// Metrics that need RGB with their defaults, and those that take 1 or 3 channels.
const GREY_OK = new Set([
  'psnr',
  'ssim',
  'multi_scale_ssim',
  'vif_p',
  'srsim',
  'gmsd',
  'multi_scale_gmsd',
  'vsi',
  'dss',
  'haarpsi',
  'mdsi',
]);
const COLOUR_ONLY = ['fsim', 'vif_p', 'srsim', 'gmsd', 'multi_scale_gmsd', 'vsi', 'dss', 'haarpsi', 'mdsi'];

/** A reference batch and a distorted copy (seeded), in [0, 1]. */
/** The full-reference metrics but MS-SSIM, which needs larger images than these tests use. */
const SINGLE_SCALE = Object.entries(FULL_REFERENCE_METRICS).filter(([name]) => name !== 'multi_scale_ssim');

function pair(n: number, c: number, s: number, seed = 0): [Tensor, Tensor] {
  manualSeed(seed);
  return scope(() => {
    // Smooth-ish images: upsampled noise, so that structure-based metrics see structure.
    const y = rand([n, c, Math.ceil(s / 4), Math.ceil(s / 4)]).reshape(n * c, 1, Math.ceil(s / 4), Math.ceil(s / 4));
    const big = imresize(y, { sizes: [s, s] })
      .reshape(n, c, s, s)
      .clamp(0, 1);
    const x = big.add(randn([n, c, s, s]).mul(0.05)).clamp(0, 1);
    return [x, big];
  });
}

const value = (t: Tensor) => noGrad(() => t.toArray());

test('identical images give the ideal value for every metric (RGB and greyscale)', () => {
  for (const [name, info] of Object.entries(FULL_REFERENCE_METRICS)) {
    for (const c of GREY_OK.has(name) ? [3, 1] : [3]) {
      scope(() => {
        const [, y] = pair(2, c, side(name));
        const got = value(noGrad(() => info.fn(y, y.clone(), { reduction: 'none' })));
        // DSS adds float32 eps to each kept subband weight (piq), so identical images give 1 + ~4e-6.
        for (const v of got)
          assert.ok(
            Math.abs(v - info.ideal) <= 1e-5 * Math.max(1, info.ideal),
            `${name} (C=${c}): identical images gave ${v}, expected ${info.ideal}`,
          );
      });
    }
  }
});

test('distorted images score worse than identical ones, in the direction each metric says', () => {
  for (const [name, info] of Object.entries(FULL_REFERENCE_METRICS)) {
    scope(() => {
      const [x, y] = pair(2, 3, side(name), 1);
      const got = value(noGrad(() => info.fn(x, y, { reduction: 'none' })));
      for (const v of got) {
        assert.ok(Number.isFinite(v), `${name}: ${v}`);
        if (info.better === 'higher')
          assert.ok(v < info.ideal, `${name}: distorted ${v} should be below ${info.ideal}`);
        else assert.ok(v > info.ideal, `${name}: distorted ${v} should be above ${info.ideal}`);
      }
    });
  }
});

test('a batch gives the same per-image values as single-image calls (SR-SIM with per-image saliency)', () => {
  for (const [name, info] of Object.entries(FULL_REFERENCE_METRICS)) {
    scope(() => {
      const [x, y] = pair(3, 3, side(name), 2);
      const opts = name === 'srsim' ? { saliencyNorm: 'image' as const } : {};
      const batched = value(noGrad(() => info.fn(x, y, { reduction: 'none', ...opts })));
      for (let i = 0; i < 3; i++) {
        const [single] = value(
          noGrad(() => info.fn(x.narrow(0, i, 1), y.narrow(0, i, 1), { reduction: 'none', ...opts })),
        );
        assert.ok(
          Math.abs(batched[i]! - single!) <= 1e-5 * Math.max(1, Math.abs(single!)),
          `${name}: image ${i} batched ${batched[i]} vs alone ${single}`,
        );
      }
    });
  }
});

test('SR-SIM: piq normalises saliency over the whole batch (default); per image on request', () => {
  scope(() => {
    const [x, y] = pair(2, 3, 48, 3);
    // Make the second image much brighter so the batch-wide min/max differ from its own.
    const x2 = cat([x.narrow(0, 0, 1), x.narrow(0, 1, 1).mul(0.2)], 0);
    const y2 = cat([y.narrow(0, 0, 1), y.narrow(0, 1, 1).mul(0.2)], 0);
    const batch = value(noGrad(() => srsim(x2, y2, { reduction: 'none' })));
    const perImage = value(noGrad(() => srsim(x2, y2, { reduction: 'none', saliencyNorm: 'image' })));
    const alone = value(noGrad(() => srsim(x2.narrow(0, 1, 1), y2.narrow(0, 1, 1), { reduction: 'none' })));
    assert.ok(Math.abs(perImage[1]! - alone[0]!) < 1e-6);
    // By default the brighter neighbour's min/max change the second image's score (by 4.6e-5 here;
    // float32 noise is ~1e-7)…
    assert.ok(Math.abs(batch[1]! - alone[0]!) > 1e-5, `batch-normalised ${batch[1]} vs alone ${alone[0]}`);
    // …and a batch whose extremes are the image's own (itself twice) gives its score alone.
    const twice = value(
      noGrad(() =>
        srsim(cat([x2.narrow(0, 1, 1), x2.narrow(0, 1, 1)], 0), cat([y2.narrow(0, 1, 1), y2.narrow(0, 1, 1)], 0), {
          reduction: 'none',
        }),
      ),
    );
    assert.ok(Math.abs(twice[0]! - alone[0]!) < 1e-6, `itself twice ${twice[0]} vs alone ${alone[0]}`);
    assert.throws(() => srsim(x2, y2, { saliencyNorm: 'nope' as never }), /srsim: saliencyNorm/);
  });
});

test('reductions: mean and sum over the batch, none keeps [N]; bad reduction is an error', () => {
  scope(() => {
    const [x, y] = pair(3, 3, 48, 4);
    for (const [name, info] of SINGLE_SCALE) {
      const none = value(noGrad(() => info.fn(x, y, { reduction: 'none' })));
      assert.equal(none.length, 3, name);
      const mean = noGrad(() => info.fn(x, y)).item();
      const sum = noGrad(() => info.fn(x, y, { reduction: 'sum' })).item();
      const s = none.reduce((a, b) => a + b, 0);
      assert.ok(Math.abs(mean - s / 3) < 1e-5 * Math.max(1, Math.abs(mean)), `${name}: mean ${mean} vs ${s / 3}`);
      assert.ok(Math.abs(sum - s) < 1e-5 * Math.max(1, Math.abs(sum)), `${name}: sum ${sum} vs ${s}`);
      assert.throws(
        () => info.fn(x, y, { reduction: 'max' as never }),
        (e: Error) => e.message.startsWith(`${name}: expected reduction`),
      );
    }
  });
});

test('dataRange: images in [0, 255] with dataRange 255 give the values of [0, 1] images', () => {
  scope(() => {
    const [x, y] = pair(2, 3, 48, 5);
    for (const [name, info] of SINGLE_SCALE) {
      const a = value(noGrad(() => info.fn(x, y, { reduction: 'none' })));
      const b = value(noGrad(() => info.fn(x.mul(255), y.mul(255), { reduction: 'none', dataRange: 255 })));
      a.forEach((v, i) =>
        assert.ok(
          Math.abs(v - b[i]!) <= 2e-4 * Math.max(1, Math.abs(v)),
          `${name}: ${v} vs ${b[i]} with dataRange 255`,
        ),
      );
    }
  });
});

test('bad input: shape mismatch, values outside [0, dataRange], wrong channel count, too small, not 4-d', () => {
  scope(() => {
    const [x, y] = pair(2, 3, 48, 6);
    for (const [name, info] of Object.entries(FULL_REFERENCE_METRICS)) {
      const is = (code: string, what: RegExp) => (e: unknown) => {
        assert.ok(e instanceof Error, String(e));
        assert.ok(e.message.startsWith(`${name}: `), `message should name the metric: ${e.message}`);
        assert.match(e.message, what);
        assert.equal((e as { code?: string }).code, code, e.message);
        return true;
      };
      assert.throws(
        () => info.fn(x, y.narrow(3, 0, 40)),
        is('E_SHAPE', /same shape.*\[2, 3, 48, 48\] and \[2, 3, 48, 40\]/),
      );
      assert.throws(() => info.fn(x.reshape(6, 48, 48), y.reshape(6, 48, 48)), is('E_SHAPE', /4-d/));
      if (name !== 'dss') {
        // DSS, as piq, does not check the value range.
        assert.throws(() => info.fn(x.sub(0.5), y, { dataRange: 1 }), is('E_RANGE', /x has values outside \[0, 1\]/));
        assert.throws(() => info.fn(x, y.mul(2), { dataRange: 1 }), is('E_RANGE', /y has values outside \[0, 1\]/));
      }
      assert.throws(() => info.fn(x, y, { dataRange: -1 }), is('E_ARGUMENT', /dataRange/));
      if (COLOUR_ONLY.includes(name) || name === 'fsim') {
        const x4 = cat([x, x.narrow(1, 0, 1)], 1);
        const y4 = cat([y, y.narrow(1, 0, 1)], 1);
        assert.throws(() => info.fn(x4, y4), is('E_SHAPE', /channels but received 4/));
      }
    }
    assert.throws(
      () => FULL_REFERENCE_METRICS['fsim']!.fn(x.narrow(1, 0, 1), y.narrow(1, 0, 1)),
      (e: Error) => e instanceof MetricInputError && /fsim: expected 3 \(RGB\) channels/.test(e.message),
    );
    assert.throws(() => multiScaleSsim(x, y), /multi_scale_ssim: images must be at least 161×161/);
    assert.throws(
      () =>
        FULL_REFERENCE_METRICS['vif_p']!.fn(x.narrow(2, 0, 32).narrow(3, 0, 32), y.narrow(2, 0, 32).narrow(3, 0, 32)),
      /vif_p: images must be at least 41×41/,
    );
    assert.throws(() => ssim(x, y, { kernelSize: 4 }), /ssim: kernelSize must be an odd/);
    assert.throws(() => psnr(x, 'y' as never, {}), /psnr: expected y to be a Tensor/);
    assert.throws(() => psnr(x.to('int32'), y.to('int32'), {}), /psnr: expected floating-point images but x is int32/);
  });
});

test('PSNR: piq values; the number form is the batch mean; greyscale uses Y of YIQ', () => {
  scope(() => {
    const y = full([1, 3, 8, 8], 0.5);
    const x = y.add(0.1);
    // MSE 0.01 → 20 dB.
    assert.ok(Math.abs(psnr(x, y, {}).item() - 20) < 1e-4);
    assert.ok(Math.abs(psnr(x, y) - 20) < 1e-4);
    assert.ok(Math.abs(psnr(x.mul(255), y.mul(255), 255) - 20) < 1e-4);
    // The number forms summarise without the range check (decoder outputs may overshoot a little).
    const big = full([1, 3, 16, 16], 0.5);
    assert.ok(Number.isFinite(psnr(x.add(0.6), y)) && Number.isFinite(ssim(big.add(0.6), big)));
    assert.throws(() => psnr(x.add(0.6), y, {}), /psnr: x has values outside \[0, 1\]/);
    const [a, b] = pair(2, 3, 16, 7);
    const grey = psnr(a, b, { convertToGreyscale: true, reduction: 'none' });
    const viaY = psnr(rgb2yiq(a).narrow(1, 0, 1), rgb2yiq(b).narrow(1, 0, 1), { reduction: 'none' });
    assert.ok(grey.allclose(viaY, 1e-5, 1e-5));
  });
});

test('gradients flow through PSNR and SSIM (usable as losses), and match finite differences', () => {
  scope(() => {
    const [x0, y] = pair(1, 3, 32, 8);
    for (const loss of [(x: Tensor) => psnr(x, y, {}).neg(), (x: Tensor) => ssim(x, y, {}).rsub(1)]) {
      const x = x0.detach().requiresGrad_();
      const [g] = grad(loss(x), [x]);
      assert.ok(
        g !== null && g !== undefined && g.isfinite().all().item() === 1 && g.abs().max().item() > 0,
        'gradient is finite and non-zero',
      );
    }
    // Finite differences in float64 on a small input (a 7×7 window keeps a 3×3 SSIM map).
    manualSeed(9);
    const a = rand([1, 1, 9, 9], { dtype: 'float64' }).mul(0.8).add(0.1).requiresGrad_();
    const b = rand([1, 1, 9, 9], { dtype: 'float64' }).mul(0.8).add(0.1);
    assertGradcheck((t) => ssim(t, b, { kernelSize: 7, reduction: 'none' }), [a], { atol: 1e-6, rtol: 1e-4 });
    assertGradcheck((t) => psnr(t, b, { reduction: 'none' }), [a], { atol: 1e-5, rtol: 1e-4 });
  });
});

test('pyRound rounds halves to even, like the Python round() piq sizes with', () => {
  assert.deepEqual([0.5, 1.5, 2.5, 3.5, 0.75, 1.25, 0.7500001].map(pyRound), [0, 2, 2, 4, 1, 1, 1]);
});

test('imresize (MATLAB bicubic): keeps constants, sizes by scale (ceil) or size, casts back', () => {
  scope(() => {
    const c = full([2, 1, 19, 23], 0.25, { dtype: 'float64' });
    const down = imresize(c, { scale: 0.25 });
    assert.deepEqual(down.shape, [2, 1, 5, 6]);
    assert.equal(down.dtype, 'float64');
    assert.ok(down.sub(0.25).abs().max().item() < 1e-6);
    const up = imresize(down, { sizes: [19, 23] });
    assert.deepEqual(up.shape, [2, 1, 19, 23]);
    assert.ok(up.sub(0.25).abs().max().item() < 1e-6);
  });
});

test('metrics do not leak tensors', () => {
  const [x, y] = pair(1, 3, 48, 10);
  const metrics = Object.entries(FULL_REFERENCE_METRICS).filter(([name]) => name !== 'multi_scale_ssim');
  for (const [, info] of metrics) noGrad(() => info.fn(x, y)).dispose(); // warm caches
  const before = liveTensors();
  for (const [, info] of metrics) noGrad(() => info.fn(x, y)).dispose();
  assert.equal(liveTensors(), before);
  x.dispose();
  y.dispose();
});
