/**
 * DDPMScheduler (Ho et al. 2020, "Denoising Diffusion Probabilistic Models"; posterior mean of
 * eq. 7 with strided timesteps), as diffusers 0.14: timesteps (arange(N)·⌊T/N⌋)[::-1] — 0.14
 * ignores steps_offset here —, noise drawn only for t > 0.
 */
import { ArgumentError } from '../errors.js';
import { scope, type Tensor } from '../torch/index.js';
import { AlphaScheduler, readConfig, stepNoise, type AlphaPredictionType } from './base.js';
import { BETA_DEFAULTS, type RawConfig } from './config.js';
import { exp32, f32, log32, sqrt32 } from './numerics.js';
import type { StepOptions, StepOutput } from './types.js';

/** DDPMScheduler.__init__ defaults (diffusers 0.14). */
export const DDPM_DEFAULTS: RawConfig = Object.freeze({
  ...BETA_DEFAULTS,
  variance_type: 'fixed_small',
  clip_sample: true,
  prediction_type: 'epsilon',
  clip_sample_range: 1.0,
});

/** 'learned' and 'learned_range' need a model that predicts its variance (2× channels), which SD's UNet does not. */
export type DDPMVarianceType = 'fixed_small' | 'fixed_small_log' | 'fixed_large';

export class DDPMScheduler extends AlphaScheduler {
  readonly className = 'DDPMScheduler' as const;
  readonly varianceType: DDPMVarianceType;
  readonly clipSample: boolean;
  readonly clipSampleRange: number;
  readonly predictionType: AlphaPredictionType;

  constructor(config: RawConfig = {}) {
    const r = readConfig('DDPMScheduler', DDPM_DEFAULTS, config);
    super(r, r.betas(['linear', 'scaled_linear', 'squaredcos_cap_v2', 'sigmoid']));
    this.varianceType = r.oneOf('variance_type', ['fixed_small', 'fixed_small_log', 'fixed_large']);
    this.clipSample = r.bool('clip_sample');
    this.clipSampleRange = r.num('clip_sample_range', 0);
    this.predictionType = r.oneOf('prediction_type', ['epsilon', 'sample', 'v_prediction']);
  }

  protected computeTimesteps(n: number): number[] {
    const ratio = this.stepRatio(n);
    return Array.from({ length: n }, (_, i) => (n - 1 - i) * ratio);
  }

  step(modelOutput: Tensor, timestep: number | Tensor, sample: Tensor, options: StepOptions = {}): StepOutput {
    const t = this.checkStep(modelOutput, timestep, sample, options, ['generator', 'noise']);
    if (!Number.isInteger(t))
      throw new ArgumentError(`DDPMScheduler.step(): expected an integer timestep but received ${t}`);
    const prevT = t - this.stepRatio();
    const at = this.alphaAt(t);
    const ap = prevT >= 0 ? this.alphaAt(prevT) : 1;
    const bt = f32(1 - at);
    const bp = f32(1 - ap);
    const curAlpha = f32(at / ap);
    const curBeta = f32(1 - curAlpha);
    return scope(() => {
      let x0 = this.predictX0(modelOutput, sample, sqrt32(at), sqrt32(bt), this.predictionType);
      if (this.clipSample) x0 = x0.clamp(-this.clipSampleRange, this.clipSampleRange);
      // Posterior mean μ̃_t (DDPM eq. 7).
      const x0Coeff = f32(f32(sqrt32(ap) * curBeta) / bt);
      const xtCoeff = f32(f32(sqrt32(curAlpha) * bp) / bt);
      let prev = x0.mul(x0Coeff).add(sample.mul(xtCoeff));
      if (t > 0) prev = prev.add(stepNoise(modelOutput, options, this.className).mul(this.#std(at, ap)));
      return { prevSample: prev, predOriginalSample: x0 };
    });
  }

  /** The standard deviation of the added noise for each variance_type (β̃_t, or β_t for fixed_large). */
  #std(at: number, ap: number): number {
    const curBeta = f32(1 - f32(at / ap));
    const posterior = f32(f32(f32(1 - ap) / f32(1 - at)) * curBeta); // β̃_t
    switch (this.varianceType) {
      case 'fixed_small':
        return sqrt32(Math.max(posterior, f32(1e-20)));
      case 'fixed_small_log':
        return exp32(f32(0.5 * log32(Math.max(posterior, f32(1e-20)))));
      case 'fixed_large':
        return sqrt32(curBeta);
    }
  }
}
