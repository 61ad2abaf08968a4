/**
 * Finite-difference gradient check, in the spirit of torch.autograd.gradcheck: compares the
 * analytic vector-Jacobian product vᵀJ (one backward pass, random v) with central differences
 * of vᵀf(x) for every input element. Use float64 inputs and small shapes.
 */
import { ImmunizeError } from '../errors.js';
import { grad, noGrad } from './autograd.js';
import { randn } from './creation.js';
import { Generator } from './random.js';
import { scope } from './scope.js';
import type { Tensor } from './tensor.js';

export interface GradcheckOptions {
  eps?: number;
  atol?: number;
  rtol?: number;
  seed?: number;
  projections?: number;
}
export interface GradcheckResult {
  ok: boolean;
  maxAbsError: number;
  /** Where the worst mismatch is (input number, flat index), with both values. */
  worst: { input: number; index: number; analytic: number; numeric: number } | null;
  checked: number;
}

export function gradcheck(
  fn: (...inputs: Tensor[]) => Tensor,
  inputs: readonly Tensor[],
  o: GradcheckOptions = {},
): GradcheckResult {
  const eps = o.eps ?? 1e-6;
  const atol = o.atol ?? 1e-5;
  const rtol = o.rtol ?? 1e-3;
  const gen = new Generator({ seed: o.seed ?? 0 });
  for (const x of inputs) {
    if (x.dtype !== 'float64')
      throw new ImmunizeError(
        'E_ARGUMENT',
        `gradcheck needs float64 inputs (finite differences in float32 are too coarse); received ${x.dtype}`,
      );
    if (!x.requiresGrad) throw new ImmunizeError('E_ARGUMENT', 'gradcheck: every input must have requiresGrad set');
  }
  const result: GradcheckResult = { ok: true, maxAbsError: 0, worst: null, checked: 0 };
  let worstExcess = -Infinity;
  for (let p = 0; p < (o.projections ?? 1); p++) {
    scope(() => {
      const y0 = fn(...inputs);
      const v = randn(y0.shape, { dtype: 'float64', generator: gen });
      const analytic = grad(y0, inputs, { gradOutputs: [v], allowUnused: true }).map((g, i) =>
        g === null ? new Float64Array(inputs[i]!.numel) : (g.toTypedArray() as Float64Array),
      );
      const project = (): number =>
        noGrad(() =>
          scope(() =>
            fn(...inputs)
              .mul(v)
              .sum()
              .item(),
          ),
        );
      inputs.forEach((x, i) => {
        const flat = noGrad(() => x.detach().reshape(-1));
        for (let j = 0; j < x.numel; j++) {
          const numeric = noGrad(() =>
            scope(() => {
              const e = flat.narrow(0, j, 1);
              e.add_(eps);
              const plus = project();
              e.sub_(2 * eps);
              const minus = project();
              e.add_(eps);
              return (plus - minus) / (2 * eps);
            }),
          );
          const a = analytic[i]![j]!;
          const err = Math.abs(a - numeric);
          const excess = err - (atol + rtol * Math.abs(numeric));
          result.checked++;
          if (err > result.maxAbsError) result.maxAbsError = err;
          if (excess > worstExcess) {
            worstExcess = excess;
            result.worst = { input: i, index: j, analytic: a, numeric };
          }
          if (excess > 0) result.ok = false;
        }
      });
    });
  }
  return result;
}

/** Throws with the worst mismatch when the check fails. */
export function assertGradcheck(
  fn: (...inputs: Tensor[]) => Tensor,
  inputs: readonly Tensor[],
  o: GradcheckOptions = {},
): GradcheckResult {
  const r = gradcheck(fn, inputs, o);
  if (!r.ok) {
    const w = r.worst!;
    throw new ImmunizeError(
      'E_GRADCHECK',
      `gradient mismatch at input ${w.input}, element ${w.index}: analytic ${w.analytic} vs numeric ${w.numeric} (|diff| ${Math.abs(w.analytic - w.numeric).toExponential(3)}, checked ${r.checked} elements)`,
    );
  }
  return r;
}
