/**
 * Projected gradient descent on an image, shared by every attack. It *minimises* `lossFn`
 * (immunization pulls the model's view of the image towards a target) under an L∞ or L2
 * budget around the original, inside the valid pixel range, and optionally only where a mask
 * allows. Budgets are on the [0, 1] pixel scale everywhere (photoguard's notebooks work on
 * [-1, 1]: ε there is twice ε here; see presets.ts).
 */
import { ArgumentError, ImmunizeError, describe } from '../errors.js';
import { grad, noGrad, rand, scope, keep, Generator, type Tensor } from '../torch/index.js';
import { adamDirection } from '../nn/optim.js';
import { checkConvergenceRule, hasConverged, type ConvergenceRule } from './convergence.js';
import {
  checkVisibilityTarget,
  scaleBack,
  shrinkFactor,
  type VisibilityRecord,
  type VisibilityTarget,
} from './visibility.js';

export type Norm = 'linf' | 'l2';
/** photoguard's notebooks decay the step linearly: step − (step − step/100)·i/iters. */
export type StepSchedule = 'constant' | 'linear-decay';
/** sign: photoguard's sign gradient; momentum: MI-FGSM (Dong et al. 2018); adam: Adam on δ with projection. */
export type Optimizer = 'sign' | 'momentum' | 'adam';

export interface PgdStep {
  step: number;
  steps: number;
  loss: number;
  stepSize: number;
  /** Milliseconds since the attack started. */
  elapsedMs: number;
}

export interface PgdOptions {
  eps: number;
  stepSize: number;
  steps: number;
  norm?: Norm;
  schedule?: StepSchedule;
  optimizer?: Optimizer;
  /** MI-FGSM decay μ (default 1). */
  momentum?: number;
  /** Adam's β1, β2 and ε (defaults 0.9, 0.999, 1e-8); the step size is Adam's learning rate. */
  adam?: { beta1?: number; beta2?: number; eps?: number };
  /** Start from a uniform point in the L∞ ball (photoguard's notebooks do). */
  randomStart?: boolean;
  /** A recorded start perturbation (replaces the random draw, for replaying references). */
  startNoise?: Tensor;
  /** Project the start point (range, budget, mask). Default true; photoguard's notebook does not. */
  projectStart?: boolean;
  /** Broadcastable to the image: 1 where the perturbation may go, 0 where pixels stay original. */
  mask?: Tensor | null;
  /**
   * A per-pixel L∞ budget (broadcastable to the image, values in [0, eps]; `eps` stays the largest
   * bound): projection, random start and step size follow it, so a pixel with half the budget
   * also moves by half steps. L∞ only. See budget.ts for perceptual maps.
   */
  epsMap?: Tensor | null;
  /** Valid pixel range (default [0, 1]). */
  range?: [number, number];
  /** Stop as soon as the loss is at or below this. */
  targetLoss?: number;
  /** Stop when the loss has reached a plateau (convergence.ts); `steps` is then the cap. */
  converge?: ConvergenceRule;
  generator?: Generator;
  seed?: number;
  /** Called after each step; return false to stop (cancellation). */
  onStep?: (s: PgdStep) => boolean | void;
  /** Expectation over transforms (robust immunization): see `EotOptions`. */
  eot?: EotOptions;
  /**
   * Keep a score of the image (SSIM to the original, say) at or above a target: the budget
   * (eps, or epsMap) shrinks during the attack when the score falls below it, and the result is
   * scaled back towards the original if it is still below at the end (visibility.ts).
   */
  visibility?: VisibilityTarget;
}

/**
 * Expectation over transforms (Athalye et al. 2018): each step minimises the loss averaged over
 * randomly transformed copies of the image, so the perturbation survives what an adversary does
 * to it before editing (JPEG above all; Sandoval-Segura et al. 2023).
 */
export interface EotOptions {
  /** Draws one transform and applies it; must be differentiable with respect to its input. */
  transform: (x: Tensor, generator: Generator) => Tensor;
  /** Transformed copies per step (default 1). */
  samples?: number;
  /** Also average in the untransformed image every step (default true: protect the PNG too). */
  includeIdentity?: boolean;
  /** Seed of the transforms' own generator (default: the attack's seed + 1). */
  seed?: number;
}

export interface PgdResult {
  /** The perturbed image (caller owns it). */
  adv: Tensor;
  /** Loss before each update; one extra entry, the loss of `adv`, when `finalLoss` was computed. */
  losses: number[];
  stepSizes: number[];
  stepsTaken: number;
  /** steps: the budget ran out; converged: the loss reached a plateau (`converge`) after `stepsTaken` steps. */
  stoppedBy: 'steps' | 'target' | 'converged' | 'callback';
  /** What the visibility target did (only with `visibility`). */
  visibility?: VisibilityRecord;
}

function positive(name: string, v: unknown, allowZero = false): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || (!allowZero && v === 0)) {
    throw new ArgumentError(
      `Expected ${name} to be a ${allowZero ? 'non-negative' : 'positive'} number but received ${describe(v)}`,
    );
  }
  return v;
}

/**
 * Validates PGD options before anything reaches native code (sharp's style: name the option,
 * say what was expected and what was received). `x`, when given, also checks the tensors
 * against the image's shape.
 */
export function checkPgdOptions(o: PgdOptions, x?: Tensor): void {
  if (o === null || typeof o !== 'object')
    throw new ArgumentError(`Expected PGD options to be an object but received ${describe(o)}`);
  positive('eps', o.eps, true);
  positive('stepSize', o.stepSize, true);
  if (!Number.isSafeInteger(o.steps) || o.steps < 0)
    throw new ArgumentError(`Expected steps to be a non-negative integer but received ${describe(o.steps)}`);
  if (o.norm !== undefined && o.norm !== 'linf' && o.norm !== 'l2')
    throw new ArgumentError(`Expected norm to be 'linf' or 'l2' but received ${describe(o.norm)}`);
  if (o.schedule !== undefined && o.schedule !== 'constant' && o.schedule !== 'linear-decay')
    throw new ArgumentError(
      `Expected schedule to be 'constant' or 'linear-decay' but received ${describe(o.schedule)}`,
    );
  if (o.optimizer !== undefined && !['sign', 'momentum', 'adam'].includes(o.optimizer))
    throw new ArgumentError(
      `Expected optimizer to be 'sign', 'momentum' or 'adam' but received ${describe(o.optimizer)}`,
    );
  if (
    o.range !== undefined &&
    !(
      Array.isArray(o.range) &&
      o.range.length === 2 &&
      o.range.every((v) => typeof v === 'number' && Number.isFinite(v)) &&
      o.range[0] < o.range[1]
    )
  ) {
    throw new ArgumentError(
      `Expected range to be [min, max] with finite min < max but received ${describe(o.range)}${Array.isArray(o.range) ? ` [${o.range.join(', ')}]` : ''}`,
    );
  }
  if (o.momentum !== undefined) positive('momentum', o.momentum, true);
  if (o.adam !== undefined) {
    for (const k of ['beta1', 'beta2'] as const) {
      const v = o.adam[k];
      if (v !== undefined && !(typeof v === 'number' && v >= 0 && v < 1))
        throw new ArgumentError(`Expected adam.${k} to be a number in [0, 1) but received ${describe(v)}`);
    }
    if (o.adam.eps !== undefined) positive('adam.eps', o.adam.eps);
  }
  if (o.targetLoss !== undefined && !(typeof o.targetLoss === 'number' && !Number.isNaN(o.targetLoss)))
    throw new ArgumentError(`Expected targetLoss to be a number but received ${describe(o.targetLoss)}`);
  if (o.converge !== undefined) checkConvergenceRule(o.converge);
  if (o.seed !== undefined && !(Number.isSafeInteger(o.seed) && o.seed >= 0))
    throw new ArgumentError(`Expected seed to be a non-negative integer but received ${describe(o.seed)}`);
  if (o.onStep !== undefined && typeof o.onStep !== 'function')
    throw new ArgumentError(`Expected onStep to be a function but received ${describe(o.onStep)}`);
  if (o.generator !== undefined && !(o.generator instanceof Generator))
    throw new ArgumentError(`Expected generator to be a Generator but received ${describe(o.generator)}`);
  if (x === undefined) return;
  const shape = x.shape;
  if (o.mask !== undefined && o.mask !== null) {
    const m = o.mask.shape;
    // Broadcastable to the image, and not larger than it: [1, 1, H, W] and [N, C, H, W] both work.
    if (m.length !== shape.length || m.some((d, k) => d !== 1 && d !== shape[k])) {
      throw new ArgumentError(
        `Expected mask to broadcast to the image [${shape.join(', ')}] but received shape [${m.join(', ')}]`,
      );
    }
  }
  if (o.epsMap !== undefined && o.epsMap !== null) checkEpsMap(o.epsMap, o, shape);
  if (o.visibility !== undefined) checkVisibilityTarget(o.visibility);
  if (o.startNoise !== undefined && o.startNoise.shape.join() !== shape.join()) {
    throw new ArgumentError(
      `Expected startNoise to have the image's shape [${shape.join(', ')}] but received [${o.startNoise.shape.join(', ')}]`,
    );
  }
}

function checkEpsMap(map: Tensor, o: PgdOptions, shape: readonly number[]): void {
  const m = map.shape;
  if (m.length !== shape.length || m.some((d, k) => d !== 1 && d !== shape[k]))
    throw new ArgumentError(
      `Expected epsMap to broadcast to the image [${shape.join(', ')}] but received shape [${m.join(', ')}]`,
    );
  if ((o.norm ?? 'linf') !== 'linf')
    throw new ArgumentError(`epsMap is a per-pixel L∞ budget; it does not apply to norm '${o.norm}'`);
  const [lo, hi] = noGrad(() => scope(() => [map.min().item(), map.max().item()]));
  // A tolerance of one float32 ulp at 1: maps built as eps × a factor in [0, 1] may round up.
  if (!(Number.isFinite(lo!) && Number.isFinite(hi!) && lo! >= 0 && hi! <= o.eps + 1e-7))
    throw new ArgumentError(`Expected epsMap's values to lie in [0, eps = ${o.eps}] but they span [${lo}, ${hi}]`);
}

/** The step size of iteration i under a schedule. */
export function stepSizeAt(o: Pick<PgdOptions, 'stepSize' | 'steps' | 'schedule'>, i: number): number {
  if (o.schedule === 'linear-decay') return o.stepSize - ((o.stepSize - o.stepSize / 100) / o.steps) * i;
  return o.stepSize;
}

/** Per-sample L2 norm, shaped to broadcast over the image ([N, 1, 1, 1]). */
function sampleNorm(t: Tensor): Tensor {
  const dims = Array.from({ length: t.ndim - 1 }, (_, i) => i + 1);
  return t.norm(2, dims, true);
}

/** The budget in force: the options' eps and epsMap, or a multiple of them after a visibility shrink. */
interface Bound {
  eps: number;
  map: Tensor | null;
}

/** What the projection needs: the budget, the mask and the pixel range. */
export type ProjectionOptions = Pick<PgdOptions, 'eps' | 'norm' | 'epsMap' | 'mask' | 'range'>;

/**
 * Projects δ = adv − x onto the budget (and the mask), then the image onto the pixel range: the one
 * definition of "a perturbation within budget", used by PGD and by the learned immunizer.
 */
export function project(
  x: Tensor,
  adv: Tensor,
  o: ProjectionOptions,
  b: Bound = { eps: o.eps, map: o.epsMap ?? null },
): Tensor {
  return scope(() => {
    const [lo, hi] = o.range ?? [0, 1];
    let delta = adv.sub(x);
    if (b.map) delta = delta.clamp(b.map.neg(), b.map);
    else if ((o.norm ?? 'linf') === 'linf') delta = delta.clamp(-b.eps, b.eps);
    else {
      // torch.renorm(d, p=2, dim=0, maxnorm=eps), as photoguard's L2 attack: shrink samples whose norm exceeds eps.
      const n = sampleNorm(delta);
      const factor = n.add(1e-7).reciprocal().mul(b.eps).where(n.gt(b.eps), 1);
      delta = delta.mul(factor);
    }
    let out = x.add(delta).clamp(lo, hi);
    if (o.mask) out = out.where(o.mask.gt(0.5), x);
    return out;
  });
}

/** The loss at a point and its gradient there; the gradient tensor is owned by the caller. */
export interface LossAndGradient {
  loss: number;
  grad: Tensor;
}

/**
 * Runs PGD from `x` (not modified) and returns the adversarial image. Deterministic for a
 * seed/generator. `lossFn` receives a tensor that requires grad and must return a scalar.
 */
export function pgd(x: Tensor, lossFn: (xAdv: Tensor) => Tensor, o: PgdOptions): PgdResult {
  if (o.eot !== undefined) return pgdWithGradient(x, eotGradient(lossFn, o, o.eot), o);
  return pgdWithGradient(
    x,
    (xa) =>
      scope(() => {
        const leaf = xa.detach().requiresGrad_();
        const loss = lossFn(leaf);
        if (loss.numel !== 1)
          throw new ImmunizeError(
            'E_ATTACK',
            `the attack loss must be a scalar but has shape [${loss.shape.join(', ')}]`,
          );
        const value = loss.item();
        if (o.targetLoss !== undefined && value <= o.targetLoss)
          return { loss: value, grad: keep(leaf.detach().mul(0)) };
        const [g] = grad(loss, [leaf]);
        return { loss: value, grad: keep(g!) };
      }),
    o,
  );
}

/**
 * The EOT loss and gradient: the mean over the draws (and the identity), one backward pass per
 * draw so that only one transformed graph is alive at a time.
 */
function eotGradient(lossFn: (xAdv: Tensor) => Tensor, o: PgdOptions, e: EotOptions): (xa: Tensor) => LossAndGradient {
  const samples = e.samples ?? 1;
  if (!Number.isSafeInteger(samples) || samples < 1)
    throw new ArgumentError(`Expected eot.samples to be a positive integer but received ${describe(samples)}`);
  const identity = e.includeIdentity ?? true;
  const generator = new Generator({ seed: e.seed ?? (o.seed ?? 0) + 1 });
  const draws = samples + (identity ? 1 : 0);
  return (xa) =>
    scope(() => {
      let total = 0;
      let sum: Tensor | null = null;
      for (let k = 0; k < draws; k++) {
        const g = scope(() => {
          const leaf = xa.detach().requiresGrad_();
          const input = identity && k === 0 ? leaf : e.transform(leaf, generator);
          const loss = lossFn(input);
          if (loss.numel !== 1)
            throw new ImmunizeError(
              'E_ATTACK',
              `the attack loss must be a scalar but has shape [${loss.shape.join(', ')}]`,
            );
          total += loss.item();
          const [d] = grad(loss, [leaf]);
          return keep(d!);
        });
        if (sum === null) sum = g;
        else {
          const next: Tensor = noGrad(() => keep(sum!.add(g)));
          sum.dispose();
          g.dispose();
          sum = next;
        }
      }
      const mean = noGrad(() => keep(sum!.div(draws)));
      sum!.dispose();
      return { loss: total / draws, grad: mean };
    });
}

/**
 * PGD with a caller-supplied gradient: for attacks whose gradient is not one autograd call
 * (averaged over random passes, or back-propagated step by step with checkpointing).
 */
export function pgdWithGradient(
  x: Tensor,
  lossAndGradient: (xAdv: Tensor, step: number) => LossAndGradient,
  o: PgdOptions,
): PgdResult {
  checkPgdOptions(o, x);
  const t0 = performance.now();
  const generator = o.generator ?? (o.seed !== undefined ? new Generator({ seed: o.seed }) : undefined);
  const base = noGrad(() => scope(() => x.detach().contiguous()));
  // With a per-pixel budget, each pixel's step is the step size times its share of eps.
  const stepScale = o.epsMap ? noGrad(() => scope(() => keep(o.epsMap!.div(o.eps > 0 ? o.eps : 1)))) : null;
  let adv: Tensor = noGrad(() => {
    const noise = o.startNoise
      ? o.startNoise.alias()
      : o.randomStart
        ? scope(() => {
            const u = rand(base.shape, { generator, dtype: base.dtype, device: base.device });
            // u·2ε − ε with the map's ε, in the same order as the scalar form: a constant map gives its bytes.
            return o.epsMap ? u.mul(o.epsMap.mul(2)).sub(o.epsMap) : u.mul(2 * o.eps).sub(o.eps);
          })
        : null;
    if (noise === null) return base.clone();
    using _n = noise;
    return scope(() => (o.projectStart === false ? base.add(noise) : project(base, base.add(noise), o)));
  });
  let velocity: Tensor | null = null; // momentum buffer, or Adam's first moment
  let second: Tensor | null = null; // Adam's second moment
  const losses: number[] = [];
  const stepSizes: number[] = [];
  let stoppedBy: PgdResult['stoppedBy'] = 'steps';
  // The visibility target's state: the budget's multiple, and the step of its last shrink.
  const vis = o.visibility;
  const bound: Bound = { eps: o.eps, map: o.epsMap ?? null };
  let scale = 1;
  let shrinks = 0;
  let lastShrink = -Infinity;
  let measurements = 0;
  let lastScore: number | null = null;
  let visibility: VisibilityRecord | undefined;
  let i = 0;
  try {
    for (; i < o.steps; i++) {
      const size = stepSizeAt(o, i) * scale;
      let lossValue = NaN;
      const next = scope(() => {
        const lg = lossAndGradient(adv, i);
        using g = lg.grad;
        lossValue = lg.loss;
        if (o.targetLoss !== undefined && lossValue <= o.targetLoss) return null;
        return noGrad(() => {
          const dir = direction(
            g,
            o,
            i,
            (v, s) => {
              velocity = v;
              second = s;
            },
            velocity,
            second,
          );
          const moved = adv.detach().sub(stepScale ? dir.mul(stepScale).mul(size) : dir.mul(size));
          return project(base, moved, o, bound);
        });
      });
      losses.push(lossValue);
      stepSizes.push(size);
      if (!Number.isFinite(lossValue))
        throw new ImmunizeError(
          'E_ATTACK',
          `the attack loss became ${lossValue} at step ${i}; lower the step size or check the model`,
        );
      if (next === null) {
        stoppedBy = 'target';
        break;
      }
      adv.dispose();
      adv = next;
      lastScore = null;
      if (vis !== undefined && (i + 1) % (vis.every ?? 10) === 0) {
        lastScore = vis.measure(adv);
        measurements++;
        const f = shrinkFactor(lastScore, vis.min);
        if (f < 1) {
          // Shrink the budget (and the steps with it) and put δ back inside it.
          scale *= f;
          shrinks++;
          lastShrink = i + 1;
          const map = bound.map === null ? null : noGrad(() => scope(() => keep(bound.map!.mul(f))));
          if (bound.map !== null && bound.map !== o.epsMap) bound.map.dispose();
          bound.map = map;
          bound.eps *= f;
          const inside = noGrad(() => project(base, adv, o, bound));
          adv.dispose();
          adv = inside;
          lastScore = null;
        }
      }
      const goOn = o.onStep?.({
        step: i + 1,
        steps: o.steps,
        loss: lossValue,
        stepSize: size,
        elapsedMs: performance.now() - t0,
      });
      if (goOn === false) {
        stoppedBy = 'callback';
        i++;
        break;
      }
      // A shrink raises the loss: judge the plateau only on windows after the last one.
      const settled = o.converge === undefined || i + 1 - lastShrink >= 2 * o.converge.window;
      if (o.converge !== undefined && settled && i + 1 < o.steps && hasConverged(losses, o.converge)) {
        stoppedBy = 'converged';
        i++;
        break;
      }
    }
    if (vis !== undefined && stoppedBy !== 'callback') {
      if (lastScore === null) {
        lastScore = vis.measure(adv);
        measurements++;
      }
      let scaledBack: number | null = null;
      if (lastScore < vis.min) {
        const back = scaleBack(base, adv, vis, o.range ?? [0, 1]);
        adv.dispose();
        adv = back.image;
        scaledBack = back.t;
        lastScore = back.score;
        measurements += back.measurements;
      }
      visibility = { min: vis.min, score: lastScore, budgetScale: scale, shrinks, scaledBack, measurements };
    }
  } catch (e) {
    adv.dispose();
    throw e;
  } finally {
    base.dispose();
    stepScale?.dispose();
    if (bound.map !== null && bound.map !== o.epsMap) bound.map.dispose();
    (velocity as Tensor | null)?.dispose();
    (second as Tensor | null)?.dispose();
  }
  return { adv, losses, stepSizes, stepsTaken: i, stoppedBy, ...(visibility ? { visibility } : {}) };
}

/** The update direction for the optimiser; keeps its state tensors alive across steps. */
function direction(
  g: Tensor,
  o: PgdOptions,
  i: number,
  save: (v: Tensor | null, s: Tensor | null) => void,
  velocity: Tensor | null,
  second: Tensor | null,
): Tensor {
  const opt = o.optimizer ?? 'sign';
  const l2 = (o.norm ?? 'linf') === 'l2';
  if (opt === 'sign') {
    if (!l2) return g.sign();
    // photoguard's L2 step: the gradient normalised per sample.
    return g.div(sampleNorm(g).add(1e-10));
  }
  if (opt === 'momentum') {
    // MI-FGSM: v ← μ·v + g/‖g‖₁ (per sample), step along sign(v) (L∞) or v/‖v‖₂ (L2).
    const dims = Array.from({ length: g.ndim - 1 }, (_, k) => k + 1);
    const gn = g.div(g.abs().mean(dims, true).add(1e-12));
    const v = velocity === null ? gn : velocity.mul(o.momentum ?? 1).add(gn);
    if (velocity !== null) velocity.dispose();
    save(keep(v), second);
    return l2 ? v.div(sampleNorm(v).add(1e-10)) : v.sign();
  }
  // Adam on δ: the step size is the learning rate; projection follows each step.
  const { direction: d, moments } = adamDirection(
    g,
    velocity === null || second === null ? null : { m: velocity, v: second },
    i + 1,
    o.adam,
  );
  velocity?.dispose();
  second?.dispose();
  save(keep(moments.m), keep(moments.v));
  return d;
}
