/**
 * An adaptive purifier in the style of IMPRESS (Cao et al. 2023, "IMPRESS: Evaluating the
 * resilience of imperceptible perturbations against unauthorized data usage in diffusion-based
 * generative AI"). A protective perturbation makes the image inconsistent for the autoencoder:
 * D(E(x_prot)) is far from x_prot. IMPRESS searches for an image x that the autoencoder
 * reconstructs consistently while staying visually close to the protected image:
 *
 *   min_x  ‖D(E(x)) − x‖²  +  λ · max(d(x, x_prot) − Δ, 0),   x ∈ [0, 1] (and ‖x − x_prot‖∞ ≤ ε)
 *
 * with d = LPIPS in the paper. Here d is 'ssim' (1 − SSIM, piq's SSIM), 'l2' (mean squared
 * difference) or 'lpips' — LPIPS needs its VGG/AlexNet weights, which are not available offline,
 * so it runs only when the caller supplies the distance (`lpips`). Both squared terms are means
 * over pixels, so λ does not depend on the image size. The optimiser is Adam on x (the PGD
 * engine in src/attacks/pgd.ts with optimizer 'adam', which also projects onto [0, 1] and ε).
 */
import { pgd, type PgdStep } from '../attacks/pgd.js';
import { ArgumentError, describe, ImmunizeError } from '../errors.js';
import { ssim } from '../metrics/ssim.js';
import { asImageAutoencoder as asAutoencoder, reconstruct, type AnyAutoencoder } from '../models/image-autoencoder.js';
import { noGrad, scope, type Tensor } from '../torch/index.js';
import { checkImageBatch, checkNumber } from './common.js';

/** The purifier's autoencoders: the adapter's (src/models/image-autoencoder.ts). */
export {
  asImageAutoencoder as asAutoencoder,
  reconstruct,
  type ImageAutoencoder,
} from '../models/image-autoencoder.js';

/** Mean squared reconstruction error ‖D(E(x)) − x‖² / #pixels (a number; no gradient). */
export function reconstructionError(model: AnyAutoencoder, x: Tensor): number {
  return noGrad(() => scope(() => reconstruct(model, x).sub(x).square().mean().item()));
}

export type Closeness = 'ssim' | 'l2' | 'lpips';

export interface ImpressOptions {
  /** Adam steps. Default 50. */
  steps?: number;
  /** Adam's learning rate, in [0, 1] pixel units. Default 0.002. */
  stepSize?: number;
  /**
   * The closeness distance d. Default 'l2': on TAEF2 at 64² (docs/purify.md) it reached a lower
   * reconstruction error *and* stayed closer to the protected image than 1 − SSIM at λ = 1,
   * which barely constrains the pixels (SSIM 0.9996 at an L∞ change of 38/255).
   */
  closeness?: Closeness;
  /** λ, the weight of the closeness term. Default 1 for 'ssim' and 'lpips', 10 for 'l2'. */
  weight?: number;
  /** Δ: distances up to this cost nothing (IMPRESS's hinge). Default 0. */
  margin?: number;
  /** An L∞ bound on x − x_prot. Default 1 (only the pixel range constrains x). */
  eps?: number;
  /** A differentiable perceptual distance d(a, b) → scalar, required for closeness 'lpips'. */
  lpips?: (a: Tensor, b: Tensor) => Tensor;
  /** Called after each step; return false to stop. */
  onStep?: (s: PgdStep) => boolean | void;
}

export interface ImpressResult {
  /** The purified image (caller owns it). */
  purified: Tensor;
  /** Total loss before each step. */
  losses: number[];
  /** Mean squared reconstruction error of the protected image and of the purified one. */
  reconstructionBefore: number;
  reconstructionAfter: number;
  /** d(purified, protected) under the chosen closeness (without the margin). */
  distance: number;
  stepsTaken: number;
}

/** Purifies `protectedImage` (NCHW in [0, 1]) against `model` (see the module comment). */
export function impress(model: AnyAutoencoder, protectedImage: Tensor, o: ImpressOptions = {}): ImpressResult {
  checkImageBatch(protectedImage, 'impress');
  const ae = asAutoencoder(model);
  const closeness = o.closeness ?? 'l2';
  if (closeness !== 'ssim' && closeness !== 'l2' && closeness !== 'lpips')
    throw new ArgumentError(`impress: expected closeness 'ssim', 'l2' or 'lpips' but received ${describe(closeness)}`);
  if (closeness === 'lpips' && typeof o.lpips !== 'function') {
    throw new ImmunizeError(
      'E_NOT_AVAILABLE',
      "impress: closeness 'lpips' needs LPIPS weights, which are not available offline; pass options.lpips (a differentiable distance) or use closeness 'ssim' or 'l2'",
    );
  }
  const steps = checkNumber('impress', 'steps', o.steps ?? 50, { min: 0, integer: true });
  const stepSize = checkNumber('impress', 'stepSize', o.stepSize ?? 0.002, { min: 0, minExclusive: true });
  const weight = checkNumber('impress', 'weight', o.weight ?? (closeness === 'l2' ? 10 : 1), { min: 0 });
  const margin = checkNumber('impress', 'margin', o.margin ?? 0, { min: 0 });
  const eps = checkNumber('impress', 'eps', o.eps ?? 1, { min: 0 });
  const x0 = noGrad(() => protectedImage.detach());
  try {
    const distance = (x: Tensor): Tensor =>
      scope(() => {
        if (closeness === 'ssim') return ssim(x, x0, { dataRange: 1, reduction: 'mean' }).rsub(1);
        if (closeness === 'l2') return x.sub(x0).square().mean();
        const d = o.lpips!(x, x0);
        return d.numel === 1 ? d.reshape([]) : d.mean();
      });
    const lossFn = (x: Tensor): Tensor =>
      scope(() => {
        const consistency = reconstruct(ae, x).sub(x).square().mean();
        const d = distance(x);
        return consistency.add(d.sub(margin).clamp(0, null).mul(weight));
      });
    const reconstructionBefore = reconstructionError(ae, x0);
    const r = pgd(x0, lossFn, { eps, stepSize, steps, optimizer: 'adam', norm: 'linf', onStep: o.onStep });
    const reconstructionAfter = reconstructionError(ae, r.adv);
    const dist = noGrad(() => scope(() => distance(r.adv).item()));
    return {
      purified: r.adv,
      losses: r.losses,
      reconstructionBefore,
      reconstructionAfter,
      distance: dist,
      stepsTaken: r.stepsTaken,
    };
  } finally {
    x0.dispose();
  }
}
