// Smoothing filters (src/purify/filters.ts) beyond the `transforms` golden: properties of the
// Gaussian and median filters, scipy's 'reflect' padding, even sizes, banding, gradients, errors.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  gaussianBlur,
  gaussianKernel1d,
  gaussianKernelSize,
  medianBlur,
  symmetricIndices,
} from '../../src/purify/filters.js';
import { seededImage } from '../torch/helpers.js';
import { assertGradcheck, full, Generator, noGrad, rand, scope, tensor, type Tensor } from '../../src/torch/index.js';

const img = (seed: number, shape = [1, 3, 20, 24]): Tensor => seededImage(seed, shape);

describe('gaussianBlur', () => {
  test('kernel: odd default size covering ±3σ, normalised, symmetric', () => {
    assert.equal(gaussianKernelSize(1), 7);
    assert.equal(gaussianKernelSize(0.4), 5);
    const k = gaussianKernel1d(7, 1.2);
    assert.ok(Math.abs(k.reduce((a, b) => a + b, 0) - 1) < 1e-12);
    for (let i = 0; i < 3; i++) assert.ok(Math.abs(k[i]! - k[6 - i]!) < 1e-15);
    assert.ok(k[3]! > k[2]! && k[2]! > k[1]!);
  });

  test('keeps constants, reduces variance, stronger with σ; anisotropic σ blurs one axis only', () => {
    scope(() => {
      const c = full([1, 3, 16, 16], 0.37);
      assert.ok(gaussianBlur(c, 1.5).sub(0.37).abs().max().item() < 1e-6);
      const x = img(1);
      const v = (t: Tensor) => t.var().item();
      assert.ok(v(gaussianBlur(x, 2)) < v(gaussianBlur(x, 0.7)) && v(gaussianBlur(x, 0.7)) < v(x));
      // Rows constant along W: blurring along W only ([σx, σy] = [2, tiny]) changes nothing.
      const rows = rand([1, 1, 12, 1], { generator: new Generator({ seed: 2 }) })
        .expand(1, 1, 12, 12)
        .contiguous();
      assert.ok(gaussianBlur(rows, [2, 0.01]).sub(rows).abs().max().item() < 1e-6);
      assert.ok(gaussianBlur(rows, [0.01, 2]).sub(rows).abs().max().item() > 1e-2);
    });
  });

  test('gradient passes finite differences (float64)', () => {
    const x = noGrad(() => img(3, [1, 2, 6, 7]).to('float64')).requiresGrad_();
    assertGradcheck((a) => gaussianBlur(a, 0.9), [x]);
  });

  test('errors name the problem', () => {
    const x = img(4, [1, 3, 4, 4]);
    assert.throws(() => gaussianBlur(x, 0), /sigma/);
    assert.throws(() => gaussianBlur(x, 1, { kernelSize: 4 }), /odd/);
    assert.throws(() => gaussianBlur(x, 3), /smaller than the image/);
    assert.throws(() => gaussianBlur(tensor([1, 2, 3], [3]) as Tensor, 1), /\[N, C, H, W\]/);
  });
});

describe('medianBlur', () => {
  test("scipy 'reflect' (symmetric) indices", () => {
    assert.deepEqual([...symmetricIndices(4, 2, 2)], [1, 0, 0, 1, 2, 3, 3, 2]);
    assert.deepEqual([...symmetricIndices(2, 3, 3)], [1, 1, 0, 0, 1, 1, 0, 0]); // b b a | a b | b a a
  });

  test('removes salt-and-pepper noise from a flat image; size 1 is the identity', () => {
    scope(() => {
      const x = full([1, 1, 16, 16], 0.5);
      const noisy = x.clone();
      noGrad(() => {
        noisy.narrow(2, 3, 1).narrow(3, 5, 1).fill_(1);
        noisy.narrow(2, 10, 1).narrow(3, 2, 1).fill_(0);
        noisy.narrow(2, 0, 1).narrow(3, 0, 1).fill_(1); // corner, through the padding
      });
      assert.equal(medianBlur(noisy, 3).sub(x).abs().max().item(), 0);
      assert.equal(medianBlur(noisy, 1).sub(noisy).abs().max().item(), 0);
    });
  });

  test('equals a direct per-pixel median (odd and even sizes), whatever the banding', () => {
    scope(() => {
      const x = img(5, [1, 2, 7, 9]);
      const v = x.toTypedArray() as Float32Array;
      for (const k of [3, 4]) {
        const before = k >> 1;
        const ih = symmetricIndices(7, before, k - 1 - before);
        const iw = symmetricIndices(9, before, k - 1 - before);
        const want = new Float32Array(2 * 7 * 9);
        for (let c = 0; c < 2; c++)
          for (let i = 0; i < 7; i++)
            for (let j = 0; j < 9; j++) {
              const win: number[] = [];
              for (let a = 0; a < k; a++)
                for (let b = 0; b < k; b++) win.push(v[c * 63 + ih[i + a]! * 9 + iw[j + b]!]!);
              win.sort((p, q) => p - q);
              want[c * 63 + i * 9 + j] = win[(k * k) >> 1]!; // scipy's rank size//2: the upper median for even counts
            }
        for (const bandRows of [undefined, 1, 3]) {
          const got = medianBlur(x, k, bandRows === undefined ? {} : { bandRows }).toTypedArray() as Float32Array;
          assert.deepEqual([...got], [...want], `k=${k}, bandRows=${bandRows}`);
        }
      }
    });
  });

  test('is differentiable (the gradient goes to the selected sample)', () => {
    const x = noGrad(() => img(6, [1, 1, 5, 5]).to('float64')).requiresGrad_();
    assertGradcheck((a) => medianBlur(a, 3), [x]);
  });

  test('errors', () => {
    assert.throws(() => medianBlur(img(7), 0), /size/);
    assert.throws(() => medianBlur(img(7), 2.5), /integer/);
  });
});
