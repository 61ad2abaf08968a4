// Autograd: requiresGrad, grad() (seeds, unused inputs, higher order), backward() accumulation,
// detach, noGrad, leaf/gradFn metadata, and finite-difference checks of the layers the attacks
// differentiate through — plus a negative control proving gradcheck can fail.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ImmunizeError } from '../../src/errors.js';
import {
  F,
  Tensor,
  assertGradcheck,
  backward,
  enableGrad,
  grad,
  gradOf,
  gradcheck,
  isGradEnabled,
  noGrad,
  randn,
  manualSeed,
  tensor,
  zeros,
} from '../../src/torch/index.js';
import { assertClose as closeTo } from './helpers.js';

/** helpers.ts's assertClose with this file's tighter default tolerances (all double precision). */
const assertClose = (actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): void =>
  closeTo(actual, expected, what, 1e-10, 1e-8);

const f64 = (values: readonly number[], shape?: readonly number[]): Tensor =>
  tensor(new Float64Array(values), shape ?? [values.length]);
const param = (shape: readonly number[], scale = 1): Tensor => {
  const t = randn(shape, { dtype: 'float64' }).mul(scale);
  return t.requiresGrad_();
};

describe('autograd basics', () => {
  test('requiresGrad_, isLeaf and gradFn', () => {
    const x = f64([1, 2, 3]);
    assert.equal(x.requiresGrad, false);
    assert.equal(x.isLeaf, true);
    assert.equal(x.gradFn, null);
    assert.equal(x.requiresGrad_(), x, 'requiresGrad_ returns this');
    assert.equal(x.requiresGrad, true);
    assert.equal(x.isLeaf, true, 'a user-created tensor is a leaf');
    const y = x.mul(2);
    assert.equal(y.requiresGrad, true);
    assert.equal(y.isLeaf, false);
    assert.match(y.gradFn ?? '', /^MulBackward\d$/, 'x * scalar');
    assert.equal(x.mul(f64([1, 1, 1])).gradFn, 'MulBackward0', 'x * tensor');
    assert.equal(y.sum().gradFn, 'SumBackward0');
    assert.equal(
      F.conv2d(zeros([1, 1, 3, 3], { dtype: 'float64' }), x.reshape(1, 1, 1, 3)).gradFn,
      'ConvolutionBackward0',
    );
    x.requiresGrad_(false);
    assert.equal(x.requiresGrad, false, 'requiresGrad_(false) turns it off');
    assert.equal(zeros([2], { requiresGrad: true }).requiresGrad, true, 'creation option requiresGrad');
    const nonLeaf = f64([1]).requiresGrad_().mul(2);
    assert.throws(
      () => nonLeaf.requiresGrad_(false),
      (e: unknown) => e instanceof ImmunizeError && e.code === 'E_TORCH' && /leaf/.test(e.message),
      'requires_grad can only be switched off on leaves',
    );
    assert.equal(tensor([1, 2]).mul(2).isLeaf, true, 'a result computed from tensors without grad is a leaf');
  });

  test('grad(outputs, inputs) of a polynomial', () => {
    const x = f64([1, -2, 0.5]).requiresGrad_();
    const y = x.pow(3).sum(); // dy/dx = 3x^2
    const [g] = grad(y, [x]);
    assert.ok(g instanceof Tensor);
    assertClose(g.toArray(), [3, 12, 0.75], 'd(sum x^3)/dx');
    assert.equal(g.requiresGrad, false, 'without createGraph the gradient is not differentiable');
    assert.equal(x.grad, null, 'grad() must not accumulate into .grad');
  });

  test('grad with several inputs and outputs', () => {
    const a = f64([2]).requiresGrad_();
    const b = f64([3]).requiresGrad_();
    const [ga, gb] = grad([a.mul(b), a.square()], [a, b]); // d(ab + a^2)/da = b + 2a, /db = a
    assertClose(ga!.toArray(), [3 + 4], 'd/da');
    assertClose(gb!.toArray(), [2], 'd/db');
    assert.equal(gradOf(a.mul(b).sum(), b).item(), 2, 'gradOf');
  });

  test('gradOutputs seeds a non-scalar output (vector-Jacobian product)', () => {
    const x = f64([1, 2, 3]).requiresGrad_();
    const y = x.square(); // J = diag(2x)
    const v = f64([1, 10, 100]);
    const [g] = grad(y, [x], { gradOutputs: [v] });
    assertClose(g!.toArray(), [2, 40, 600], 'vᵀJ');
    assert.throws(
      () => grad(x.square(), [x]),
      (e: unknown) => e instanceof ImmunizeError && e.code === 'E_TORCH' && /scalar/i.test(e.message),
      'a non-scalar output without a seed is an error',
    );
  });

  test('allowUnused returns null for inputs the output does not depend on; without it, an error', () => {
    const x = f64([1, 2]).requiresGrad_();
    const u = f64([5]).requiresGrad_();
    const [gx, gu] = grad(x.sum(), [x, u], { allowUnused: true });
    assertClose(gx!.toArray(), [1, 1], 'used input');
    assert.equal(gu, null, 'unused input gives null');
    assert.throws(
      () => grad(x.sum(), [x, u]),
      (e: unknown) =>
        e instanceof ImmunizeError && e.code === 'E_TORCH' && /not have been used|unused/i.test(e.message),
    );
  });

  test('createGraph gives a differentiable gradient: second derivative of x^3 is 6x', () => {
    const x = f64([1, -2, 0.5]).requiresGrad_();
    const [g1] = grad(x.pow(3).sum(), [x], { createGraph: true });
    assert.equal(g1!.requiresGrad, true, 'first derivative requires grad with createGraph');
    assertClose(g1!.toArray(), [3, 12, 0.75], 'first derivative');
    const [g2] = grad(g1!.sum(), [x]);
    assertClose(g2!.toArray(), [6, -12, 3], 'second derivative');
  });

  test('retainGraph lets the same graph be differentiated twice; otherwise it is freed', () => {
    const x = f64([2]).requiresGrad_();
    const y = x.exp().sum();
    const [a] = grad(y, [x], { retainGraph: true });
    const [b] = grad(y, [x]);
    assertClose(a!.toArray(), [Math.exp(2)], 'first pass');
    assertClose(b!.toArray(), [Math.exp(2)], 'second pass');
    assert.throws(
      () => grad(y, [x]),
      (e: unknown) => e instanceof ImmunizeError && e.code === 'E_TORCH' && /second time|freed/i.test(e.message),
      'a third pass after the graph was freed must fail',
    );
  });

  test('backward() accumulates into .grad; setting .grad = null clears it', () => {
    const x = f64([1, 2, 3]).requiresGrad_();
    x.square().sum().backward();
    assertClose(x.grad!.toArray(), [2, 4, 6], 'after one backward');
    x.square().sum().backward();
    assertClose(x.grad!.toArray(), [4, 8, 12], 'after two backwards (accumulated)');
    x.mul(f64([1, 1, 1])).backward(f64([1, 0, -1]));
    assertClose(x.grad!.toArray(), [5, 8, 11], 'backward with an explicit gradient');
    x.grad = null;
    assert.equal(x.grad, null, '.grad = null clears it');
    backward(x.sum());
    assertClose(x.grad!.toArray(), [1, 1, 1], 'free backward() after clearing');
    x.grad = f64([7, 7, 7]);
    assertClose(x.grad!.toArray(), [7, 7, 7], '.grad can be set');
    const y = f64([1, 2]).requiresGrad_();
    const z = y.mul(3);
    z.sum().backward();
    assert.equal(z.grad, null, 'non-leaf tensors do not keep .grad');
  });

  // Engine bug (reported): native setGrad assigns mutable_grad() without PyTorch's checks, so a
  // mis-shaped or mis-typed .grad is accepted and later accumulation broadcasts into it silently.
  test('.grad of the wrong shape or dtype is rejected, as in PyTorch', () => {
    const x = f64([1]).requiresGrad_();
    assert.throws(
      () => {
        x.grad = f64([10, 20, 30]);
      },
      /size|shape/i,
      'a .grad of shape [3] on a [1] tensor must be rejected',
    );
    assert.throws(
      () => {
        x.grad = tensor([1]);
      },
      /type|dtype/i,
      'a float32 .grad on a float64 tensor must be rejected',
    );
  });

  test('detach() shares values but cuts the graph', () => {
    const x = f64([1, 2]).requiresGrad_();
    const y = x.mul(2);
    const d = y.detach();
    assert.equal(d.requiresGrad, false);
    assert.equal(d.gradFn, null);
    assert.equal(d.isLeaf, true);
    assert.deepEqual(d.toArray(), [2, 4]);
    const [g] = grad(y.add(d).sum(), [x]);
    assertClose(g!.toArray(), [2, 2], 'the detached branch contributes no gradient');
  });

  test('noGrad: results do not require grad, and the mode is restored even if fn throws', () => {
    const x = f64([1, 2]).requiresGrad_();
    assert.equal(isGradEnabled(), true);
    const y = noGrad(() => {
      assert.equal(isGradEnabled(), false, 'grad mode is off inside noGrad');
      return x.mul(2);
    });
    assert.equal(y.requiresGrad, false);
    assert.equal(y.gradFn, null);
    assert.equal(isGradEnabled(), true, 'restored after noGrad');
    assert.throws(
      () =>
        noGrad(() => {
          throw new Error('boom');
        }),
      /boom/,
    );
    assert.equal(isGradEnabled(), true, 'restored after noGrad threw');
    const inner = noGrad(() => enableGrad(() => x.mul(3)));
    assert.equal(inner.requiresGrad, true, 'enableGrad inside noGrad records again');
    assert.equal(isGradEnabled(), true);
    noGrad(() => {
      noGrad(() => undefined);
      assert.equal(isGradEnabled(), false, 'nested noGrad restores the outer (off) mode');
    });
    assert.throws(() => noGrad(() => Promise.resolve(1)), /synchronous/);
    assert.equal(isGradEnabled(), true, 'restored after an async fn was rejected');
  });
});

describe('gradcheck of the differentiable layers', () => {
  test('conv2d with bias, stride 2, padding 1', () => {
    manualSeed(1);
    const x = param([1, 2, 5, 5]);
    const w = param([3, 2, 3, 3]);
    const b = param([3]);
    const r = assertGradcheck((xx, ww, bb) => F.conv2d(xx!, ww!, bb!, { stride: 2, padding: 1 }), [x, w, b]);
    assert.equal(r.checked, 50 + 54 + 3, 'every input element is checked');
    assert.ok(r.maxAbsError < 1e-6, `max error ${r.maxAbsError}`);
  });

  test('groupNorm with affine parameters', () => {
    manualSeed(2);
    const x = param([2, 4, 3, 3]);
    const w = param([4]);
    const b = param([4]);
    assertGradcheck((xx, ww, bb) => F.groupNorm(xx!, 2, ww!, bb!), [x, w, b]);
  });

  test('layerNorm with affine parameters', () => {
    manualSeed(3);
    const x = param([2, 3, 4]);
    const w = param([3, 4]);
    const b = param([3, 4]);
    assertGradcheck((xx, ww, bb) => F.layerNorm(xx!, [3, 4], ww!, bb!), [x, w, b]);
  });

  test('softmax attention (scaledDotProductAttention on [1,2,3,4])', () => {
    manualSeed(4);
    const q = param([1, 2, 3, 4]);
    const k = param([1, 2, 3, 4]);
    const v = param([1, 2, 3, 4]);
    assertGradcheck((a, b, c) => F.scaledDotProductAttention(a!, b!, c!), [q, k, v]);
    assertGradcheck((a, b, c) => F.scaledDotProductAttention(a!, b!, c!, { isCausal: true }), [q, k, v]);
  });

  test('interpolate: bilinear, bicubic, antialiased bilinear downsample', () => {
    manualSeed(5);
    const x = param([1, 2, 4, 4]);
    assertGradcheck((a) => F.interpolate(a!, { size: [7, 5], mode: 'bilinear' }), [x]);
    assertGradcheck((a) => F.interpolate(a!, { size: [6, 6], mode: 'bilinear', alignCorners: true }), [x]);
    assertGradcheck((a) => F.interpolate(a!, { size: [6, 7], mode: 'bicubic' }), [x]);
    const big = param([1, 1, 8, 8]);
    assertGradcheck((a) => F.interpolate(a!, { size: [3, 3], mode: 'bilinear', antialias: true }), [big]);
  });

  test('pad reflect', () => {
    manualSeed(6);
    const x = param([1, 2, 3, 4]);
    assertGradcheck((a) => F.pad(a!, [2, 1, 1, 2], 'reflect'), [x]);
  });

  test('two-layer network: linear -> silu -> linear, mean-square loss', () => {
    manualSeed(7);
    const x = param([4, 5]);
    const w1 = param([6, 5], 0.5);
    const b1 = param([6]);
    const w2 = param([3, 6], 0.5);
    const b2 = param([3]);
    const r = assertGradcheck(
      (xx, a, b, c, d) =>
        F.linear(F.linear(xx!, a!, b!).silu(), c!, d!)
          .square()
          .mean(),
      [x, w1, b1, w2, b2],
    );
    assert.equal(r.checked, 20 + 30 + 6 + 18 + 3);
  });

  test('negative control: a deliberately wrong gradient (x.detach() * x) fails gradcheck', () => {
    manualSeed(8);
    const x = param([5]);
    const r = gradcheck((a) => a!.detach().mul(a!), [x]);
    assert.equal(r.ok, false, 'gradcheck must detect the dropped half of the gradient');
    assert.ok(r.worst !== null);
    // the analytic gradient is x·v while the numeric one is 2x·v: their ratio is 1/2
    assert.ok(
      Math.abs(r.worst!.analytic / r.worst!.numeric - 0.5) < 1e-4,
      `analytic ${r.worst!.analytic} vs numeric ${r.worst!.numeric}`,
    );
    assert.throws(
      () => assertGradcheck((a) => a!.detach().mul(a!), [x]),
      (e: unknown) => e instanceof ImmunizeError && e.code === 'E_GRADCHECK' && /input 0, element \d/.test(e.message),
    );
    const good = gradcheck((a) => a!.mul(a!), [x]);
    assert.equal(good.ok, true, `x*x passes (max error ${good.maxAbsError})`);
  });

  test('gradcheck rejects float32 inputs and inputs without requiresGrad', () => {
    assert.throws(
      () => gradcheck((a) => a!.square(), [randn([2]).requiresGrad_()]),
      (e: unknown) => e instanceof ImmunizeError && e.code === 'E_ARGUMENT' && /float64/.test(e.message),
    );
    assert.throws(
      () => gradcheck((a) => a!.square(), [randn([2], { dtype: 'float64' })]),
      (e: unknown) => e instanceof ImmunizeError && e.code === 'E_ARGUMENT' && /requiresGrad/.test(e.message),
    );
  });
});
