/**
 * Image-quality metrics. Full-reference metrics follow piq 0.8.0's conventions (docs/metrics.md);
 * every one takes (x = distorted, y = reference) batches (N, C, H, W) in [0, dataRange] and
 * returns a Tensor ([N] with reduction 'none', else a scalar). Feature metrics: FID and improved
 * precision/recall (fid.ts, precision-recall.ts); CLIP image–prompt similarity (clip-score.ts).
 */
import type { Tensor } from '../torch/index.js';
import { dss } from './dss.js';
import { fsim } from './fsim.js';
import type { MetricOptions } from './functional.js';
import { gmsd, multiScaleGmsd } from './gmsd.js';
import { haarpsi } from './haarpsi.js';
import { mdsi } from './mdsi.js';
import { multiScaleSsim } from './ms-ssim.js';
import { psnr } from './psnr.js';
import { srsim } from './srsim.js';
import { ssim } from './ssim.js';
import { vifP } from './vif.js';
import { vsi } from './vsi.js';

export { psnr, type PSNROptions } from './psnr.js';
export { ssim, ssimFull, type SSIMOptions } from './ssim.js';
export { multiScaleSsim, type MultiScaleSSIMOptions } from './ms-ssim.js';
export { vifP, type VIFOptions } from './vif.js';
export { fsim, type FSIMOptions } from './fsim.js';
export { srsim, type SRSIMOptions } from './srsim.js';
export { gmsd, multiScaleGmsd, type GMSDOptions, type MultiScaleGMSDOptions } from './gmsd.js';
export { vsi, type VSIOptions } from './vsi.js';
export { dss, type DSSOptions } from './dss.js';
export { haarpsi, type HaarPSIOptions } from './haarpsi.js';
export { mdsi, type MDSIOptions } from './mdsi.js';
export { MetricInputError, type MetricOptions, type Reduction } from './functional.js';
export {
  activationStatistics,
  fid,
  fidFromFeatures,
  frechetDistance,
  inceptionFeatures,
  type ActivationStatistics,
  type FrechetOptions,
} from './fid.js';
export { precisionRecall, type PrecisionRecallOptions } from './precision-recall.js';
export { CLIPScorer, cosineSimilarityMatrix } from './clip-score.js';

export type FullReferenceMetric = (x: Tensor, y: Tensor, options?: MetricOptions) => Tensor;

export interface MetricInfo {
  fn: FullReferenceMetric;
  /** Which way is better. */
  better: 'higher' | 'lower';
  /** The value for identical images. */
  ideal: number;
}

/** Every full-reference metric under piq's function name (the names case.json and reports use). */
export const FULL_REFERENCE_METRICS: Readonly<Record<string, MetricInfo>> = {
  psnr: { fn: (x, y, o = {}) => psnr(x, y, o), better: 'higher', ideal: 80 },
  ssim: { fn: (x, y, o = {}) => ssim(x, y, o), better: 'higher', ideal: 1 },
  multi_scale_ssim: { fn: multiScaleSsim, better: 'higher', ideal: 1 },
  vif_p: { fn: vifP, better: 'higher', ideal: 1 },
  fsim: { fn: fsim, better: 'higher', ideal: 1 },
  srsim: { fn: srsim, better: 'higher', ideal: 1 },
  gmsd: { fn: gmsd, better: 'lower', ideal: 0 },
  multi_scale_gmsd: { fn: multiScaleGmsd, better: 'lower', ideal: 0 },
  vsi: { fn: vsi, better: 'higher', ideal: 1 },
  dss: { fn: dss, better: 'higher', ideal: 1 },
  haarpsi: { fn: haarpsi, better: 'higher', ideal: 1 },
  mdsi: { fn: mdsi, better: 'lower', ideal: 0 },
};
