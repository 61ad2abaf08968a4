/**
 * Visual information fidelity in the pixel domain (VIFp; Sheikh & Bovik 2006, DOI
 * 10.1109/TIP.2005.859378; the authors' MATLAB vifvec pixel-domain version) as piq 0.8.0 `vif_p`:
 * images scaled to [0, 255], RGB reduced to Y = 0.299 R + 0.587 G + 0.114 B, four scales with
 * Gaussian windows of 17, 9, 5, 3 px (σ = size / 5), valid convolutions, σ²_n = 2. Not symmetric:
 * x is the distorted image, y the reference. Usually in [0, 1]; 1 for identical images.
 * Greyscale or RGB; at least 41×41. Differentiable.
 */
import { F, scope, where, type Tensor } from '../torch/index.js';
import { checkImagePair, checkReduction, gaussianFilter, reduce, type MetricOptions } from './functional.js';

export interface VIFOptions extends MetricOptions {
  /** Variance of the visual noise in the HVS model. Default 2.0. */
  sigmaNSq?: number;
}

export function vifP(x: Tensor, y: Tensor, o: VIFOptions = {}): Tensor {
  checkReduction('vif_p', o.reduction);
  const dr = checkImagePair('vif_p', x, y, o.dataRange, { channels: [1, 3], minSize: 41 });
  const sigmaNSq = o.sigmaNSq ?? 2.0;
  const EPS = 1e-8;
  return scope(() => {
    let a = x.div(dr).mul(255);
    let b = y.div(dr).mul(255);
    if (a.shape[1] === 3) {
      const lum = (t: Tensor) =>
        t.select(1, 0).mul(0.299).add(t.select(1, 1).mul(0.587)).add(t.select(1, 2).mul(0.114)).unsqueeze(1);
      a = lum(a);
      b = lum(b);
    }
    let xVif: Tensor | null = null;
    let yVif: Tensor | null = null;
    for (let scale = 0; scale < 4; scale++) {
      const k = 2 ** (4 - scale) + 1;
      const kernel = gaussianFilter(k, k / 5, a.dtype, a.device).view(1, 1, k, k);
      const conv = (t: Tensor) => F.conv2d(t, kernel);
      if (scale > 0) {
        a = conv(a).slice(2, null, null, 2).slice(3, null, null, 2);
        b = conv(b).slice(2, null, null, 2).slice(3, null, null, 2);
      }
      const muX = conv(a);
      const muY = conv(b);
      const muXSq = muX.mul(muX);
      const muYSq = muY.mul(muY);
      const muXY = muX.mul(muY);
      let sigmaXSq = conv(a.pow(2)).sub(muXSq);
      let sigmaYSq = conv(b.pow(2)).sub(muYSq);
      const sigmaXY = conv(a.mul(b)).sub(muXY);
      // Zero small negative values.
      sigmaXSq = sigmaXSq.relu();
      sigmaYSq = sigmaYSq.relu();
      let g = sigmaXY.div(sigmaYSq.add(EPS));
      let sigmaVSq = sigmaXSq.sub(g.mul(sigmaXY));
      const yOk = sigmaYSq.ge(EPS);
      g = where(yOk, g, 0);
      sigmaVSq = where(yOk, sigmaVSq, sigmaXSq);
      sigmaYSq = where(yOk, sigmaYSq, 0);
      const xOk = sigmaXSq.ge(EPS);
      g = where(xOk, g, 0);
      sigmaVSq = where(xOk, sigmaVSq, 0);
      sigmaVSq = where(g.ge(0), sigmaVSq, sigmaXSq);
      g = g.relu();
      sigmaVSq = where(sigmaVSq.gt(EPS), sigmaVSq, EPS);
      const xScale = g.pow(2.0).mul(sigmaYSq).div(sigmaVSq.add(sigmaNSq)).add(1.0).log10();
      const xs = xScale.sum([1, 2, 3]);
      const ys = sigmaYSq.div(sigmaNSq).add(1.0).log10().sum([1, 2, 3]);
      xVif = xVif === null ? xs : xVif.add(xs);
      yVif = yVif === null ? ys : yVif.add(ys);
    }
    return reduce('vif_p', xVif!.add(EPS).div(yVif!.add(EPS)), o.reduction);
  });
}
