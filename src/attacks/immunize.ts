/**
 * One dispatch for the ways Immunize perturbs a photo — the encoder attack, photoguard's diffusion
 * attack and the random-noise baseline — used by the protect job and by the evaluation, so both
 * run exactly the same attack for the same method. Images are NCHW in [0, 1] on the attack's
 * device; budgets are on that scale. The diffusion attack's [-1, 1] scaling and compositing (the
 * repainted region keeps the original pixels) live here and nowhere else.
 */
import { ArgumentError } from '../errors.js';
import type { StableDiffusion } from '../pipelines/components.js';
import { prepareMask } from '../pipelines/generate.js';
import type { ImmunizerNet } from '../models/immunizer.js';
import { noGrad, scope, type Precision, type Tensor } from '../torch/index.js';
import { diffusionAttack } from './diffusion.js';
import { encoderAttack, type EncoderTarget, type ImageEncoder } from './encoder.js';
import { learnedImmunize } from './learned.js';
import { randomNoise } from './noise.js';
import type { PgdOptions, PgdStep } from './pgd.js';
import type { VisibilityRecord } from './visibility.js';

export const IMMUNIZE_METHODS = ['encoder', 'diffusion', 'noise', 'learned'] as const;
export type ImmunizeMethod = (typeof IMMUNIZE_METHODS)[number];

export interface ImmunizeOptions {
  method: ImmunizeMethod;
  /** Budget, steps, optimiser, seed, EOT… on the [0, 1] scale (`mask` and `onStep` are set below). */
  pgd: Omit<PgdOptions, 'mask' | 'onStep'>;
  /** 1 where the perturbation may go, 0 where the photo stays exactly as it is; null: everywhere. */
  mask?: Tensor | null;
  /** encoder: the encoder(s) attacked. */
  encoder?: ImageEncoder | ImageEncoder[];
  /** encoder: the encoders' arithmetic (default fp32; the other methods run in fp32). */
  precision?: Precision;
  /** encoder: gray (default), zeros or an image; diffusion: an image in [0, 1] (default gray). */
  target?: EncoderTarget;
  /** diffusion: an inpainting pipeline, the steps back-propagated per pass and the passes per step. */
  diffusion?: { pipeline: StableDiffusion; denoiseSteps: number; gradReps: number; name: string };
  /** learned, and the encoder attack with start 'learned': the learned immunizer G (src/models/immunizer.ts). */
  immunizer?: ImmunizerNet;
  /** encoder: 'learned' starts PGD from the learned δ instead of the preset's start (random or none). */
  start?: 'preset' | 'learned';
  /** After each step; return false to stop (cancellation). */
  onStep?: (s: PgdStep) => boolean | void;
}

/** What the attack did (null for the noise baseline, which takes no steps). */
export interface AttackRecord {
  encoders: string[];
  /** Loss before each update, then `finalLoss` after the last one (encoder attack). */
  losses: number[];
  finalLoss: number | null;
  stepSizes: number[];
  stepsTaken: number;
  stoppedBy: string;
  /** What the visibility target did (only when the request set one). */
  visibility?: VisibilityRecord;
}

export interface ImmunizeResult {
  /** The immunized image (caller owns it), same shape and device as the input. */
  adv: Tensor;
  attack: AttackRecord | null;
}

export function immunize(x: Tensor, o: ImmunizeOptions): ImmunizeResult {
  const mask = o.mask ?? null;
  if (o.method !== 'encoder' && (o.pgd.epsMap || o.pgd.visibility))
    throw new ArgumentError(`per-pixel budgets and visibility targets work with the encoder attack, not ${o.method}`);
  if (o.method === 'noise') return { adv: randomNoise(x, { eps: o.pgd.eps, seed: o.pgd.seed, mask }), attack: null };
  if (o.method === 'learned') {
    if (o.immunizer === undefined) throw new ArgumentError('the learned method needs the learned immunizer G');
    const adv = learnedImmunize(o.immunizer, x, { ...o.pgd, mask, precision: o.precision });
    return { adv, attack: null };
  }
  if (o.method === 'encoder') {
    if (o.encoder === undefined) throw new ArgumentError('the encoder attack needs an encoder');
    const start = o.start === 'learned' ? learnedStart(o, x, mask) : null;
    using _start = start;
    const r = encoderAttack(o.encoder, x, {
      ...o.pgd,
      ...(start === null ? {} : { startNoise: start, randomStart: false }),
      mask,
      target: o.target ?? 'gray',
      precision: o.precision,
      onStep: o.onStep,
    });
    return {
      adv: r.adv,
      attack: {
        encoders: r.encoders,
        losses: r.losses,
        finalLoss: r.finalLoss,
        stepSizes: r.stepSizes,
        stepsTaken: r.stepsTaken,
        stoppedBy: r.stoppedBy,
        ...(r.visibility ? { visibility: r.visibility } : {}),
      },
    };
  }
  if (o.method !== 'diffusion')
    throw new ArgumentError(`unknown method '${String(o.method)}' (expected ${IMMUNIZE_METHODS.join(', ')})`);
  if ((o.precision ?? 'fp32') !== 'fp32')
    throw new ArgumentError(`the diffusion attack runs in fp32, not ${o.precision}`);
  const d = o.diffusion;
  if (d === undefined) throw new ArgumentError('the diffusion attack needs an inpainting pipeline');
  if (mask === null)
    throw new ArgumentError(
      'the diffusion attack needs a mask: 1 where the photo is protected (kept), 0 where an editor repaints',
    );
  if (o.target === 'zeros')
    throw new ArgumentError(
      'target zeros is a latent target, for the encoder attack; the diffusion attack aims its edit at an image',
    );
  return scope(() => {
    // Our mask is white where the perturbation goes (the kept region); photoguard's is the region
    // the editor repaints. Its attack works on the masked image in [-1, 1], so the [0, 1] budget
    // and step double there; the repainted region keeps the original pixels.
    const repaint = noGrad(() => mask.lt(0.5).to('float32'));
    const masked = noGrad(() => prepareMask(x, repaint).masked);
    // photoguard's target is a gray image: zeros on the [-1, 1] scale.
    const target =
      o.target === undefined || o.target === 'gray' ? undefined : noGrad(() => (o.target as Tensor).mul(2).sub(1));
    const r = diffusionAttack(d.pipeline, masked, repaint, {
      ...o.pgd,
      eps: 2 * o.pgd.eps,
      stepSize: 2 * o.pgd.stepSize,
      randomStart: false,
      denoiseSteps: d.denoiseSteps,
      gradReps: d.gradReps,
      guidance: 7.5,
      eta: 1,
      prompt: '',
      target,
      onStep: o.onStep,
    });
    const adv = noGrad(() => x.where(repaint.gt(0.5), r.adv.div(2).add(0.5).clamp(0, 1)));
    return {
      adv,
      attack: {
        encoders: [`${d.name} (inpainting, ${d.denoiseSteps} steps × ${d.gradReps} passes)`],
        losses: r.losses,
        finalLoss: r.losses.at(-1) ?? NaN,
        stepSizes: r.stepSizes,
        stepsTaken: r.stepsTaken,
        stoppedBy: r.stoppedBy,
      },
    };
  });
}

/** The learned δ (projected, within budget and mask) as PGD's start perturbation. */
function learnedStart(o: ImmunizeOptions, x: Tensor, mask: Tensor | null): Tensor {
  if (o.immunizer === undefined) throw new ArgumentError("start 'learned' needs the learned immunizer G");
  const adv = learnedImmunize(o.immunizer, x, { ...o.pgd, mask, precision: o.precision });
  const delta = noGrad(() => adv.sub(x));
  adv.dispose();
  return delta;
}
