/**
 * A visibility target for PGD: a score of the perturbed image (higher = less visible; the protect
 * job uses SSIM to the original) that the result must keep at or above `min`. The attack checks
 * the score every `every` steps and, when it is below the target, shrinks its budget by
 * `shrinkFactor` and projects δ again, so the remaining steps are spent inside the target; if the
 * final image is still below it, `scaleBack` moves it towards the original along δ by bisection
 * (score evaluations only) until the target holds.
 */
import { ArgumentError, describe } from '../errors.js';
import { noGrad, scope, type Tensor } from '../torch/index.js';

export interface VisibilityTarget {
  /** The lowest score the result may have (e.g. 0.9 for SSIM ≥ 0.9). */
  min: number;
  /** Scores an image (same shape as the attack's); higher is less visible. Must not keep `adv`. */
  measure: (adv: Tensor) => number;
  /** Steps between two checks during the attack (default 10). */
  every?: number;
}

/** What the target did, for the record. */
export interface VisibilityRecord {
  min: number;
  /** The score of the result. */
  score: number;
  /** The budget's final multiple (1: never shrunk). */
  budgetScale: number;
  /** Times the budget was shrunk during the attack. */
  shrinks: number;
  /** The final bisection's multiple of δ (null: the result met the target without it). */
  scaledBack: number | null;
  /** Score evaluations, the bisection's included. */
  measurements: number;
}

/** Bisection iterations: δ's multiple to 2⁻¹⁴ (≈ 6e-5), finer than an 8-bit pixel of a 16/255 budget. */
const BISECTION_STEPS = 14;

export function checkVisibilityTarget(v: VisibilityTarget): void {
  if (v === null || typeof v !== 'object')
    throw new ArgumentError(`Expected a visibility target to be an object but received ${describe(v)}`);
  if (!(typeof v.min === 'number' && Number.isFinite(v.min) && v.min < 1))
    throw new ArgumentError(`Expected visibility.min to be a number below 1 but received ${describe(v.min)}`);
  if (typeof v.measure !== 'function')
    throw new ArgumentError(`Expected visibility.measure to be a function but received ${describe(v.measure)}`);
  const every = v.every ?? 10;
  if (!(Number.isSafeInteger(every) && every >= 1))
    throw new ArgumentError(`Expected visibility.every to be a positive integer but received ${describe(every)}`);
}

/**
 * The multiple of the budget that should bring a score below `min` back above it. For a small
 * change δ, 1 − SSIM grows as ‖δ‖² (the contrast-structure term is quadratic in δ at δ = 0), so
 * scaling δ by √((1 − min)/(1 − score)) lands on the target; a 5% margin lands inside it, since
 * the following steps push δ back to the shrunk bound. Never below ¼ in one go (a score far
 * below the target is outside the quadratic regime).
 */
export function shrinkFactor(score: number, min: number): number {
  if (!(score < min)) return 1;
  const f = 0.95 * Math.sqrt((1 - min) / Math.max(1e-12, 1 - score));
  return Math.max(0.25, f);
}

/**
 * The image on the segment from `x` to `adv` farthest from `x` whose score is at least `min`,
 * found by bisection on the multiple t of δ = adv − x (x + t·δ stays inside any budget, mask and
 * pixel range that adv is in); t = 0 is `x` itself. Returns the image (caller owns it), t, its
 * score and the evaluations made.
 */
export function scaleBack(
  x: Tensor,
  adv: Tensor,
  v: Pick<VisibilityTarget, 'min' | 'measure'>,
  range: [number, number] = [0, 1],
): { image: Tensor; t: number; score: number; measurements: number } {
  const at = (t: number): Tensor =>
    noGrad(() => scope(() => (t === 0 ? x.clone() : x.add(adv.sub(x).mul(t)).clamp(range[0], range[1]))));
  let lo = 0;
  let loScore: number | null = null;
  let hi = 1;
  let measurements = 0;
  for (let k = 0; k < BISECTION_STEPS; k++) {
    const mid = (lo + hi) / 2;
    using candidate = at(mid);
    const s = v.measure(candidate);
    measurements++;
    if (s >= v.min) {
      lo = mid;
      loScore = s;
    } else hi = mid;
  }
  const image = at(lo);
  if (loScore === null) {
    loScore = v.measure(image);
    measurements++;
  }
  return { image, t: lo, score: loScore, measurements };
}
