/**
 * Multi-scale SSIM (Wang, Simoncelli & Bovik 2003, DOI 10.1109/ACSSC.2003.1292216) as piq 0.8.0
 * `multi_scale_ssim`: per channel, 5 scales (weights 0.0448, 0.2856, 0.3001, 0.2363, 0.1333 from
 * the paper), each scale after the first replicate-padded to even size and 2×2 average-pooled;
 * cs at the first four scales and SSIM at the last, clamped at 0 (ReLU), raised to the weights and
 * multiplied, then averaged over channels. Needs ≥ (k − 1)·2⁴ + 1 = 161 px per side with the
 * default 11-px window. Differentiable.
 */
import { F, scope, stack, tensor, type Tensor } from '../torch/index.js';
import {
  checkImagePair,
  checkReduction,
  gaussianFilter,
  MetricInputError,
  reduce,
  type MetricOptions,
} from './functional.js';
import { checkKernel, ssimPerChannel } from './ssim.js';

export interface MultiScaleSSIMOptions extends MetricOptions {
  kernelSize?: number;
  kernelSigma?: number;
  /** One weight per scale; normalised to sum 1 when given. Default the paper's five. */
  scaleWeights?: readonly number[];
  k1?: number;
  k2?: number;
}

/** Weights from the MS-SSIM paper (Table/Sec. 3.2). */
export const MS_SSIM_WEIGHTS = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333] as const;

export function multiScaleSsim(x: Tensor, y: Tensor, o: MultiScaleSSIMOptions = {}): Tensor {
  const metric = 'multi_scale_ssim';
  const kernelSize = o.kernelSize ?? 11;
  checkKernel(metric, kernelSize);
  checkReduction(metric, o.reduction);
  const dr = checkImagePair(metric, x, y, o.dataRange);
  const given = o.scaleWeights;
  if (
    given !== undefined &&
    (!Array.isArray(given) || given.length === 0 || !given.every((w) => Number.isFinite(w) && w >= 0))
  ) {
    throw new MetricInputError('E_SHAPE', `${metric}: scaleWeights must be a non-empty array of non-negative numbers`);
  }
  const levels = given?.length ?? MS_SSIM_WEIGHTS.length;
  const minSize = (kernelSize - 1) * 2 ** (levels - 1) + 1;
  if (x.shape[2]! < minSize || x.shape[3]! < minSize) {
    throw new MetricInputError(
      'E_SHAPE',
      `${metric}: images must be at least ${minSize}×${minSize} for ${levels} scales with a ${kernelSize}-px window but are ${x.shape[2]}×${x.shape[3]}`,
    );
  }
  return scope(() => {
    let a = x.div(dr);
    let b = y.div(dr);
    let weights = tensor(Float64Array.from(given ?? MS_SSIM_WEIGHTS), [levels], { dtype: a.dtype, device: a.device });
    if (given !== undefined) weights = weights.div(weights.sum());
    const kernel = gaussianFilter(kernelSize, o.kernelSigma ?? 1.5, a.dtype, a.device).repeat(a.shape[1]!, 1, 1, 1);
    const mcs: Tensor[] = [];
    let last: Tensor | undefined;
    for (let i = 0; i < levels; i++) {
      if (i > 0) {
        const p = Math.max(a.shape[2]! % 2, a.shape[3]! % 2);
        a = F.avgPool2d(F.pad(a, [p, 0, p, 0], 'replicate'), 2, { padding: 0 });
        b = F.avgPool2d(F.pad(b, [p, 0, p, 0], 'replicate'), 2, { padding: 0 });
      }
      const [s, cs] = ssimPerChannel(metric, a, b, kernel, o.k1 ?? 0.01, o.k2 ?? 0.03);
      mcs.push(cs);
      last = s;
    }
    const values = stack([...mcs.slice(0, -1), last!], 0).relu();
    const score = values
      .pow(weights.view(-1, 1, 1))
      .prod(0)
      .mean(1);
    return reduce(metric, score, o.reduction);
  });
}
