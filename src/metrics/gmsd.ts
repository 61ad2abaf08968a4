/**
 * Gradient magnitude similarity deviation (GMSD; Xue, Zhang, Mou & Bovik 2014, DOI
 * 10.1109/TIP.2013.2293423) and its multi-scale version (MS-GMSD; Zhang, Xue et al. 2017,
 * DOI 10.1109/ICIP.2017.8296328) as piq 0.8.0 `gmsd` / `multi_scale_gmsd`.
 *
 * - GMSD: images in [0, 1], RGB reduced to Y of YIQ, zero-padded to even size and 2×2
 *   average-pooled, Prewitt gradients, T = 170 / 255²; the standard deviation of the gradient
 *   similarity map. 0 for identical images; larger is worse.
 * - MS-GMSD: images in [0, 255], YIQ, 4 scales (weights 0.096, 0.596, 0.289, 0.019), T = 170,
 *   α = 0.5 masking; optional chromatic term (β1 0.01, β2 0.32, β3 15). 0 for identical images.
 *
 * Both differentiable.
 */
import { F, scope, stack, tensor, type Tensor } from '../torch/index.js';
import {
  checkImagePair,
  checkReduction,
  gradientMap,
  prewittFilter,
  reduce,
  rgb2yiq,
  similarityMap,
  xyKernels,
  MetricInputError,
  type MetricOptions,
} from './functional.js';

export interface GMSDOptions extends MetricOptions {
  /** Constant for numerical stability (in [0, 1]² units). Default 170 / 255². */
  t?: number;
}

export function gmsd(x: Tensor, y: Tensor, o: GMSDOptions = {}): Tensor {
  checkReduction('gmsd', o.reduction);
  const dr = checkImagePair('gmsd', x, y, o.dataRange, { channels: [1, 3] });
  return scope(() => {
    let a = x.div(dr);
    let b = y.div(dr);
    if (a.shape[1] === 3) {
      a = rgb2yiq(a).narrow(1, 0, 1);
      b = rgb2yiq(b).narrow(1, 0, 1);
    }
    const down = Math.max(a.shape[2]! % 2, a.shape[3]! % 2);
    a = F.avgPool2d(F.pad(a, [0, down, 0, down]), 2, { stride: 2, padding: 0 });
    b = F.avgPool2d(F.pad(b, [0, down, 0, down]), 2, { stride: 2, padding: 0 });
    return reduce('gmsd', gmsdCore(a, b, o.t ?? 170 / 255 ** 2, 0), o.reduction);
  });
}

/** Standard deviation of the gradient magnitude similarity map (piq _gmsd). */
function gmsdCore(x: Tensor, y: Tensor, t: number, alpha: number): Tensor {
  return scope(() => {
    const kernels = xyKernels(prewittFilter(x.dtype, x.device));
    const gms = similarityMap(gradientMap(x, kernels), gradientMap(y, kernels), t, alpha);
    const mean = gms.mean([1, 2, 3], true);
    return gms.sub(mean).pow(2).mean([1, 2, 3]).sqrt();
  });
}

export interface MultiScaleGMSDOptions extends MetricOptions {
  /** One weight per scale, normalised to sum 1 when given. Default 0.096, 0.596, 0.289, 0.019. */
  scaleWeights?: readonly number[];
  /** Add the chromatic (I, Q) term. Default false; needs RGB. */
  chromatic?: boolean;
  alpha?: number;
  beta1?: number;
  beta2?: number;
  beta3?: number;
  /** Constant for numerical stability (in [0, 255]² units). Default 170. */
  t?: number;
}

/** Scale weights from the MS-GMSD paper. */
export const MS_GMSD_WEIGHTS = [0.096, 0.596, 0.289, 0.019] as const;

export function multiScaleGmsd(x: Tensor, y: Tensor, o: MultiScaleGMSDOptions = {}): Tensor {
  const metric = 'multi_scale_gmsd';
  const chromatic = o.chromatic ?? false;
  checkReduction(metric, o.reduction);
  const given = o.scaleWeights;
  if (
    given !== undefined &&
    (!Array.isArray(given) || given.length === 0 || !given.every((w) => Number.isFinite(w) && w >= 0))
  ) {
    throw new MetricInputError('E_SHAPE', `${metric}: scaleWeights must be a non-empty array of non-negative numbers`);
  }
  const numScales = given?.length ?? MS_GMSD_WEIGHTS.length;
  const dr = checkImagePair(metric, x, y, o.dataRange, {
    channels: chromatic ? [3] : [1, 3],
    minSize: 2 ** numScales + 1,
  });
  const alpha = o.alpha ?? 0.5;
  return scope(() => {
    let a = x.div(dr).mul(255);
    let b = y.div(dr).mul(255);
    let weights = tensor(Float64Array.from(given ?? MS_GMSD_WEIGHTS), [numScales], {
      dtype: a.dtype,
      device: a.device,
    });
    if (given !== undefined) weights = weights.div(weights.sum());
    if (a.shape[1] === 3) {
      a = rgb2yiq(a);
      b = rgb2yiq(b);
    }
    const scores: Tensor[] = [];
    for (let s = 0; s < numScales; s++) {
      if (s > 0) {
        const down = Math.max(a.shape[2]! % 2, a.shape[3]! % 2);
        a = F.avgPool2d(F.pad(a, [0, down, 0, down]), 2, { padding: 0 });
        b = F.avgPool2d(F.pad(b, [0, down, 0, down]), 2, { padding: 0 });
      }
      scores.push(gmsdCore(a.narrow(1, 0, 1), b.narrow(1, 0, 1), o.t ?? 170, alpha));
    }
    const msGmsd = weights.view(1, numScales).mul(stack(scores, 1).pow(2)).sum(1).sqrt();
    let score = msGmsd;
    if (chromatic) {
      const rmseIq = a
        .narrow(1, 1, 2)
        .sub(b.narrow(1, 1, 2))
        .pow(2)
        .mean([2, 3])
        .sqrt();
      const rmseChrome = rmseIq.pow(2).sum(1).sqrt();
      const gamma = msGmsd
        .mul(-(o.beta3 ?? 15))
        .exp()
        .mul(o.beta2 ?? 0.32)
        .add(1)
        .reciprocal()
        .mul(2)
        .sub(1);
      score = gamma.mul(msGmsd).add(
        gamma
          .rsub(1)
          .mul(o.beta1 ?? 0.01)
          .mul(rmseChrome),
      );
    }
    return reduce(metric, score, o.reduction);
  });
}
