/**
 * The learned immunizer (issue 16): δ = ε·tanh(G(x)) in one forward pass of a small network
 * (src/models/immunizer.ts), then masked and clipped by PGD's own projection, so "within budget"
 * means the same thing for both. `learnedDelta` is the differentiable part training uses.
 */
import { ArgumentError, describe } from '../errors.js';
import type { ImmunizerNet } from '../models/immunizer.js';
import { noGrad, scope, withPrecision, type Precision, type Tensor } from '../torch/index.js';
import { project, type ProjectionOptions } from './pgd.js';

/** ε·tanh(G(x)) in fp32 (G itself may run in a reduced precision); differentiable in G's parameters and x. */
export function learnedDelta(net: ImmunizerNet, x: Tensor, eps: number, precision: Precision = 'fp32'): Tensor {
  return scope(() => {
    const g = withPrecision(precision, x.device, () => net.forward(x)).float();
    return g.tanh().mul(eps);
  });
}

export interface LearnedOptions extends ProjectionOptions {
  /** G's arithmetic (default fp32). */
  precision?: Precision;
}

/** x + δ, projected exactly as PGD's iterates (budget, mask, pixel range); no gradient. */
export function learnedImmunize(net: ImmunizerNet, x: Tensor, o: LearnedOptions): Tensor {
  if (typeof o.eps !== 'number' || !Number.isFinite(o.eps) || o.eps < 0 || o.eps > 1)
    throw new ArgumentError(`Expected eps to be a number in [0, 1] but received ${describe(o.eps)}`);
  return noGrad(() =>
    scope(() => {
      const delta = learnedDelta(net, x, o.eps, o.precision ?? 'fp32');
      return project(x, x.add(delta), o);
    }),
  );
}
