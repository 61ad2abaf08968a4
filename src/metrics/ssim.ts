/**
 * Structural similarity (Wang et al. 2004, DOI 10.1109/TIP.2003.819861) as piq 0.8.0 `ssim`:
 * every channel compared separately (no greyscale conversion) with an 11×11 Gaussian window
 * (σ 1.5) without padding, K1 0.01, K2 0.03, averaged over the map and the channels. Images are
 * first average-pooled by f = round(min(H, W) / 256) when f > 1 (`downsample`, as skimage and
 * the MATLAB reference do). Differentiable (usable as a loss: 1 − SSIM).
 *
 *   ssim(x, y, { reduction: 'none' })   // Tensor [N] in [−1, 1], 1 for identical images
 *   ssim(x, y)                          // number: the batch mean
 */
import { F, scope, type Tensor } from '../torch/index.js';
import {
  checkImagePair,
  checkReduction,
  gaussianFilter,
  MetricInputError,
  pyRound,
  reduce,
  type MetricOptions,
} from './functional.js';

export interface SSIMOptions extends MetricOptions {
  /** Side of the Gaussian window (odd). Default 11. */
  kernelSize?: number;
  /** σ of the Gaussian window. Default 1.5. */
  kernelSigma?: number;
  /** Average-pool large images by round(min(H, W) / 256) first. Default true. */
  downsample?: boolean;
  k1?: number;
  k2?: number;
}

/** SSIM per image / reduced, as a Tensor (differentiable). */
export function ssim(x: Tensor, y: Tensor, options: SSIMOptions): Tensor;
/**
 * The batch-mean SSIM as a number (no gradient); `dataRange` defaults to 1. This summary form
 * does not check the value range (decoders may overshoot [0, 1] slightly).
 */
export function ssim(x: Tensor, y: Tensor, dataRange?: number): number;
export function ssim(x: Tensor, y: Tensor, o?: SSIMOptions | number): Tensor | number {
  if (typeof o === 'object' && o !== null) return scope(() => ssimFull(x, y, o).ssim);
  return scope(() => ssimFull(x.detach(), y.detach(), { dataRange: o, reduction: 'mean' }, false).ssim.item());
}

/** SSIM and the contrast-structure term cs (piq ssim(full=True)), both reduced as asked. */
export function ssimFull(x: Tensor, y: Tensor, o: SSIMOptions = {}, checkRange = true): { ssim: Tensor; cs: Tensor } {
  const kernelSize = o.kernelSize ?? 11;
  checkKernel('ssim', kernelSize);
  checkReduction('ssim', o.reduction);
  const dr = checkImagePair('ssim', x, y, o.dataRange, { checkRange });
  return scope(() => {
    let a = x.div(dr);
    let b = y.div(dr);
    const f = Math.max(1, pyRound(Math.min(a.shape[2]!, a.shape[3]!) / 256));
    if (f > 1 && (o.downsample ?? true)) {
      a = F.avgPool2d(a, f);
      b = F.avgPool2d(b, f);
    }
    const kernel = gaussianFilter(kernelSize, o.kernelSigma ?? 1.5, a.dtype, a.device).repeat(a.shape[1]!, 1, 1, 1);
    const [s, cs] = ssimPerChannel('ssim', a, b, kernel, o.k1 ?? 0.01, o.k2 ?? 0.03);
    return { ssim: reduce('ssim', s.mean(1), o.reduction), cs: reduce('ssim', cs.mean(1), o.reduction) };
  });
}

export function checkKernel(metric: string, kernelSize: number): void {
  if (!Number.isSafeInteger(kernelSize) || kernelSize < 1 || kernelSize % 2 !== 1) {
    throw new MetricInputError('E_SHAPE', `${metric}: kernelSize must be an odd positive integer but is ${kernelSize}`);
  }
}

/**
 * piq `_ssim_per_channel`: SSIM and cs per image and channel [N, C], for images already divided
 * by the data range; `kernel` is (C, 1, k, k) (a depthwise convolution).
 */
export function ssimPerChannel(
  metric: string,
  x: Tensor,
  y: Tensor,
  kernel: Tensor,
  k1: number,
  k2: number,
): [Tensor, Tensor] {
  const k = kernel.shape[kernel.ndim - 1]!;
  if (x.shape[3]! < k || x.shape[2]! < k) {
    throw new MetricInputError(
      'E_SHAPE',
      `${metric}: the ${k}×${k} window is larger than the ${x.shape[2]}×${x.shape[3]} images`,
    );
  }
  return scope(() => {
    const c1 = k1 ** 2;
    const c2 = k2 ** 2;
    const groups = x.shape[1]!;
    const conv = (t: Tensor) => F.conv2d(t, kernel, null, { stride: 1, padding: 0, groups });
    const muX = conv(x);
    const muY = conv(y);
    const muXX = muX.pow(2);
    const muYY = muY.pow(2);
    const muXY = muX.mul(muY);
    const sigmaXX = conv(x.pow(2)).sub(muXX);
    const sigmaYY = conv(y.pow(2)).sub(muYY);
    const sigmaXY = conv(x.mul(y)).sub(muXY);
    // Contrast-structure term with alpha = beta = gamma = 1.
    const cs = sigmaXY.mul(2.0).add(c2).div(sigmaXX.add(sigmaYY).add(c2));
    const ss = muXY.mul(2.0).add(c1).div(muXX.add(muYY).add(c1)).mul(cs);
    return [ss.mean([-1, -2]), cs.mean([-1, -2])];
  });
}
