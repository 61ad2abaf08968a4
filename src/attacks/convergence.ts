/**
 * When the attack has converged: a plateau of the loss the steps already compute (no extra
 * forward pass). At step n (n losses seen, the last one the loss before update n), with W the
 * window, the progress of the last window — the mean loss of the W steps before it minus the
 * mean of the last W — is compared with the progress of the whole attack so far, the first
 * loss minus the mean of the last W. The attack has converged when the last window gained less
 * than `tolerance` of everything gained so far: the remaining steps would add little
 * protection. Scale-free (ratios of losses), so the same rule holds for any model, photo size
 * and ensemble, and deterministic (a function of the losses only). The constants were chosen
 * from measurements on the shared photos (docs/protect.md#when-the-attack-stops).
 */
import { ArgumentError, describe } from '../errors.js';

export interface ConvergenceRule {
  /** Steps per window (the plateau is judged over the last two windows). */
  window: number;
  /** Stop when the last window gained less than this fraction of all progress so far. */
  tolerance: number;
  /** Never stop before this many steps. */
  minSteps: number;
}

/** The rule `stop: converged` uses. */
export const DEFAULT_CONVERGENCE: Readonly<ConvergenceRule> = Object.freeze({
  window: 10,
  tolerance: 0.01,
  minSteps: 40,
});

export function checkConvergenceRule(r: ConvergenceRule): void {
  if (r === null || typeof r !== 'object')
    throw new ArgumentError(`Expected a convergence rule to be an object but received ${describe(r)}`);
  if (!Number.isSafeInteger(r.window) || r.window < 1)
    throw new ArgumentError(`Expected convergence window to be a positive integer but received ${describe(r.window)}`);
  if (!(typeof r.tolerance === 'number' && r.tolerance >= 0 && r.tolerance < 1))
    throw new ArgumentError(`Expected convergence tolerance to be in [0, 1) but received ${describe(r.tolerance)}`);
  if (!Number.isSafeInteger(r.minSteps) || r.minSteps < 2 * r.window)
    throw new ArgumentError(
      `Expected convergence minSteps to be an integer of at least 2 × window (${2 * r.window}) but received ${describe(r.minSteps)}`,
    );
}

const mean = (xs: readonly number[], from: number, to: number): number => {
  let s = 0;
  for (let k = from; k < to; k++) s += xs[k]!;
  return s / (to - from);
};

/** Whether the attack has converged after `losses.length` steps (`losses[k]`: the loss before update k). */
export function hasConverged(losses: readonly number[], rule: ConvergenceRule = DEFAULT_CONVERGENCE): boolean {
  const n = losses.length;
  if (n < rule.minSteps) return false;
  const w = rule.window;
  const last = mean(losses, n - w, n);
  const before = mean(losses, n - 2 * w, n - w);
  const total = losses[0]! - last;
  // No progress at all (or a loss that rose) is not convergence to anything: keep going to the cap.
  if (!(total > 0)) return false;
  return before - last < rule.tolerance * total;
}

/** The step count at which `stop: converged` stops on this loss sequence, or null (it runs to the cap). */
export function convergedStep(losses: readonly number[], rule: ConvergenceRule = DEFAULT_CONVERGENCE): number | null {
  for (let n = 1; n <= losses.length; n++) if (hasConverged(losses.slice(0, n), rule)) return n;
  return null;
}
