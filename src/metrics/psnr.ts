/**
 * Peak signal-to-noise ratio as piq 0.8.0 `psnr`: images divided by dataRange,
 * MSE over (C, H, W) per image, −10·log10(MSE + 1e-8) (so identical images give 80 dB), optional
 * greyscale (Y of YIQ) first. Differentiable (usable as a loss).
 *
 *   psnr(x, y, { reduction: 'none' })   // Tensor [N], dB
 *   psnr(x, y)                          // number: the batch mean (the CLI's one-line summary)
 */
import { scope, tensor, type Tensor } from '../torch/index.js';
import { checkImagePair, checkReduction, reduce, type MetricOptions } from './functional.js';

export interface PSNROptions extends MetricOptions {
  /** Compare only the luminance Y = 0.299 R + 0.587 G + 0.114 B of RGB images. Default false. */
  convertToGreyscale?: boolean;
}

/** PSNR per image / reduced, as a Tensor (differentiable). */
export function psnr(x: Tensor, y: Tensor, options: PSNROptions): Tensor;
/**
 * The batch-mean PSNR in dB as a number (no gradient); `dataRange` defaults to 1. This summary
 * form does not check the value range (decoders may overshoot [0, 1] slightly).
 */
export function psnr(x: Tensor, y: Tensor, dataRange?: number): number;
export function psnr(x: Tensor, y: Tensor, o?: PSNROptions | number): Tensor | number {
  if (typeof o === 'object' && o !== null) return psnrTensor(x, y, o, true);
  return scope(() => psnrTensor(x.detach(), y.detach(), { dataRange: o, reduction: 'mean' }, false).item());
}

function psnrTensor(x: Tensor, y: Tensor, o: PSNROptions, checkRange: boolean): Tensor {
  checkReduction('psnr', o.reduction);
  const dr = checkImagePair('psnr', x, y, o.dataRange, { checkRange });
  // piq's constant for numerical stability: caps identical images at 80 dB.
  const EPS = 1e-8;
  return scope(() => {
    let a = x.div(dr);
    let b = y.div(dr);
    if (a.shape[1] === 3 && o.convertToGreyscale) {
      const w = tensor(Float64Array.of(0.299, 0.587, 0.114), [1, 3, 1, 1], { dtype: a.dtype, device: a.device });
      a = a.mul(w).sum(1, true);
      b = b.mul(w).sum(1, true);
    }
    const mse = a.sub(b).pow(2).mean([1, 2, 3]);
    return reduce('psnr', mse.add(EPS).log10().mul(-10), o.reduction);
  });
}
