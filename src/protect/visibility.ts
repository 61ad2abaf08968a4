/**
 * How visible the change is, as the protect job measures it: SSIM of the result to the original
 * at the photo's FULL resolution. piq's (and skimage's) default first average-pools a large image
 * by round(min(H, W) / 256) — 4× for a 1,170×1,152 photo — which averages a pixel-level
 * perturbation pattern away and reports it as nearly invisible; a person looking at the photo at
 * its own size sees every pixel. Masked photos are measured whole (the change is zero outside
 * the mask), so a small protected region reads as a small change of the photo.
 */
import { ssim } from '../metrics/ssim.js';
import { noGrad, scope, type Tensor } from '../torch/index.js';

/** SSIM (piq's window, constants and per-channel mean) at full resolution; 1 for identical images. */
export function visibilitySsim(result: Tensor, original: Tensor): number {
  return noGrad(() =>
    scope(() => ssim(result.detach(), original.detach(), { downsample: false, reduction: 'mean' }).item()),
  );
}

/** The image as an 8-bit file holds it (clamped, rounded to 1/255): what the target is measured on. */
export function asWritten(x: Tensor): Tensor {
  return noGrad(() => scope(() => x.clamp(0, 1).mul(255).round().div(255)));
}
