// Functional ops (torch.nn.functional) against plain-JS reference implementations and known
// values: convolutions, normalisations, activations, interpolation, padding, pooling, FFTs and
// scaled dot-product attention.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ImmunizeError } from '../../src/errors.js';
import { F, Tensor, arange, fft, full, ones, tensor, zeros } from '../../src/torch/index.js';
import { assertClose, assertShape, assertValues, f64, jsRandom } from './helpers.js';

// ---- helpers --------------------------------------------------------------------------------

const isArgErr =
  (re?: RegExp) =>
  (e: unknown): boolean =>
    e instanceof ImmunizeError && e.code === 'E_ARGUMENT' && (re === undefined || re.test(e.message));

/** 4-d row-major accessor. */
const at4 = (d: readonly number[], s: readonly number[], n: number, c: number, h: number, w: number): number =>
  d[((n * s[1]! + c) * s[2]! + h) * s[3]! + w]!;

/**
 * erf by the series erf(x) = 2/sqrt(pi) e^(-x^2) sum 2^n x^(2n+1) / (2n+1)!! — all terms have
 * the sign of x, so there is no cancellation and the result is accurate to a few ulp.
 */
function erf(x: number): number {
  if (Math.abs(x) > 6) return Math.sign(x);
  let term = x;
  let sum = x;
  for (let n = 1; n < 500; n++) {
    term *= (2 * x * x) / (2 * n + 1);
    sum += term;
    if (Math.abs(term) < 1e-17 * Math.abs(sum)) break;
  }
  return (2 / Math.sqrt(Math.PI)) * Math.exp(-x * x) * sum;
}

// ---- convolutions -------------------------------------------------------------------------------

interface ConvCfg {
  stride: [number, number];
  padding: [number, number];
  dilation: [number, number];
  groups: number;
}

function conv2dJs(
  x: number[],
  xs: number[],
  w: number[],
  ws: number[],
  b: number[] | null,
  o: ConvCfg,
): { data: number[]; shape: number[] } {
  const [N, C, H, W] = xs as [number, number, number, number];
  const [O, Cg, KH, KW] = ws as [number, number, number, number];
  const [sh, sw] = o.stride;
  const [ph, pw] = o.padding;
  const [dh, dw] = o.dilation;
  const OH = Math.floor((H + 2 * ph - dh * (KH - 1) - 1) / sh) + 1;
  const OW = Math.floor((W + 2 * pw - dw * (KW - 1) - 1) / sw) + 1;
  const opg = O / o.groups;
  assert.equal(Cg * o.groups, C, 'test setup: channels/groups');
  const out: number[] = [];
  for (let n = 0; n < N; n++)
    for (let oc = 0; oc < O; oc++)
      for (let i = 0; i < OH; i++)
        for (let j = 0; j < OW; j++) {
          const g = Math.floor(oc / opg);
          let s = b === null ? 0 : b[oc]!;
          for (let ci = 0; ci < Cg; ci++)
            for (let ki = 0; ki < KH; ki++)
              for (let kj = 0; kj < KW; kj++) {
                const hi = i * sh - ph + ki * dh;
                const wi = j * sw - pw + kj * dw;
                if (hi < 0 || hi >= H || wi < 0 || wi >= W) continue;
                s += at4(x, xs, n, g * Cg + ci, hi, wi) * at4(w, ws, oc, ci, ki, kj);
              }
          out.push(s);
        }
  return { data: out, shape: [N, O, OH, OW] };
}

/** A float64 tensor of `shape` holding jsRandom(numel, seed). */
const randomF64 = (shape: number[], seed: number): Tensor => {
  const numel = shape.reduce((p, q) => p * q, 1);
  return f64(jsRandom(numel, seed), shape);
};

describe('convolutions', () => {
  type Pair = [number, number];
  type ConvCase = { name: string; xs: number[]; ws: number[]; bias: boolean; o: ConvCfg };
  /** A conv2d case: input and weight shapes, whether there is a bias, and the ConvCfg fields in order. */
  const conv = (
    name: string,
    xs: number[],
    ws: number[],
    bias: boolean,
    stride: Pair,
    padding: Pair,
    dilation: Pair,
    groups: number,
  ): ConvCase => ({
    name,
    xs,
    ws,
    bias,
    o: { stride, padding, dilation, groups },
  });
  const configs: ConvCase[] = [
    conv('3x3 valid', [1, 2, 5, 6], [3, 2, 3, 3], false, [1, 1], [0, 0], [1, 1], 1),
    conv('bias, stride 2, padding 1', [2, 3, 7, 6], [4, 3, 3, 3], true, [2, 2], [1, 1], [1, 1], 1),
    conv(
      'non-square kernel, stride (1,2), padding (2,0), dilation 2',
      [1, 2, 8, 9],
      [2, 2, 3, 2],
      true,
      [1, 2],
      [2, 0],
      [2, 2],
      1,
    ),
    conv('groups 2', [1, 4, 5, 5], [6, 2, 3, 3], true, [1, 1], [1, 1], [1, 1], 2),
    conv('1x1 depthwise', [1, 3, 4, 4], [3, 1, 1, 1], false, [1, 1], [0, 0], [1, 1], 3),
  ];
  configs.forEach((cfg, ci) => {
    test(`conv2d matches a naive JS convolution: ${cfg.name}`, () => {
      const nx = cfg.xs.reduce((p, q) => p * q, 1);
      const nw = cfg.ws.reduce((p, q) => p * q, 1);
      const X = jsRandom(nx, 100 + ci);
      const Wt = jsRandom(nw, 200 + ci);
      const Bv = cfg.bias ? jsRandom(cfg.ws[0]!, 300 + ci) : null;
      const want = conv2dJs(X, cfg.xs, Wt, cfg.ws, Bv, cfg.o);
      const got = F.conv2d(f64(X, cfg.xs), f64(Wt, cfg.ws), Bv === null ? null : f64(Bv, [Bv.length]), cfg.o);
      assertShape(got, want.shape, `conv2d ${cfg.name}`);
      assertValues(got, want.data, `conv2d ${cfg.name}`, 1e-12, 1e-10);
      // float32 path agrees too (different kernels in libtorch)
      const got32 = F.conv2d(
        f64(X, cfg.xs).float(),
        f64(Wt, cfg.ws).float(),
        Bv === null ? null : f64(Bv, [Bv.length]).float(),
        cfg.o,
      );
      assertValues(got32, want.data, `conv2d float32 ${cfg.name}`, 1e-5, 1e-4);
    });
  });

  test("conv2d padding 'same' keeps the spatial size and equals explicit padding", () => {
    const X = jsRandom(2 * 6 * 7, 7);
    const Wt = jsRandom(3 * 2 * 3 * 3, 8);
    const same = F.conv2d(f64(X, [1, 2, 6, 7]), f64(Wt, [3, 2, 3, 3]), null, { padding: 'same' });
    assertShape(same, [1, 3, 6, 7], "padding 'same'");
    const explicit = conv2dJs(X, [1, 2, 6, 7], Wt, [3, 2, 3, 3], null, {
      stride: [1, 1],
      padding: [1, 1],
      dilation: [1, 1],
      groups: 1,
    });
    assertValues(same, explicit.data, "padding 'same'", 1e-12);
  });

  test('conv_transpose2d is the adjoint of conv2d: <conv(x), y> = <x, convT(y)>', () => {
    const cases: {
      xs: number[];
      ws: number[];
      stride: [number, number];
      padding: [number, number];
      outputPadding: [number, number];
      groups: number;
    }[] = [
      { xs: [1, 3, 7, 6], ws: [4, 3, 3, 3], stride: [2, 2], padding: [1, 1], outputPadding: [0, 1], groups: 1 },
      { xs: [2, 2, 5, 5], ws: [3, 2, 3, 3], stride: [1, 1], padding: [0, 0], outputPadding: [0, 0], groups: 1 },
      { xs: [1, 4, 8, 8], ws: [4, 2, 4, 4], stride: [2, 2], padding: [1, 1], outputPadding: [0, 0], groups: 2 },
    ];
    cases.forEach((c, i) => {
      const x = randomF64(c.xs, 400 + i);
      const w = randomF64(c.ws, 500 + i);
      const cx = F.conv2d(x, w, null, { stride: c.stride, padding: c.padding, groups: c.groups });
      const y = f64(jsRandom(cx.numel, 600 + i), cx.shape);
      const ty = F.convTranspose2d(y, w, null, {
        stride: c.stride,
        padding: c.padding,
        outputPadding: c.outputPadding,
        groups: c.groups,
      });
      assertShape(ty, c.xs, `convTranspose2d case ${i} output shape`);
      const lhs = cx.mul(y).sum().item();
      const rhs = x.mul(ty).sum().item();
      assert.ok(
        Math.abs(lhs - rhs) <= 1e-10 * Math.max(1, Math.abs(lhs)),
        `case ${i}: <conv(x), y> = ${lhs} but <x, convT(y)> = ${rhs}`,
      );
    });
    // bias is added once per output channel
    const y = ones([1, 2, 2, 2], { dtype: 'float64' });
    const w = ones([2, 3, 1, 1], { dtype: 'float64' });
    const out = F.convTranspose2d(y, w, f64([10, 20, 30], [3]));
    assertValues(
      out,
      [...Array<number>(4).fill(12), ...Array<number>(4).fill(22), ...Array<number>(4).fill(32)],
      'convTranspose2d with bias',
      1e-12,
    );
  });
});

// ---- normalisation ---------------------------------------------------------------------------------

describe('normalisation layers', () => {
  const XS = [2, 6, 3, 4];
  const X = jsRandom(2 * 6 * 3 * 4, 900, -2, 3);
  const Wc = jsRandom(6, 901, 0.5, 1.5);
  const Bc = jsRandom(6, 902);

  test('group_norm against the JS formula (3 groups, with and without affine)', () => {
    const G = 3;
    const eps = 1e-5;
    const cpg = 6 / G;
    const want: number[] = new Array<number>(X.length);
    const wantPlain: number[] = new Array<number>(X.length);
    for (let n = 0; n < 2; n++)
      for (let g = 0; g < G; g++) {
        const vals: number[] = [];
        for (let c = g * cpg; c < (g + 1) * cpg; c++)
          for (let h = 0; h < 3; h++) for (let w = 0; w < 4; w++) vals.push(at4(X, XS, n, c, h, w));
        const mean = vals.reduce((p, q) => p + q, 0) / vals.length;
        const v = vals.reduce((p, q) => p + (q - mean) ** 2, 0) / vals.length;
        for (let c = g * cpg; c < (g + 1) * cpg; c++)
          for (let h = 0; h < 3; h++)
            for (let w = 0; w < 4; w++) {
              const idx = ((n * 6 + c) * 3 + h) * 4 + w;
              const z = (X[idx]! - mean) / Math.sqrt(v + eps);
              wantPlain[idx] = z;
              want[idx] = z * Wc[c]! + Bc[c]!;
            }
      }
    assertValues(F.groupNorm(f64(X, XS), G, f64(Wc, [6]), f64(Bc, [6])), want, 'groupNorm affine', 1e-10);
    assertValues(F.groupNorm(f64(X, XS), G), wantPlain, 'groupNorm plain', 1e-10);
    assertValues(
      F.groupNorm(f64(X, XS).float(), G, f64(Wc, [6]).float(), f64(Bc, [6]).float()),
      want,
      'groupNorm float32',
      1e-5,
      1e-4,
    );
    assert.throws(() => F.groupNorm(f64(X, XS), 4), isArgErr(/6 channels/), 'groups must divide channels');
  });

  test('layer_norm over the last two dims against the JS formula', () => {
    const eps = 1e-5;
    const Wl = jsRandom(12, 903, 0.5, 1.5);
    const Bl = jsRandom(12, 904);
    const want: number[] = [];
    for (let r = 0; r < 12; r++) {
      const vals = X.slice(r * 12, r * 12 + 12);
      const mean = vals.reduce((p, q) => p + q, 0) / 12;
      const v = vals.reduce((p, q) => p + (q - mean) ** 2, 0) / 12;
      vals.forEach((q, i) => want.push(((q - mean) / Math.sqrt(v + eps)) * Wl[i]! + Bl[i]!));
    }
    assertValues(F.layerNorm(f64(X, XS), [3, 4], f64(Wl, [3, 4]), f64(Bl, [3, 4])), want, 'layerNorm', 1e-10);
    const y = F.layerNorm(f64(X, XS), [4]);
    assertValues(y.mean(-1), Array<number>(2 * 6 * 3).fill(0), 'layerNorm rows have zero mean', 1e-12);
    assertValues(
      y.var(-1, { correction: 0 }),
      Array<number>(2 * 6 * 3).fill(1),
      'layerNorm rows have unit variance',
      1e-4,
    );
  });

  test('batch_norm in eval mode uses running statistics; training mode updates them', () => {
    const eps = 1e-5;
    const rm = jsRandom(6, 905);
    const rv = jsRandom(6, 906, 0.5, 2);
    const want = X.map((v, i) => {
      const c = Math.floor(i / 12) % 6;
      return ((v - rm[c]!) / Math.sqrt(rv[c]! + eps)) * Wc[c]! + Bc[c]!;
    });
    const runMean = f64(rm, [6]);
    const runVar = f64(rv, [6]);
    assertValues(
      F.batchNorm(f64(X, XS), runMean, runVar, { weight: f64(Wc, [6]), bias: f64(Bc, [6]) }),
      want,
      'batchNorm eval',
      1e-10,
    );
    assertValues(runMean, rm, 'eval mode must not touch running mean', 0);
    // training: normalises by batch statistics and moves the running stats by momentum
    const m = 0.1;
    const yTrain = F.batchNorm(f64(X, XS), runMean, runVar, { training: true, momentum: m });
    const bm: number[] = [];
    const bvU: number[] = [];
    const wantTrain = new Array<number>(X.length);
    for (let c = 0; c < 6; c++) {
      const idxs: number[] = [];
      for (let n = 0; n < 2; n++) for (let k = 0; k < 12; k++) idxs.push((n * 6 + c) * 12 + k);
      const vals = idxs.map((i) => X[i]!);
      const mean = vals.reduce((p, q) => p + q, 0) / vals.length;
      const ss = vals.reduce((p, q) => p + (q - mean) ** 2, 0);
      bm.push(mean);
      bvU.push(ss / (vals.length - 1));
      idxs.forEach((i) => {
        wantTrain[i] = (X[i]! - mean) / Math.sqrt(ss / vals.length + eps);
      });
    }
    assertValues(yTrain, wantTrain, 'batchNorm training output', 1e-10);
    assertValues(
      runMean,
      rm.map((v, c) => (1 - m) * v + m * bm[c]!),
      'running mean update',
      1e-12,
    );
    assertValues(
      runVar,
      rv.map((v, c) => (1 - m) * v + m * bvU[c]!),
      'running var update (unbiased)',
      1e-12,
    );
  });
});

// ---- activations ----------------------------------------------------------------------------------

describe('activations', () => {
  const V = [...jsRandom(40, 1000, -5, 5), 0, -0, 1e-8, -1e-8, 4.99, -4.99];
  const x = (): Tensor => f64(V, [V.length]);
  const sig = (v: number): number => 1 / (1 + Math.exp(-v));

  test('relu, sigmoid, tanh, silu', () => {
    assertValues(
      F.relu(x()),
      V.map((v) => Math.max(0, v)),
      'relu',
      0,
    );
    assertValues(F.sigmoid(x()), V.map(sig), 'sigmoid', 1e-15, 1e-14);
    assertValues(F.tanh(x()), V.map(Math.tanh), 'tanh', 1e-15, 1e-14);
    assertValues(
      F.silu(x()),
      V.map((v) => v * sig(v)),
      'silu',
      1e-15,
      1e-14,
    );
    assertValues(
      F.silu(x().float()),
      V.map((v) => v * sig(v)),
      'silu float32',
      1e-6,
      1e-5,
    );
  });

  test('erf and gelu (exact) against a high-accuracy JS erf; gelu tanh approximation', () => {
    assertValues(x().erf(), V.map(erf), 'erf', 1e-13, 1e-12);
    const exact = V.map((v) => 0.5 * v * (1 + erf(v / Math.SQRT2)));
    assertValues(F.gelu(x()), exact, 'gelu exact', 1e-13, 1e-12);
    assertValues(F.gelu(x().float()), exact, 'gelu exact float32', 1e-6, 1e-5);
    // and with the tensor's own erf
    const own = x().div(Math.SQRT2).erf().add(1).mul(x()).mul(0.5);
    assertValues(F.gelu(x()), own.toArray(), 'gelu vs 0.5x(1+erf(x/sqrt2)) on tensors', 1e-14, 1e-13);
    const tanhForm = V.map((v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3))));
    assertValues(F.gelu(x(), 'tanh'), tanhForm, 'gelu tanh', 1e-14, 1e-12);
    // the two forms differ measurably, so the approximate flag is honoured
    const diff = F.gelu(x(), 'tanh').sub(F.gelu(x())).abs().max().item();
    assert.ok(diff > 1e-5, `gelu 'tanh' and 'none' must differ, max |diff| = ${diff}`);
    assert.throws(() => F.gelu(x(), 'bogus' as 'tanh'), /approximate|bogus/i);
  });

  test('softmax and log_softmax over a dim', () => {
    const S = [2, 3, 4];
    const D = jsRandom(24, 1001, -10, 10);
    for (const dim of [1, 2, -1]) {
      const d = dim < 0 ? dim + 3 : dim;
      const want = new Array<number>(24);
      const wantLog = new Array<number>(24);
      const stride = d === 2 ? 1 : 4;
      for (let f = 0; f < 24; f++) {
        const pos = Math.floor(f / stride) % S[d]!;
        const base = f - pos * stride;
        const row = Array.from({ length: S[d]! }, (_, r) => D[base + r * stride]!);
        const mx = Math.max(...row);
        const lse = mx + Math.log(row.reduce((p, q) => p + Math.exp(q - mx), 0));
        want[f] = Math.exp(D[f]! - lse);
        wantLog[f] = D[f]! - lse;
      }
      assertValues(F.softmax(f64(D, S), dim), want, `softmax(dim ${dim})`, 1e-14, 1e-12);
      assertValues(F.logSoftmax(f64(D, S), dim), wantLog, `logSoftmax(dim ${dim})`, 1e-13, 1e-12);
    }
    const big = F.softmax(tensor([1000, 0, -1000]), 0);
    assertValues(big, [1, 0, 0], 'softmax is stable for large logits', 1e-7);
    const h = F.softmax(tensor([1, 2, 3]).half(), 0, 'float32');
    assert.equal(h.dtype, 'float32', 'softmax dtype argument');
  });
});

// ---- interpolation -------------------------------------------------------------------------------

/** PyTorch's area_pixel_compute_scale / source index, for one axis. */
function axisScale(inSize: number, outSize: number, alignCorners: boolean): number {
  if (alignCorners) return outSize > 1 ? (inSize - 1) / (outSize - 1) : 0;
  return inSize / outSize;
}
function srcIndex(scale: number, dst: number, alignCorners: boolean, cubic: boolean): number {
  if (alignCorners) return scale * dst;
  const s = scale * (dst + 0.5) - 0.5;
  return !cubic && s < 0 ? 0 : s;
}

/** Separable resampling: out[o] = sum_j weights(o)[j] * in[j], per axis. */
type AxisWeights = (outIndex: number) => [number, number][];

function resample2d(
  img: readonly number[],
  H: number,
  W: number,
  OH: number,
  OW: number,
  wy: AxisWeights,
  wx: AxisWeights,
): number[] {
  const out: number[] = [];
  for (let i = 0; i < OH; i++)
    for (let j = 0; j < OW; j++) {
      let s = 0;
      for (const [yi, ay] of wy(i)) for (const [xi, ax] of wx(j)) s += ay * ax * img[yi * W + xi]!;
      out.push(s);
    }
  return out;
}

function linearWeights(inSize: number, outSize: number, ac: boolean): AxisWeights {
  const scale = axisScale(inSize, outSize, ac);
  return (o) => {
    const r = srcIndex(scale, o, ac, false);
    const i0 = Math.floor(r);
    const p = i0 < inSize - 1 ? 1 : 0;
    const l1 = r - i0;
    return [
      [i0, 1 - l1],
      [i0 + p, l1],
    ];
  };
}

function cubicWeights(inSize: number, outSize: number, ac: boolean): AxisWeights {
  const A = -0.75;
  const cc1 = (x: number): number => ((A + 2) * x - (A + 3)) * x * x + 1;
  const cc2 = (x: number): number => ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
  const scale = axisScale(inSize, outSize, ac);
  return (o) => {
    const r = srcIndex(scale, o, ac, true);
    const i0 = Math.floor(r);
    const t = r - i0;
    const coeffs = [cc2(t + 1), cc1(t), cc1(1 - t), cc2(2 - t)];
    return coeffs.map((c, k) => [Math.min(Math.max(i0 - 1 + k, 0), inSize - 1), c] as [number, number]);
  };
}

/** PIL-style anti-aliased triangle filter, as aten::_upsample_bilinear2d_aa (align_corners=False). */
function aaLinearWeights(inSize: number, outSize: number): AxisWeights {
  const scale = inSize / outSize;
  const support = scale >= 1 ? scale : 1;
  const invscale = scale >= 1 ? 1 / scale : 1;
  return (o) => {
    const center = scale * (o + 0.5);
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize);
    const ws: [number, number][] = [];
    let total = 0;
    for (let j = xmin; j < xmax; j++) {
      const u = Math.abs((j - center + 0.5) * invscale);
      const w = u < 1 ? 1 - u : 0;
      ws.push([j, w]);
      total += w;
    }
    return ws.map(([j, w]) => [j, total === 0 ? 0 : w / total] as [number, number]);
  };
}

describe('interpolate', () => {
  test('bilinear alignCorners=true upsample of a 2x2 has the known values', () => {
    const x = tensor([0, 1, 2, 3], [1, 1, 2, 2]);
    const y = F.interpolate(x, { size: [3, 3], mode: 'bilinear', alignCorners: true });
    assertShape(y, [1, 1, 3, 3], 'bilinear 2x2 -> 3x3');
    assertValues(y, [0, 0.5, 1, 1, 1.5, 2, 2, 2.5, 3], 'bilinear alignCorners=true', 1e-6);
    const y4 = F.interpolate(x, { size: 5, mode: 'bilinear', alignCorners: true }).toArray();
    assert.deepEqual([y4[0], y4[4], y4[20], y4[24]], [0, 1, 2, 3], 'alignCorners=true keeps the corner values');
  });

  test('bilinear alignCorners=false 2x upsample of a 2x2 has the known values', () => {
    const x = tensor([0, 1, 2, 3], [1, 1, 2, 2]); // f(y, x) = x + 2y
    const y = F.interpolate(x, { scaleFactor: 2, mode: 'bilinear' });
    assertShape(y, [1, 1, 4, 4], 'scaleFactor 2');
    const w = [0, 0.25, 0.75, 1];
    const want: number[] = [];
    for (let i = 0; i < 4; i++) for (let j = 0; j < 4; j++) want.push(w[j]! + 2 * w[i]!);
    assertValues(y, want, 'bilinear alignCorners=false', 1e-6);
  });

  test('nearest 2x upsample replicates pixels; nearest downsample picks floor(i*scale)', () => {
    const X = jsRandom(6, 1100);
    const x = f64(X, [1, 1, 2, 3]);
    const y = F.interpolate(x, { scaleFactor: 2 });
    assertShape(y, [1, 1, 4, 6], 'nearest x2');
    const want: number[] = [];
    for (let i = 0; i < 4; i++) for (let j = 0; j < 6; j++) want.push(X[Math.floor(i / 2) * 3 + Math.floor(j / 2)]!);
    assertValues(y, want, 'nearest x2', 0);
    const big = jsRandom(8 * 9, 1101);
    const d = F.interpolate(f64(big, [1, 1, 8, 9]), { size: [3, 4], mode: 'nearest' });
    const wd: number[] = [];
    for (let i = 0; i < 3; i++)
      for (let j = 0; j < 4; j++)
        wd.push(big[Math.min(Math.floor((i * 8) / 3), 7) * 9 + Math.min(Math.floor((j * 9) / 4), 8)]!);
    assertValues(d, wd, 'nearest downsample', 0);
    const e = F.interpolate(f64(big, [1, 1, 8, 9]), { size: [3, 4], mode: 'nearest-exact' });
    const we: number[] = [];
    for (let i = 0; i < 3; i++)
      for (let j = 0; j < 4; j++)
        we.push(big[Math.min(Math.floor(((i + 0.5) * 8) / 3), 7) * 9 + Math.min(Math.floor(((j + 0.5) * 9) / 4), 8)]!);
    assertValues(e, we, 'nearest-exact downsample', 0);
  });

  for (const ac of [false, true]) {
    test(`bilinear and bicubic match a JS reference (alignCorners=${ac}, up and down)`, () => {
      for (const [H, W, OH, OW] of [
        [3, 4, 7, 5],
        [7, 9, 3, 4],
        [4, 4, 8, 8],
      ] as const) {
        const X = jsRandom(2 * H * W, 1200 + H * 10 + OW);
        const x = f64(X, [1, 2, H, W]);
        const bl = F.interpolate(x, { size: [OH, OW], mode: 'bilinear', alignCorners: ac });
        const bc = F.interpolate(x, { size: [OH, OW], mode: 'bicubic', alignCorners: ac });
        assertShape(bl, [1, 2, OH, OW], 'bilinear');
        const wantL: number[] = [];
        const wantC: number[] = [];
        for (let c = 0; c < 2; c++) {
          const img = X.slice(c * H * W, (c + 1) * H * W);
          wantL.push(...resample2d(img, H, W, OH, OW, linearWeights(H, OH, ac), linearWeights(W, OW, ac)));
          wantC.push(...resample2d(img, H, W, OH, OW, cubicWeights(H, OH, ac), cubicWeights(W, OW, ac)));
        }
        assertValues(bl, wantL, `bilinear ${H}x${W}->${OH}x${OW} ac=${ac}`, 1e-12);
        assertValues(bc, wantC, `bicubic ${H}x${W}->${OH}x${OW} ac=${ac}`, 1e-12);
      }
    });
  }

  test('bicubic alignCorners=true keeps corners; constant images stay constant in every mode', () => {
    const X = jsRandom(9, 1300);
    const y = F.interpolate(f64(X, [1, 1, 3, 3]), { size: [7, 5], mode: 'bicubic', alignCorners: true }).toArray();
    assertClose([y[0]!, y[4]!, y[30]!, y[34]!], [X[0]!, X[2]!, X[6]!, X[8]!], 'bicubic corners', 1e-12);
    const c = full([1, 2, 9, 11], 0.37, { dtype: 'float64' });
    const opts: Parameters<typeof F.interpolate>[1][] = [
      { size: [4, 3], mode: 'bilinear', antialias: true },
      { size: [4, 3], mode: 'bicubic', antialias: true },
      { size: [2, 2], mode: 'bilinear', antialias: true },
      { size: [5, 20], mode: 'bicubic', antialias: true },
      { size: [4, 3], mode: 'bilinear' },
      { size: [4, 3], mode: 'bicubic', alignCorners: true },
      { size: [4, 3], mode: 'area' },
    ];
    for (const o of opts) {
      const out = F.interpolate(c, o);
      assertShape(out, [1, 2, ...(o.size as [number, number])], JSON.stringify(o));
      assertValues(out, Array<number>(out.numel).fill(0.37), `constant image, ${JSON.stringify(o)}`, 1e-12);
    }
  });

  test('antialias bilinear downsample matches the PIL-style triangle filter; upsampling ignores antialias', () => {
    for (const [H, W, OH, OW] of [
      [6, 8, 3, 4],
      [7, 9, 3, 4],
      [5, 12, 5, 3],
    ] as const) {
      const X = jsRandom(H * W, 1400 + W);
      const got = F.interpolate(f64(X, [1, 1, H, W]), { size: [OH, OW], mode: 'bilinear', antialias: true });
      const want = resample2d(X, H, W, OH, OW, aaLinearWeights(H, OH), aaLinearWeights(W, OW));
      assertValues(got, want, `antialias bilinear ${H}x${W}->${OH}x${OW}`, 1e-12);
      const plain = F.interpolate(f64(X, [1, 1, H, W]), { size: [OH, OW], mode: 'bilinear' });
      const d = got.sub(plain).abs().max().item();
      if (OH < H || OW < W) assert.ok(d > 1e-3, `antialias must change a downsample (max |diff| ${d})`);
    }
    // a 1-d row halved: weights [1,3,3,1]/8 inside, renormalised at the borders
    const row = [1, 2, 4, 8, 16, 32, 64, 128];
    const half = F.interpolate(f64(row, [1, 1, 1, 8]), { size: [1, 4], mode: 'bilinear', antialias: true });
    assertValues(
      half,
      [
        (0.75 * 1 + 0.75 * 2 + 0.25 * 4) / 1.75,
        (2 + 3 * 4 + 3 * 8 + 16) / 8,
        (8 + 3 * 16 + 3 * 32 + 64) / 8,
        (0.25 * 32 + 0.75 * 64 + 0.75 * 128) / 1.75,
      ],
      'antialias [1,3,3,1]/8 row',
      1e-12,
    );
    const X = jsRandom(12, 1500);
    const up = F.interpolate(f64(X, [1, 1, 3, 4]), { size: [6, 8], mode: 'bilinear', antialias: true });
    const upPlain = F.interpolate(f64(X, [1, 1, 3, 4]), { size: [6, 8], mode: 'bilinear' });
    assertValues(up, upPlain.toArray(), 'antialias upsample equals plain bilinear', 1e-12);
  });

  test('area mode is adaptive average pooling', () => {
    const x = arange(0, 16, 1, { dtype: 'float32' }).reshape(1, 1, 4, 4);
    assertValues(F.interpolate(x, { size: 2, mode: 'area' }), [2.5, 4.5, 10.5, 12.5], 'area 4x4 -> 2x2');
    assertValues(F.interpolate(x, { scaleFactor: 0.5, mode: 'area' }), [2.5, 4.5, 10.5, 12.5], 'area by scale 0.5');
  });

  test('bad options are argument errors', () => {
    const x = zeros([1, 1, 4, 4]);
    assert.throws(() => F.interpolate(x, { size: 2, mode: 'nearest', alignCorners: true }), isArgErr(/alignCorners/));
    assert.throws(() => F.interpolate(x, { size: 2, mode: 'nearest', antialias: true }), isArgErr(/antialias/));
    assert.throws(() => F.interpolate(x, { size: 2, mode: 'area', alignCorners: false }), isArgErr(/alignCorners/));
    assert.throws(() => F.interpolate(x, { size: 2, scaleFactor: 2 }), isArgErr(/exactly one/));
    assert.throws(() => F.interpolate(x, {}), isArgErr(/exactly one/));
    assert.throws(() => F.interpolate(x, { scaleFactor: -1 }), isArgErr(/scaleFactor/));
    assert.throws(() => F.interpolate(x, { scaleFactor: 0 }), isArgErr(/scaleFactor/));
    assert.throws(() => F.interpolate(x, { scaleFactor: NaN }), isArgErr(/scaleFactor/));
    assert.throws(() => F.interpolate(x, { size: [2.5, 2] }), isArgErr(/size/));
    assert.throws(() => F.interpolate(x, { size: [2, 2, 2] as unknown as [number, number] }), isArgErr(/size/));
    assert.throws(() => F.interpolate(x, { size: 2, mode: 'trilinear' as 'bilinear' }), isArgErr(/unknown mode/));
    assert.throws(() => F.interpolate(zeros([4, 4]), { size: 2 }), isArgErr(/4-d/));
  });
});

// ---- padding and pooling ---------------------------------------------------------------------------

function padJs(
  img: readonly number[],
  H: number,
  W: number,
  [l, r, t, b]: readonly number[],
  mode: 'constant' | 'reflect' | 'replicate',
  value = 0,
): number[] {
  const map = (i: number, n: number): number => {
    if (mode === 'replicate') return Math.min(Math.max(i, 0), n - 1);
    if (i < 0) return -i;
    if (i >= n) return 2 * (n - 1) - i;
    return i;
  };
  const out: number[] = [];
  for (let i = -t!; i < H + b!; i++)
    for (let j = -l!; j < W + r!; j++) {
      if (mode === 'constant' && (i < 0 || i >= H || j < 0 || j >= W)) out.push(value);
      else out.push(img[map(i, H) * W + map(j, W)]!);
    }
  return out;
}

describe('pad', () => {
  const img = Array.from({ length: 12 }, (_, i) => i); // 3x4
  const x = (): Tensor => arange(0, 12, 1, { dtype: 'float32' }).reshape(1, 1, 3, 4);

  test('constant / reflect / replicate on a small arange, exact values', () => {
    // reflect of [[0,1,2,3],[4,5,6,7],[8,9,10,11]] with pads (1,1,1,1) — first row is row 1 reflected
    const r = F.pad(x(), [1, 1, 1, 1], 'reflect');
    assertShape(r, [1, 1, 5, 6], 'reflect');
    assert.deepEqual(r.toArray().slice(0, 6), [5, 4, 5, 6, 7, 6], 'reflect first row');
    const rep = F.pad(x(), [1, 1, 1, 1], 'replicate');
    assert.deepEqual(rep.toArray().slice(0, 6), [0, 0, 1, 2, 3, 3], 'replicate first row');
    const con = F.pad(x(), [1, 1, 1, 1]);
    assert.deepEqual(con.toArray().slice(0, 6), [0, 0, 0, 0, 0, 0], 'constant first row');
    assert.deepEqual(con.toArray().slice(6, 12), [0, 0, 1, 2, 3, 0], 'constant second row');
    for (const pads of [
      [1, 1, 1, 1],
      [2, 1, 0, 2],
      [3, 0, 2, 1],
    ]) {
      for (const mode of ['constant', 'reflect', 'replicate'] as const) {
        const got = F.pad(x(), pads, mode);
        assertShape(got, [1, 1, 3 + pads[2]! + pads[3]!, 4 + pads[0]! + pads[1]!], `${mode} [${pads}]`);
        assert.deepEqual(got.toArray(), padJs(img, 3, 4, pads, mode), `${mode} pad [${pads}]`);
      }
    }
    assert.deepEqual(
      F.pad(x(), [1, 0, 0, 1], 'constant', -7).toArray(),
      padJs(img, 3, 4, [1, 0, 0, 1], 'constant', -7),
      'constant value -7',
    );
  });

  test('constant pad with negative pads crops; 1-d reflect/replicate on 3-d input', () => {
    assert.deepEqual(F.pad(x(), [-1, -1, 0, -1]).toArray(), [1, 2, 5, 6], 'negative pads crop');
    const s = tensor([1, 2, 3, 4], [1, 1, 4]);
    assert.deepEqual(F.pad(s, [2, 1], 'reflect').toArray(), [3, 2, 1, 2, 3, 4, 3]);
    assert.deepEqual(F.pad(s, [2, 1], 'replicate').toArray(), [1, 1, 1, 2, 3, 4, 4]);
    assert.deepEqual(
      F.pad(tensor([1, 2, 3, 4], [2, 2]), [1, 0], 'reflect').toArray(),
      [2, 1, 2, 4, 3, 4],
      '2-d input, 1-d reflect',
    );
  });

  test('bad pads are errors', () => {
    assert.throws(() => F.pad(x(), [1, 1, 1]), isArgErr(/even/));
    assert.throws(() => F.pad(x(), [1.5, 1]), isArgErr(/even number of integers/));
    assert.throws(() => F.pad(x(), [1, 1, 1, 1], 'reflect', 3), isArgErr(/value/));
    assert.throws(() => F.pad(x(), [1, 1, 1, 1, 1, 1], 'reflect'), isArgErr(/6 pads/));
    assert.throws(
      () => F.pad(x(), [4, 4, 0, 0], 'reflect'),
      (e: unknown) => e instanceof ImmunizeError && e.code === 'E_TORCH' && /reflection_pad2d/.test(e.message),
      'reflect padding as large as the input is a libtorch error',
    );
  });
});

function poolJs(
  img: readonly number[],
  H: number,
  W: number,
  k: number,
  s: number,
  p: number,
  kind: 'max' | 'avg',
  countIncludePad = true,
): number[] {
  const OH = Math.floor((H + 2 * p - k) / s) + 1;
  const OW = Math.floor((W + 2 * p - k) / s) + 1;
  const out: number[] = [];
  for (let i = 0; i < OH; i++)
    for (let j = 0; j < OW; j++) {
      let m = -Infinity;
      let sum = 0;
      let cnt = 0;
      for (let a = 0; a < k; a++)
        for (let b = 0; b < k; b++) {
          const y = i * s - p + a;
          const x = j * s - p + b;
          if (y < 0 || y >= H || x < 0 || x >= W) continue;
          const v = img[y * W + x]!;
          m = Math.max(m, v);
          sum += v;
          cnt++;
        }
      out.push(kind === 'max' ? m : sum / (countIncludePad ? k * k : cnt));
    }
  return out;
}

describe('pooling', () => {
  test('avg and max pool with kernel 2 on a 4x4 arange', () => {
    const x = arange(0, 16, 1, { dtype: 'float32' }).reshape(1, 1, 4, 4);
    assert.deepEqual(F.avgPool2d(x, 2).toArray(), [2.5, 4.5, 10.5, 12.5]);
    assert.deepEqual(F.maxPool2d(x, 2).toArray(), [5, 7, 13, 15]);
    assert.deepEqual(F.adaptiveAvgPool2d(x, 1).toArray(), [7.5]);
  });

  test('avg/max pool with stride and padding against JS', () => {
    const X = jsRandom(5 * 6, 1600);
    const x = f64(X, [1, 1, 5, 6]);
    assertValues(
      F.maxPool2d(x, 3, { stride: 2, padding: 1 }),
      poolJs(X, 5, 6, 3, 2, 1, 'max'),
      'maxPool2d k3 s2 p1',
      0,
    );
    assertValues(
      F.avgPool2d(x, 3, { stride: 1, padding: 1 }),
      poolJs(X, 5, 6, 3, 1, 1, 'avg', true),
      'avgPool2d countIncludePad',
      1e-12,
    );
    assertValues(
      F.avgPool2d(x, 3, { stride: 1, padding: 1, countIncludePad: false }),
      poolJs(X, 5, 6, 3, 1, 1, 'avg', false),
      'avgPool2d excluding pad',
      1e-12,
    );
    assertShape(F.maxPool2d(x, 2, { ceilMode: true }), [1, 1, 3, 3], 'ceilMode');
  });
});

// ---- FFT ---------------------------------------------------------------------------------------------

describe('fft', () => {
  const S = [2, 4, 6];
  const X = jsRandom(48, 1700);

  test('fft2 / ifft2 round trip and rfft2 / irfft2 round trip', () => {
    const x = f64(X, S);
    const y = fft.fft2(x);
    assert.equal(y.dtype, 'complex128');
    assertShape(y, S, 'fft2');
    const back = fft.ifft2(y);
    assertValues(back.real(), X, 'ifft2(fft2(x)).real', 1e-12);
    assertValues(back.imag(), Array<number>(48).fill(0), 'ifft2(fft2(x)).imag', 1e-12);
    const r = fft.rfft2(x);
    assertShape(r, [2, 4, 4], 'rfft2 keeps the last dim to n/2+1');
    const rb = fft.irfft2(r, { s: [4, 6] });
    assert.equal(rb.dtype, 'float64');
    assertValues(rb, X, 'irfft2(rfft2(x))', 1e-12);
    const xf = tensor(new Float32Array(X), S);
    assert.equal(fft.fft2(xf).dtype, 'complex64');
    assertValues(fft.irfft2(fft.rfft2(xf), { s: [4, 6] }), X, 'float32 round trip', 1e-6);
    const o = fft.fft2(x, { norm: 'ortho' });
    const e1 = x.square().sum().item();
    const e2 = o.abs().square().sum().item();
    assert.ok(Math.abs(e1 - e2) < 1e-10, `ortho fft2 preserves energy (Parseval): ${e1} vs ${e2}`);
  });

  test('fft2 of a delta is all ones; fft of a constant is a delta', () => {
    const d = zeros([4, 6], { dtype: 'float64' });
    d.narrow(0, 0, 1).narrow(1, 0, 1).fill_(1);
    const D = fft.fft2(d);
    assertValues(D.real(), Array<number>(24).fill(1), 'fft2(delta).real', 1e-14);
    assertValues(D.imag(), Array<number>(24).fill(0), 'fft2(delta).imag', 1e-14);
    const c = fft.fft(full([8], 2, { dtype: 'float64' }));
    assertValues(c.real(), [16, 0, 0, 0, 0, 0, 0, 0], 'fft(constant).real', 1e-12);
  });

  test('1-d fft matches a JS DFT; rfft/irfft; fftshift', () => {
    const n = 5;
    const v = X.slice(0, n);
    const re: number[] = [];
    const im: number[] = [];
    for (let k = 0; k < n; k++) {
      let a = 0;
      let b = 0;
      for (let t = 0; t < n; t++) {
        a += v[t]! * Math.cos((-2 * Math.PI * k * t) / n);
        b += v[t]! * Math.sin((-2 * Math.PI * k * t) / n);
      }
      re.push(a);
      im.push(b);
    }
    const y = fft.fft(f64(v, [n]));
    assertValues(y.real(), re, 'fft real', 1e-12);
    assertValues(y.imag(), im, 'fft imag', 1e-12);
    const yf = fft.fft(f64(v, [n]), { norm: 'forward' });
    assertValues(
      yf.real(),
      re.map((q) => q / n),
      'fft norm forward',
      1e-12,
    );
    const r = fft.rfft(f64(v, [n]));
    assertShape(r, [3], 'rfft');
    assertValues(r.real(), re.slice(0, 3), 'rfft real', 1e-12);
    assertValues(fft.irfft(r, { n }), v, 'irfft', 1e-12);
    assert.deepEqual(fft.fftshift(arange(6)).toArray(), [3, 4, 5, 0, 1, 2]);
    assert.deepEqual(fft.ifftshift(arange(5)).toArray(), [2, 3, 4, 0, 1]);
    const z = fft.ifftn(fft.fftn(f64(X, S)));
    assertValues(z.real(), X, 'ifftn(fftn(x))', 1e-12);
  });
});

// ---- attention -----------------------------------------------------------------------------------------

/** softmax(q kᵀ * scale + mask) v in plain JS; q [B,H,L,d], k [B,H,S,d], v [B,H,S,dv]. */
function attentionJs(
  q: number[],
  k: number[],
  v: number[],
  B: number,
  Hh: number,
  L: number,
  S: number,
  d: number,
  dv: number,
  o: { scale?: number; causal?: boolean; boolMask?: number[]; addMask?: number[] } = {},
): number[] {
  const scale = o.scale ?? 1 / Math.sqrt(d);
  const out: number[] = [];
  for (let b = 0; b < B; b++)
    for (let h = 0; h < Hh; h++) {
      const bh = b * Hh + h;
      for (let i = 0; i < L; i++) {
        const scores: number[] = [];
        for (let j = 0; j < S; j++) {
          let s = 0;
          for (let t = 0; t < d; t++) s += q[(bh * L + i) * d + t]! * k[(bh * S + j) * d + t]!;
          s *= scale;
          if (o.causal && j > i) s = -Infinity;
          if (o.boolMask && !o.boolMask[i * S + j]) s = -Infinity;
          if (o.addMask) s += o.addMask[i * S + j]!;
          scores.push(s);
        }
        const mx = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - mx));
        const z = e.reduce((p, q2) => p + q2, 0);
        for (let t = 0; t < dv; t++) {
          let acc = 0;
          for (let j = 0; j < S; j++) acc += (e[j]! / z) * v[(bh * S + j) * dv + t]!;
          out.push(acc);
        }
      }
    }
  return out;
}

describe('scaledDotProductAttention', () => {
  const [B, Hh, L, S, d, dv] = [2, 2, 3, 5, 4, 3];
  const Q = jsRandom(B * Hh * L * d, 1800, -2, 2);
  const K = jsRandom(B * Hh * S * d, 1801, -2, 2);
  const V = jsRandom(B * Hh * S * dv, 1802, -2, 2);
  const q = (): Tensor => f64(Q, [B, Hh, L, d]);
  const k = (): Tensor => f64(K, [B, Hh, S, d]);
  const v = (): Tensor => f64(V, [B, Hh, S, dv]);

  test('equals explicit softmax(QKᵀ/sqrt(d))V', () => {
    const got = F.scaledDotProductAttention(q(), k(), v());
    assertShape(got, [B, Hh, L, dv], 'attention output');
    assertValues(got, attentionJs(Q, K, V, B, Hh, L, S, d, dv), 'attention', 1e-12);
    assertValues(
      F.scaledDotProductAttention(q(), k(), v(), { scale: 0.3 }),
      attentionJs(Q, K, V, B, Hh, L, S, d, dv, { scale: 0.3 }),
      'attention with scale',
      1e-12,
    );
    assertValues(
      F.scaledDotProductAttention(q(), k(), v(), { composed: true }),
      attentionJs(Q, K, V, B, Hh, L, S, d, dv),
      'composed attention',
      1e-12,
    );
    const f32 = F.scaledDotProductAttention(q().float(), k().float(), v().float());
    assert.equal(f32.dtype, 'float32');
    assertValues(f32, attentionJs(Q, K, V, B, Hh, L, S, d, dv), 'attention float32', 1e-5, 1e-4);
  });

  test('causal mask: the first query attends only to the first key', () => {
    const kk = f64(K.slice(0, B * Hh * L * d), [B, Hh, L, d]);
    const vv = f64(V.slice(0, B * Hh * L * dv), [B, Hh, L, dv]);
    const got = F.scaledDotProductAttention(q(), kk, vv, { isCausal: true });
    const vals = got.toArray();
    const Vs = V.slice(0, B * Hh * L * dv);
    for (let bh = 0; bh < B * Hh; bh++) {
      for (let t = 0; t < dv; t++) {
        const g = vals[(bh * L + 0) * dv + t]!;
        const want = Vs[(bh * L + 0) * dv + t]!;
        assert.ok(
          Math.abs(g - want) < 1e-12,
          `batch*head ${bh}, query 0, feature ${t}: got ${g}, expected v[0] = ${want}`,
        );
      }
    }
    assertValues(
      got,
      attentionJs(Q, K.slice(0, B * Hh * L * d), Vs, B, Hh, L, L, d, dv, { causal: true }),
      'causal attention',
      1e-12,
    );
  });

  test('boolean mask (true = may attend) and additive float mask', () => {
    const maskVals = [1, 0, 1, 0, 0, 0, 1, 1, 1, 0, 1, 1, 1, 1, 1]; // [L, S], each row has a true
    const mask = tensor(new Uint8Array(maskVals), [L, S], { dtype: 'bool' });
    const got = F.scaledDotProductAttention(q(), k(), v(), { attnMask: mask });
    assertValues(got, attentionJs(Q, K, V, B, Hh, L, S, d, dv, { boolMask: maskVals }), 'bool-masked attention', 1e-12);
    const add = jsRandom(L * S, 1803, -3, 3);
    const gotAdd = F.scaledDotProductAttention(q(), k(), v(), { attnMask: f64(add, [L, S]) });
    assertValues(
      gotAdd,
      attentionJs(Q, K, V, B, Hh, L, S, d, dv, { addMask: add }),
      'additive-masked attention',
      1e-12,
    );
    // a key masked out for every query contributes nothing: changing its value changes no output
    const onlyFirst = tensor(new Uint8Array([1, 1, 1, 1, 0, 1, 1, 1, 1, 0, 1, 1, 1, 1, 0]), [L, S], { dtype: 'bool' });
    const v2 = v().clone();
    v2.narrow(2, 4, 1).fill_(1e6);
    const a = F.scaledDotProductAttention(q(), k(), v(), { attnMask: onlyFirst });
    const b = F.scaledDotProductAttention(q(), k(), v2, { attnMask: onlyFirst });
    assertValues(b, a.toArray(), 'masked-out key must not matter', 1e-9);
  });
});
