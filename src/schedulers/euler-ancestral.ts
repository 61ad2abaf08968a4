/**
 * EulerAncestralDiscreteScheduler, as diffusers 0.14 (k-diffusion's sample_euler_ancestral,
 * η = 1): an Euler step to σ_down, then fresh noise of σ_up, with
 * σ_up = √(σ_to² (σ_from² − σ_to²) / σ_from²) and σ_down = √(σ_to² − σ_up²). One draw per step.
 */
import { scope, type Tensor } from '../torch/index.js';
import { readConfig, SigmaScheduler, stepNoise } from './base.js';
import { BETA_DEFAULTS, type RawConfig } from './config.js';
import { f32, sqrt32 } from './numerics.js';
import type { StepOptions, StepOutput } from './types.js';

/** EulerAncestralDiscreteScheduler.__init__ defaults (diffusers 0.14). */
export const EULER_ANCESTRAL_DEFAULTS: RawConfig = Object.freeze({
  ...BETA_DEFAULTS,
  prediction_type: 'epsilon',
});

export class EulerAncestralDiscreteScheduler extends SigmaScheduler {
  readonly className = 'EulerAncestralDiscreteScheduler' as const;
  /** 0.14 raises NotImplementedError for 'sample'. */
  readonly predictionType: 'epsilon' | 'v_prediction';

  constructor(config: RawConfig = {}) {
    const r = readConfig('EulerAncestralDiscreteScheduler', EULER_ANCESTRAL_DEFAULTS, config);
    super(r, r.betas());
    this.predictionType = r.oneOf('prediction_type', ['epsilon', 'v_prediction']);
  }

  step(modelOutput: Tensor, timestep: number | Tensor, sample: Tensor, options: StepOptions = {}): StepOutput {
    const t = this.checkStep(modelOutput, timestep, sample, options, ['generator', 'noise']);
    const i = this.stepIndex(t, 'step()');
    const sigma = this.sigmas[i]!;
    const sigmaTo = this.sigmas[i + 1]!;
    const from2 = f32(sigma * sigma);
    const to2 = f32(sigmaTo * sigmaTo);
    const sigmaUp = sqrt32(f32(f32(to2 * f32(from2 - to2)) / from2));
    const sigmaDown = sqrt32(f32(to2 - f32(sigmaUp * sigmaUp)));
    return scope(() => {
      const x0 = this.predictX0(modelOutput, sample, sigma, this.predictionType);
      const derivative = sample.sub(x0).div(sigma);
      const prev = sample.add(derivative.mul(f32(sigmaDown - sigma)));
      const noise = stepNoise(modelOutput, options, this.className);
      return { prevSample: prev.add(noise.mul(sigmaUp)), predOriginalSample: x0 };
    });
  }
}
