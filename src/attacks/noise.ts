/**
 * The random-noise baseline (Salman et al. 2023, Table 6): uniform noise of the same L∞ budget,
 * to show that the attacks' effect is not just "any perturbation of that size".
 */
import { Generator, noGrad, rand, scope, type Tensor } from '../torch/index.js';
import { checkPgdOptions } from './pgd.js';

export function randomNoise(x: Tensor, o: { eps: number; seed?: number; generator?: Generator; mask?: Tensor | null; range?: [number, number] }): Tensor {
  checkPgdOptions({ eps: o.eps, stepSize: 0, steps: 0 });
  const generator = o.generator ?? new Generator({ seed: o.seed ?? 0 });
  return noGrad(() => scope(() => {
    const [lo, hi] = o.range ?? [0, 1];
    const noise = rand(x.shape, { generator, dtype: x.dtype, device: x.device }).mul(2 * o.eps).sub(o.eps);
    const out = x.add(noise).clamp(lo, hi);
    return o.mask ? out.where(o.mask.gt(0.5), x) : out;
  }));
}
