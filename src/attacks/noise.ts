/**
 * The random-noise baseline (Salman et al. 2023, Table 6): uniform noise of the same L∞ budget,
 * to show that the attacks' effect is not just "any perturbation of that size". Each pixel gets
 * an independent draw from U(−ε, ε) (libtorch's CPU generator, so a seed gives PyTorch's
 * numbers), then the image is clamped to the pixel range and, with a mask, pixels where the mask
 * is 0 are copied back from the original exactly.
 */
import { Generator, noGrad, rand, scope, type Tensor } from '../torch/index.js';
import { checkPgdOptions } from './pgd.js';

export interface RandomNoiseOptions {
  /** L∞ budget on the image's scale ([0, 1] pixels unless `range` says otherwise). */
  eps: number;
  /** Seed of a fresh CPU generator (default 0); ignored when `generator` is given. */
  seed?: number;
  generator?: Generator;
  /** Broadcastable to the image: 1 where noise may go, 0 where pixels stay original. */
  mask?: Tensor | null;
  /** Valid pixel range (default [0, 1]). */
  range?: [number, number];
}

export function randomNoise(x: Tensor, o: RandomNoiseOptions): Tensor {
  checkPgdOptions(
    { eps: o.eps, stepSize: 0, steps: 0, seed: o.seed, generator: o.generator, mask: o.mask, range: o.range },
    x,
  );
  const generator = o.generator ?? new Generator({ seed: o.seed ?? 0 });
  return noGrad(() =>
    scope(() => {
      const [lo, hi] = o.range ?? [0, 1];
      const noise = rand(x.shape, { generator, dtype: x.dtype, device: x.device })
        .mul(2 * o.eps)
        .sub(o.eps);
      const out = x.add(noise).clamp(lo, hi);
      return o.mask ? out.where(o.mask.gt(0.5), x) : out;
    }),
  );
}
