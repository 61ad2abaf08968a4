// Helpers shared by the tensor and nn tests: reproducible inputs and element-wise comparisons.
import assert from 'node:assert/strict';
import { Generator, noGrad, rand, tensor, type Tensor } from '../../src/torch/index.js';

/** Deterministic uniform numbers in [lo, hi) (mulberry32), so expected values are reproducible. */
export function jsRandom(n: number, seed: number, lo = -1, hi = 1): number[] {
  let s = seed >>> 0;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const u = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    out.push(lo + (hi - lo) * u);
  }
  return out;
}

/** Same length and every element within atol + rtol·|expected| (NaN matches NaN). */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  what: string,
  atol = 1e-6,
  rtol = 1e-5,
): void {
  assert.equal(actual.length, expected.length, `${what}: got ${actual.length} values, expected ${expected.length}`);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (Object.is(a, e)) continue; // also NaN vs NaN
    if (!(Math.abs(a - e) <= atol + rtol * Math.abs(e))) {
      assert.fail(`${what}: at flat index ${i} got ${a}, expected ${e} (|diff| ${Math.abs(a - e)})`);
    }
  }
}

export function assertValues(t: Tensor, expected: ArrayLike<number>, what: string, atol = 1e-6, rtol = 1e-5): void {
  assertClose(t.toArray(), expected, what, atol, rtol);
}

export function assertShape(t: Tensor, shape: readonly number[], what: string): void {
  assert.deepEqual(t.shape, [...shape], `${what}: shape [${t.shape.join(', ')}] but expected [${shape.join(', ')}]`);
}

export function f64(values: readonly number[], shape: readonly number[]): Tensor {
  return tensor(new Float64Array(values), shape);
}

/** A seeded uniform [0, 1) image batch (no gradient), the same for the same seed and shape. */
export function seededImage(seed: number, shape: readonly number[]): Tensor {
  return noGrad(() => rand([...shape], { generator: new Generator({ seed }) }));
}
