/**
 * Haar wavelet-based perceptual similarity index (HaarPSI; Reisenhofer, Bosse, Kutyniok & Wiegand
 * 2018, DOI 10.1016/j.image.2017.11.001) as piq 0.8.0 `haarpsi`: images scaled to [0, 255], RGB
 * converted to YIQ, zero-padded to even size and 2×2 average-pooled (`subsample`), 3 scales of
 * Haar filters on Y, the I/Q chroma term for RGB; C = 30, α = 4.2 (the paper's values). In [0, 1],
 * 1 for identical images. Needs images of at least 2^(scales+1) px. Differentiable.
 */
import { F, cat, scope, stack, tensor, type Tensor } from '../torch/index.js';
import {
  FLOAT32_EPS,
  checkImagePair,
  checkReduction,
  haarFilter,
  reduce,
  rgb2yiq,
  similarityMap,
  type MetricOptions,
} from './functional.js';

export interface HaarPSIOptions extends MetricOptions {
  scales?: number;
  /** 2×2 average-pool first. Default true. */
  subsample?: boolean;
  c?: number;
  alpha?: number;
}

export function haarpsi(x: Tensor, y: Tensor, o: HaarPSIOptions = {}): Tensor {
  const scales = o.scales ?? 3;
  const c = o.c ?? 30.0;
  const alpha = o.alpha ?? 4.2;
  checkReduction('haarpsi', o.reduction);
  const dr = checkImagePair('haarpsi', x, y, o.dataRange, { channels: [1, 3], minSize: 2 ** (scales + 1) });
  return scope(() => {
    const a = x.div(dr).mul(255);
    const b = y.div(dr).mul(255);
    const rgb = a.shape[1] === 3;
    let aYiq = rgb ? rgb2yiq(a) : a;
    let bYiq = rgb ? rgb2yiq(b) : b;
    if (o.subsample ?? true) {
      const down = Math.max(a.shape[2]! % 2, a.shape[3]! % 2);
      aYiq = F.avgPool2d(F.pad(aYiq, [0, down, 0, down]), 2, { stride: 2, padding: 0 });
      bYiq = F.avgPool2d(F.pad(bYiq, [0, down, 0, down]), 2, { stride: 2, padding: 0 });
    }
    const coeffsX: Tensor[] = [];
    const coeffsY: Tensor[] = [];
    for (let s = 0; s < scales; s++) {
      const k = 2 ** (s + 1);
      const h = haarFilter(k, x.dtype, x.device);
      const kernels = stack([h, h.transpose(-1, -2)]);
      const pads = [k / 2 - 1, k / 2, k / 2 - 1, k / 2];
      coeffsX.push(F.conv2d(F.pad(aYiq.narrow(1, 0, 1), pads, 'constant'), kernels));
      coeffsY.push(F.conv2d(F.pad(bYiq.narrow(1, 0, 1), pads, 'constant'), kernels));
    }
    const cx = cat(coeffsX, 1);
    const cy = cat(coeffsY, 1);
    let weights = cx
      .narrow(1, 4, cx.shape[1]! - 4)
      .abs()
      .maximum(cy.narrow(1, 4, cy.shape[1]! - 4).abs());
    const simMap: Tensor[] = [];
    for (let orientation = 0; orientation < 2; orientation++) {
      const idx = tensor(BigInt64Array.of(BigInt(orientation), BigInt(orientation + 2)), [2], { device: x.device });
      const magX = cx.indexSelect(1, idx).abs();
      const magY = cy.indexSelect(1, idx).abs();
      simMap.push(similarityMap(magX, magY, c).sum(1, true).div(2));
    }
    if (rgb) {
      const px = F.pad(aYiq, [0, 1, 0, 1]);
      const py = F.pad(bYiq, [0, 1, 0, 1]);
      const iqX = F.avgPool2d(px.narrow(1, 1, 2), 2, { stride: 1, padding: 0 }).abs();
      const iqY = F.avgPool2d(py.narrow(1, 1, 2), 2, { stride: 1, padding: 0 }).abs();
      weights = cat([weights, weights.mean(1, true)], 1);
      simMap.push(similarityMap(iqX, iqY, c).sum(1, true).div(2));
    }
    const sim = cat(simMap, 1);
    const eps = FLOAT32_EPS;
    let score = sim
      .mul(alpha)
      .sigmoid()
      .mul(weights)
      .sum([1, 2, 3])
      .add(eps)
      .div(weights.sum([1, 2, 3]).add(eps));
    score = score.div(score.rsub(1)).log().div(alpha).pow(2);
    return reduce('haarpsi', score, o.reduction);
  });
}
