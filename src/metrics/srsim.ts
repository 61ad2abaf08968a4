/**
 * Spectral-residual based similarity (SR-SIM; Zhang & Li 2012, DOI 10.1109/ICIP.2012.6467149) as
 * piq 0.8.0 `srsim`: images scaled to [0, 255], zero-padded and average-pooled by
 * round(min(H, W) / 256), RGB converted to YIQ; spectral-residual saliency of Y computed at ¼ size
 * (MATLAB-style bicubic imresize), blurred by a 10-px Gaussian (σ 3.8) padded MATLAB's way to 11,
 * min–max normalised and resized back; Scharr gradient similarity. C1 = 0.40, C2 = 225, α = 0.50.
 * In [0, 1], 1 for identical images. Differentiable.
 *
 * piq normalises the saliency maps by the minimum and maximum over the WHOLE batch
 * (`torch.min(saliency_map[:])`), so an image's score depends slightly on the others in its batch.
 * That is the default here (piq-exact); `saliencyNorm: 'image'` normalises each image on its own,
 * which equals calling the metric one image at a time.
 */
import { F, cat, fft, scope, stack, where, zeros, type Tensor } from '../torch/index.js';
import {
  FLOAT32_EPS,
  checkImagePair,
  checkReduction,
  gaussianFilter,
  gradientMap,
  pyRound,
  reduce,
  rgb2yiq,
  scharrFilter,
  similarityMap,
  xyKernels,
  MetricInputError,
  type MetricOptions,
} from './functional.js';
import { imresize } from './imresize.js';

export interface SRSIMOptions extends MetricOptions {
  /** Include the I and Q chrominance terms. Default false (as piq). */
  chromatic?: boolean;
  /** Scale at which the saliency is computed. Default 0.25. */
  scale?: number;
  /** Size of the mean filter on the log amplitude spectrum. Default 3. */
  kernelSize?: number;
  /** σ of the Gaussian blur of the saliency map. Default 3.8. */
  sigma?: number;
  /** Size of that Gaussian. Default 10. */
  gaussianSize?: number;
  /** Min–max normalise the saliency over the batch (piq, default) or per image. */
  saliencyNorm?: 'batch' | 'image';
}

export function srsim(x: Tensor, y: Tensor, o: SRSIMOptions = {}): Tensor {
  const chromatic = o.chromatic ?? false;
  checkReduction('srsim', o.reduction);
  const dr = checkImagePair('srsim', x, y, o.dataRange, { channels: chromatic ? [3] : [1, 3] });
  const perImage = (o.saliencyNorm ?? 'batch') === 'image';
  if (o.saliencyNorm !== undefined && o.saliencyNorm !== 'batch' && o.saliencyNorm !== 'image') {
    throw new MetricInputError(
      'E_SHAPE',
      `srsim: saliencyNorm must be 'batch' or 'image' but is ${String(o.saliencyNorm)}`,
    );
  }
  return scope(() => {
    let a = x.div(dr).mul(255);
    let b = y.div(dr).mul(255);
    const ks = Math.max(1, pyRound(Math.min(a.shape[2]!, a.shape[3]!) / 256));
    const padding = Math.floor(ks / 2);
    if (padding) {
      const pads = [Math.floor((ks - 1) / 2), padding, Math.floor((ks - 1) / 2), padding];
      a = F.pad(a, pads);
      b = F.pad(b, pads);
    }
    a = F.avgPool2d(a, ks);
    b = F.avgPool2d(b, ks);
    let aLum = a;
    let bLum = b;
    let aYiq: Tensor | undefined;
    let bYiq: Tensor | undefined;
    if (a.shape[1] === 3) {
      aYiq = rgb2yiq(a);
      bYiq = rgb2yiq(b);
      aLum = aYiq.narrow(1, 0, 1);
      bLum = bYiq.narrow(1, 0, 1);
    }
    const sal = (t: Tensor) =>
      perImage
        ? cat(
            Array.from({ length: t.shape[0]! }, (_, i) => saliency(t.narrow(0, i, 1), o)),
            0,
          )
        : saliency(t, o);
    const svrsX = sal(aLum);
    const svrsY = sal(bLum);
    const kernels = xyKernels(scharrFilter(aLum.dtype, aLum.device));
    const gmX = gradientMap(aLum, kernels);
    const gmY = gradientMap(bLum, kernels);
    // Constants from the paper.
    const [C1, C2, alpha] = [0.4, 225, 0.5];
    const svrs = similarityMap(svrsX, svrsY, C1);
    const gm = similarityMap(gmX, gmY, C2);
    const svrsMax = where(svrsX.gt(svrsY), svrsX, svrsY);
    let score = svrs.mul(gm.pow(alpha)).mul(svrsMax);
    if (chromatic) {
      const [T3, T4, lambda] = [200, 200, 0.03];
      const sI = similarityMap(aYiq!.narrow(1, 1, 1), bYiq!.narrow(1, 1, 1), T3);
      const sQ = similarityMap(aYiq!.narrow(1, 2, 1), bYiq!.narrow(1, 2, 1), T4);
      score = score.mul(sI.mul(sQ).abs().pow(lambda));
    }
    return reduce('srsim', score.sum([1, 2, 3]).div(svrsMax.sum([1, 2, 3]).add(FLOAT32_EPS)), o.reduction);
  });
}

/** Spectral-residual visual saliency (Hou & Zhang 2007) of (N, 1, H, W), as piq _spectral_residual_visual_saliency. */
function saliency(x: Tensor, o: SRSIMOptions): Tensor {
  const scale = o.scale ?? 0.25;
  const kernelSize = o.kernelSize ?? 3;
  let gaussianSize = o.gaussianSize ?? 10;
  const eps = FLOAT32_EPS;
  for (const k of [kernelSize, gaussianSize]) {
    if (x.shape[3]! * scale < k || x.shape[2]! * scale < k) {
      throw new MetricInputError(
        'E_SHAPE',
        `srsim: images of ${x.shape[2]}×${x.shape[3]} at scale ${scale} are smaller than the ${k}-px kernel`,
      );
    }
  }
  return scope(() => {
    const inImg = imresize(x, { scale });
    const imagefft = fft.fft2(inImg);
    const logAmplitude = imagefft.abs().add(eps).log();
    const phase = imagefft.angle();
    const padding = Math.floor(kernelSize / 2);
    let sr = logAmplitude;
    if (padding) {
      const up = Math.floor((kernelSize - 1) / 2);
      sr = F.pad(logAmplitude, [up, padding, up, padding], 'replicate');
    }
    sr = logAmplitude.sub(F.avgPool2d(sr, kernelSize, { stride: 1 }));
    const compx = stack([sr.exp().mul(phase.cos()), sr.exp().mul(phase.sin())], -1);
    let sal = fft.ifft2(compx.viewAsComplex()).abs().pow(2);
    let kernel = gaussianFilter(gaussianSize, o.sigma ?? 3.8, sal.dtype, sal.device);
    if (gaussianSize % 2 === 0) {
      // MATLAB pads even kernels with zeros on the top and left.
      kernel = cat([zeros([1, 1, gaussianSize], { dtype: sal.dtype, device: sal.device }), kernel], 1);
      kernel = cat([zeros([1, gaussianSize + 1, 1], { dtype: sal.dtype, device: sal.device }), kernel], 2);
      gaussianSize += 1;
    }
    kernel = kernel.view(1, 1, gaussianSize, gaussianSize);
    sal = F.conv2d(sal, kernel, null, { padding: Math.floor((gaussianSize - 1) / 2) });
    const minSal = sal.min();
    const maxSal = sal.max();
    sal = sal.sub(minSal).div(maxSal.sub(minSal).add(eps));
    return imresize(sal, { sizes: [x.shape[2]!, x.shape[3]!] });
  });
}
