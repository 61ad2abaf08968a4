/**
 * Mean deviation similarity index (MDSI; Nafchi, Shahkolaei, Hedjam & Cheriet 2016, DOI
 * 10.1109/ACCESS.2016.2604042) as piq 0.8.0 `mdsi`: images scaled to [0, 255], zero-padded and
 * average-pooled by round(min(H, W) / 256), RGB converted to LHM; Prewitt gradient similarity
 * with the fused (mean) image, chromaticity similarity, combined by 'sum' (α 0.6, default) or
 * 'mult'; deviation pooling with q = o = 0.25, ρ = 1. C1 = 140, C2 = 55, C3 = 550 as in the paper.
 * 0 for identical images; larger is worse. RGB only (greyscale is repeated to 3 channels, as piq
 * does). Differentiable.
 */
import { F, scope, stack, type Tensor } from '../torch/index.js';
import {
  checkImagePair,
  checkReduction,
  gradientMap,
  powForComplex,
  prewittFilter,
  pyRound,
  reduce,
  rgb2lhm,
  similarityMap,
  xyKernels,
  MetricInputError,
  type MetricOptions,
} from './functional.js';

export interface MDSIOptions extends MetricOptions {
  c1?: number;
  c2?: number;
  c3?: number;
  /** How gradient and chromaticity similarities combine. Default 'sum'. */
  combination?: 'sum' | 'mult';
  alpha?: number;
  beta?: number;
  gamma?: number;
  rho?: number;
  q?: number;
  o?: number;
}

export function mdsi(x: Tensor, y: Tensor, opt: MDSIOptions = {}): Tensor {
  const c1 = opt.c1 ?? 140;
  const c2 = opt.c2 ?? 55;
  const c3 = opt.c3 ?? 550;
  const combination = opt.combination ?? 'sum';
  const alpha = opt.alpha ?? 0.6;
  const beta = opt.beta ?? 0.1;
  const gamma = opt.gamma ?? 0.2;
  const rho = opt.rho ?? 1;
  const q = opt.q ?? 0.25;
  const o = opt.o ?? 0.25;
  if (combination !== 'sum' && combination !== 'mult')
    throw new MetricInputError('E_SHAPE', `mdsi: combination must be 'sum' or 'mult' but is ${String(combination)}`);
  checkReduction('mdsi', opt.reduction);
  const dr = checkImagePair('mdsi', x, y, opt.dataRange, { channels: [1, 3] });
  return scope(() => {
    let a = x;
    let b = y;
    if (a.shape[1] === 1) {
      // The original MDSI is defined for RGB only; piq repeats the grey channel.
      a = a.repeat(1, 3, 1, 1);
      b = b.repeat(1, 3, 1, 1);
    }
    a = a.div(dr).mul(255);
    b = b.div(dr).mul(255);
    const ks = Math.max(1, pyRound(Math.min(a.shape[2]!, a.shape[3]!) / 256));
    const padding = Math.floor(ks / 2);
    if (padding) {
      const pads = [Math.floor((ks - 1) / 2), padding, Math.floor((ks - 1) / 2), padding];
      a = F.pad(a, pads);
      b = F.pad(b, pads);
    }
    a = F.avgPool2d(a, ks);
    b = F.avgPool2d(b, ks);
    const lx = rgb2lhm(a);
    const ly = rgb2lhm(b);
    const kernels = xyKernels(prewittFilter(lx.dtype, lx.device));
    const lX = lx.narrow(1, 0, 1);
    const lY = ly.narrow(1, 0, 1);
    const gmX = gradientMap(lX, kernels);
    const gmY = gradientMap(lY, kernels);
    const gmAvg = gradientMap(lX.add(lY).div(2.0), kernels);
    const gsXY = similarityMap(gmX, gmY, c1);
    const gsXAvg = similarityMap(gmX, gmAvg, c2);
    const gsYAvg = similarityMap(gmY, gmAvg, c2);
    const gsTotal = gsXY.add(gsXAvg).sub(gsYAvg);
    const [hX, mX] = [lx.narrow(1, 1, 1), lx.narrow(1, 2, 1)];
    const [hY, mY] = [ly.narrow(1, 1, 1), ly.narrow(1, 2, 1)];
    const csTotal = hX
      .mul(hY)
      .add(mX.mul(mY))
      .mul(2)
      .add(c3)
      .div(hX.pow(2).add(hY.pow(2)).add(mX.pow(2)).add(mY.pow(2)).add(c3));
    let gcs: Tensor;
    if (combination === 'sum') {
      gcs = gsTotal.mul(alpha).add(csTotal.mul(1 - alpha));
    } else {
      const gp = powForComplex(gsTotal, gamma);
      const cp = powForComplex(csTotal, beta);
      gcs = stack([gp.select(-1, 0).mul(cp.select(-1, 0)), gp.select(-1, 1).add(cp.select(-1, 1))], -1);
    }
    const mct = powForComplex(gcs, q).mean(2, true).mean(3, true);
    let score = powForComplex(gcs, q).sub(mct).pow(2).sum(-1).sqrt();
    score = score
      .pow(rho)
      .mean([-1, -2])
      .pow(o / rho)
      .squeeze(1);
    return reduce('mdsi', score, opt.reduction);
  });
}
