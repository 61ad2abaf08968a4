/**
 * Feature similarity index (FSIM / FSIMc; Zhang, Zhang, Mou & Zhang 2011, DOI
 * 10.1109/TIP.2011.2109730) as piq 0.8.0 `fsim`: images scaled to [0, 255], average-pooled by
 * round(min(H, W) / 256), RGB converted to YIQ; phase congruency of Y from log-Gabor filters
 * (4 scales × 4 orientations, Kovesi's noise compensation), Scharr gradient magnitude, and with
 * `chromatic` (default) the I and Q similarities. T1 = 0.85, T2 = 160, T3 = T4 = 200, λ = 0.03 as
 * in the paper. In [0, 1], 1 for identical images. Differentiable.
 */
import { F, fft, scope, stack, where, zeros, type Tensor } from '../torch/index.js';
import {
  FLOAT32_EPS,
  checkImagePair,
  checkReduction,
  getMeshgrid,
  gradientMap,
  ifftshift,
  pyRound,
  reduce,
  rgb2yiq,
  scharrFilter,
  similarityMap,
  xyKernels,
  type MetricOptions,
} from './functional.js';

export interface FSIMOptions extends MetricOptions {
  /** Include the chrominance (I, Q) terms: FSIMc. Default true; needs RGB. */
  chromatic?: boolean;
  scales?: number;
  orientations?: number;
  /** Wavelength of the smallest-scale filter, px. */
  minLength?: number;
  /** Scaling factor between successive filters. */
  mult?: number;
  /** Bandwidth of the log-Gabor filters (ratio σ/f₀). */
  sigmaF?: number;
  /** Ratio of angular interval between orientations to the angular Gaussian's σ. */
  deltaTheta?: number;
  /** Noise threshold in standard deviations above the mean noise energy. */
  k?: number;
}

export function fsim(x: Tensor, y: Tensor, o: FSIMOptions = {}): Tensor {
  const chromatic = o.chromatic ?? true;
  checkReduction('fsim', o.reduction);
  const dr = checkImagePair('fsim', x, y, o.dataRange, { channels: chromatic ? [3] : [1, 3] });
  const scales = o.scales ?? 4;
  const orientations = o.orientations ?? 4;
  return scope(() => {
    let a = x.div(dr).mul(255);
    let b = y.div(dr).mul(255);
    const ks = Math.max(1, pyRound(Math.min(a.shape[2]!, a.shape[3]!) / 256));
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
    const filters = constructFilters(
      aLum,
      scales,
      orientations,
      o.minLength ?? 6,
      o.mult ?? 2,
      o.sigmaF ?? 0.55,
      o.deltaTheta ?? 1.2,
    );
    const pcX = phaseCongruency(aLum, filters, scales, orientations, o.k ?? 2.0);
    const pcY = phaseCongruency(bLum, filters, scales, orientations, o.k ?? 2.0);
    const kernels = xyKernels(scharrFilter(aLum.dtype, aLum.device));
    const gmX = gradientMap(aLum, kernels);
    const gmY = gradientMap(bLum, kernels);
    // Constants from the paper.
    const [T1, T2, T3, T4, lambda] = [0.85, 160, 200, 200, 0.03];
    const pc = similarityMap(pcX, pcY, T1);
    const gm = similarityMap(gmX, gmY, T2);
    const pcMax = where(pcX.gt(pcY), pcX, pcY);
    let score = gm.mul(pc).mul(pcMax);
    if (chromatic) {
      const sI = similarityMap(aYiq!.narrow(1, 1, 1), bYiq!.narrow(1, 1, 1), T3);
      const sQ = similarityMap(aYiq!.narrow(1, 2, 1), bYiq!.narrow(1, 2, 1), T4);
      score = score.mul(sI.mul(sQ).abs().pow(lambda));
    }
    return reduce('fsim', score.sum([1, 2, 3]).div(pcMax.sum([1, 2, 3])), o.reduction);
  });
}

/** Log-Gabor filters in the frequency plane, (1, orientations·scales, H, W) (piq _construct_filters). */
function constructFilters(
  x: Tensor,
  scales: number,
  orientations: number,
  minLength: number,
  mult: number,
  sigmaF: number,
  deltaTheta: number,
): Tensor {
  const [h, w] = [x.shape[2]!, x.shape[3]!];
  return scope(() => {
    const thetaSigma = Math.PI / (orientations * deltaTheta);
    const [gx, gy] = getMeshgrid([h, w], x.dtype, x.device);
    let radius = gx.pow(2).add(gy.pow(2)).sqrt();
    let theta = gy.neg().atan2(gx);
    // Butterworth low-pass (Kovesi's lowpassfilter with cutoff 0.45, order 15) so that no filter
    // reaches the corners of the spectrum.
    const n = 15;
    const cutoff = 0.45;
    const lp = ifftshift(
      radius
        .div(cutoff)
        .pow(2 * n)
        .add(1.0)
        .reciprocal(),
    );
    radius = ifftshift(radius).contiguous();
    theta = ifftshift(theta);
    radius.select(0, 0).select(0, 0).fill_(1);
    const sinTheta = theta.sin();
    const cosTheta = theta.cos();
    const logGabor: Tensor[] = [];
    for (let s = 0; s < scales; s++) {
      const omega0 = 1.0 / (minLength * mult ** s);
      const gf = radius
        .div(omega0)
        .log()
        .pow(2)
        .neg()
        .div(2 * Math.log(sigmaF) ** 2)
        .exp()
        .mul(lp)
        .contiguous();
      gf.select(0, 0).select(0, 0).fill_(0);
      logGabor.push(gf);
    }
    const spread: Tensor[] = [];
    for (let o = 0; o < orientations; o++) {
      const angl = (o * Math.PI) / orientations;
      const ds = sinTheta.mul(Math.cos(angl)).sub(cosTheta.mul(Math.sin(angl)));
      const dc = cosTheta.mul(Math.cos(angl)).add(sinTheta.mul(Math.sin(angl)));
      const dtheta = ds.atan2(dc).abs();
      spread.push(
        dtheta
          .pow(2)
          .neg()
          .div(2 * thetaSigma ** 2)
          .exp(),
      );
    }
    return stack(spread)
      .repeatInterleave(scales, 0)
      .mul(stack(logGabor).repeat(orientations, 1, 1))
      .unsqueeze(0);
  });
}

/** Phase congruency map (N, 1, H, W) of a luminance batch (piq _phase_congruency, after Kovesi). */
function phaseCongruency(x: Tensor, filters: Tensor, scales: number, orientations: number, k: number): Tensor {
  const EPS = FLOAT32_EPS;
  const [n, , h, w] = x.shape as [number, number, number, number];
  return scope(() => {
    const imagefft = fft.fft2(x);
    const filtersIfft = fft
      .ifft2(filters)
      .real()
      .mul(Math.sqrt(h * w));
    const evenOdd = fft.ifft2(imagefft.mul(filters)).viewAsReal().view(n, orientations, scales, h, w, 2);
    // Amplitude of the even and odd responses.
    const an = evenOdd.pow(2).sum(-1).sqrt();
    // Mean squared filter value at the smallest scale, for the noise estimate.
    const emN = filters.view(1, orientations, scales, h, w).narrow(2, 0, 1).pow(2).sum([-2, -1], true);
    const even = evenOdd.select(-1, 0);
    const odd = evenOdd.select(-1, 1);
    const sumE = even.sum(2, true);
    const sumO = odd.sum(2, true);
    // Weighted mean filter response vector: the weighted mean phase angle.
    const xEnergy = sumE.pow(2).add(sumO.pow(2)).sqrt().add(EPS);
    const meanE = sumE.div(xEnergy);
    const meanO = sumO.div(xEnergy);
    // An·(cos(phase deviation) − |sin(phase deviation)|), summed over scales.
    let energy = even
      .mul(meanE)
      .add(odd.mul(meanO))
      .sub(even.mul(meanO).sub(odd.mul(meanE)).abs())
      .sum(2, true);
    // Noise: the median squared energy at the smallest scale estimates a Rayleigh distribution.
    const absEo = evenOdd
      .narrow(2, 0, 1)
      .pow(2)
      .sum(-1)
      .sqrt()
      .reshape(n, orientations, 1, 1, h * w);
    const [medianE2n] = absEo.pow(2).median(-1, true);
    const meanE2n = medianE2n.neg().div(Math.log(0.5));
    const noisePower = meanE2n.div(emN);
    const fi = filtersIfft.view(1, orientations, scales, h, w);
    let sumAn2 = fi.pow(2).sum(-3, true);
    let sumAiAj: Tensor = zeros([n, orientations, 1, h, w], { dtype: x.dtype, device: x.device });
    for (let s = 0; s < scales - 1; s++) {
      sumAiAj = sumAiAj.add(
        fi
          .narrow(2, s, 1)
          .mul(fi.narrow(2, s + 1, scales - s - 1))
          .sum(-3, true),
      );
    }
    sumAn2 = sumAn2.sum([-1, -2], true);
    sumAiAj = sumAiAj.sum([-1, -2], true);
    const noiseEnergy2 = noisePower.mul(2).mul(sumAn2).add(noisePower.mul(4).mul(sumAiAj));
    const tau = noiseEnergy2.div(2).sqrt();
    const noiseEnergy = tau.mul(Math.sqrt(Math.PI / 2));
    const noiseEnergySigma = tau
      .pow(2)
      .mul(2 - Math.PI / 2)
      .sqrt();
    // Kovesi's empirical factor 1.7 for the PC_2 measure.
    const T = noiseEnergy.add(noiseEnergySigma.mul(k)).div(1.7);
    energy = energy.sub(T).maximum(zeros(T.shape, { dtype: T.dtype, device: T.device }));
    const energyAll = energy.sum([1, 2]).add(EPS);
    const anAll = an.sum([1, 2]).add(EPS);
    return energyAll.div(anAll).unsqueeze(1);
  });
}
