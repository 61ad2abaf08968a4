/**
 * Visual saliency-induced index (VSI; Zhang, Shen & Li 2014, DOI 10.1109/TIP.2014.2346028) as
 * piq 0.8.0 `vsi`: images scaled to [0, 255]; SDSP saliency (Zhang, Gong, Zhang 2013: log-Gabor
 * frequency prior on CIE Lab at 256×256, location and colour priors) per image; LMN colour space;
 * saliency, LMN and Scharr gradient maps replicate-padded and average-pooled by
 * round(min(H, W) / 256). C1 = 1.27, C2 = 386, C3 = 130, α = 0.4, β = 0.02 as in the paper.
 * RGB only (greyscale is repeated to 3 channels, as piq does). In [0, 1], 1 for identical images.
 * Differentiable.
 */
import { F, fft, scope, stack, zerosLike, type Tensor } from '../torch/index.js';
import {
  FLOAT32_EPS,
  checkImagePair,
  checkReduction,
  getMeshgrid,
  gradientMap,
  ifftshift,
  pyRound,
  reduce,
  rgb2lab,
  rgb2lmn,
  scharrFilter,
  similarityMap,
  xyKernels,
  type MetricOptions,
} from './functional.js';

export interface VSIOptions extends MetricOptions {
  c1?: number;
  c2?: number;
  c3?: number;
  alpha?: number;
  beta?: number;
  /** SDSP: centre frequency of the log-Gabor filter. */
  omega0?: number;
  /** SDSP: its bandwidth. */
  sigmaF?: number;
  /** SDSP: σ of the location prior. */
  sigmaD?: number;
  /** SDSP: σ of the colour prior. */
  sigmaC?: number;
}

export function vsi(x: Tensor, y: Tensor, o: VSIOptions = {}): Tensor {
  checkReduction('vsi', o.reduction);
  const dr = checkImagePair('vsi', x, y, o.dataRange, { channels: [1, 3] });
  const c1 = o.c1 ?? 1.27;
  const c2 = o.c2 ?? 386;
  const c3 = o.c3 ?? 130;
  const alpha = o.alpha ?? 0.4;
  const beta = o.beta ?? 0.02;
  return scope(() => {
    let a = x;
    let b = y;
    if (a.shape[1] === 1) {
      // The original VSI is defined for RGB only; piq repeats the grey channel.
      a = a.repeat(1, 3, 1, 1);
      b = b.repeat(1, 3, 1, 1);
    }
    a = a.mul(255).div(dr);
    b = b.mul(255).div(dr);
    let vsX = sdsp(a, o);
    let vsY = sdsp(b, o);
    let lmnX = rgb2lmn(a);
    let lmnY = rgb2lmn(b);
    const ks = Math.max(1, pyRound(Math.min(vsX.shape[2]!, vsX.shape[3]!) / 256));
    const padding = Math.floor(ks / 2);
    if (padding) {
      // piq pads `padding` before and (k − 1) // 2 after.
      const pads = [padding, Math.floor((ks - 1) / 2), padding, Math.floor((ks - 1) / 2)];
      vsX = F.pad(vsX, pads, 'replicate');
      vsY = F.pad(vsY, pads, 'replicate');
      lmnX = F.pad(lmnX, pads, 'replicate');
      lmnY = F.pad(lmnY, pads, 'replicate');
    }
    vsX = F.avgPool2d(vsX, ks);
    vsY = F.avgPool2d(vsY, ks);
    lmnX = F.avgPool2d(lmnX, ks);
    lmnY = F.avgPool2d(lmnY, ks);
    const kernels = xyKernels(scharrFilter(lmnX.dtype, lmnX.device));
    const gmX = gradientMap(lmnX.narrow(1, 0, 1), kernels);
    const gmY = gradientMap(lmnY.narrow(1, 0, 1), kernels);
    const sVs = similarityMap(vsX, vsY, c1);
    const sGm = similarityMap(gmX, gmY, c2);
    const sM = similarityMap(lmnX.narrow(1, 1, 1), lmnY.narrow(1, 1, 1), c3);
    const sN = similarityMap(lmnX.narrow(1, 2, 1), lmnY.narrow(1, 2, 1), c3);
    const sC = sM.mul(sN);
    // (S_M·S_N)^β of a possibly negative number, real part (piq's complex power).
    const phase = zerosLike(sC).atan2(sC);
    const sCPow = sC.abs().pow(beta).mul(phase.mul(beta).cos());
    const s = sVs.mul(sGm.pow(alpha)).mul(sCPow);
    const vsMax = vsX.maximum(vsY);
    const eps = FLOAT32_EPS;
    const out = s
      .mul(vsMax)
      .sum([-1, -2])
      .add(eps)
      .div(vsMax.sum([-1, -2]).add(eps))
      .squeeze(-1);
    return reduce('vsi', out, o.reduction);
  });
}

/**
 * SDSP saliency (Zhang, Gong & Zhang 2013) of RGB images in [0, 255], computed at 256×256 and
 * resized back, min–max normalised per image (piq sdsp).
 */
export function sdsp(x: Tensor, o: VSIOptions = {}): Tensor {
  const omega0 = o.omega0 ?? 0.021;
  const sigmaF = o.sigmaF ?? 1.34;
  const sigmaD = o.sigmaD ?? 145;
  const sigmaC = o.sigmaC ?? 0.001;
  const size: [number, number] = [256, 256];
  return scope(() => {
    const [h, w] = [x.shape[2]!, x.shape[3]!];
    const xs = F.interpolate(x.div(255).mul(255), { size, mode: 'bilinear', alignCorners: false });
    const lab = rgb2lab(xs, 255);
    const [xx, yy] = getMeshgrid(size, lab.dtype, lab.device);
    const lg = logGabor(xx, yy, omega0, sigmaF).view(1, 1, ...size);
    const sF = fft.ifft2(fft.fft2(lab).mul(lg)).real().pow(2).sum(1, true).sqrt();
    const coords = stack([xx, yy], 0).mul(size[0]).add(1);
    const sD = coords
      .pow(2)
      .sum(0)
      .div(sigmaD ** 2)
      .neg()
      .exp()
      .view(1, 1, ...size);
    const eps = FLOAT32_EPS;
    const minX = lab.amin(-1, true).amin(-2, true);
    const maxX = lab.amax(-1, true).amax(-2, true);
    const normalized = lab.sub(minX).div(maxX.sub(minX).add(eps));
    const norm = normalized.narrow(1, 1, 2).pow(2).sum(1, true);
    const sC = norm
      .neg()
      .div(sigmaC ** 2)
      .exp()
      .rsub(1);
    let vsM = sF.mul(sD).mul(sC);
    vsM = F.interpolate(vsM, { size: [h, w], mode: 'bilinear', alignCorners: true });
    const minV = vsM.amin(-1, true).amin(-2, true);
    const maxV = vsM.amax(-1, true).amax(-2, true);
    return vsM.sub(minV).div(maxV.sub(minV).add(eps));
  });
}

/** Log-Gabor filter in the frequency plane, zero outside radius 0.5 (piq _log_gabor). */
function logGabor(xx: Tensor, yy: Tensor, omega0: number, sigmaF: number): Tensor {
  return scope(() => {
    const radius = xx.pow(2).add(yy.pow(2)).sqrt();
    const mask = radius.le(0.5);
    const r = ifftshift(radius.mul(mask)).contiguous();
    r.select(0, 0).select(0, 0).fill_(1);
    const lg = r
      .div(omega0)
      .log()
      .pow(2)
      .neg()
      .div(2 * sigmaF ** 2)
      .exp()
      .contiguous();
    lg.select(0, 0).select(0, 0).fill_(0);
    return lg;
  });
}
