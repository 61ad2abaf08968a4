/**
 * DDIMScheduler (Song et al. 2021, "Denoising Diffusion Implicit Models", eq. 12 and 16), as
 * diffusers 0.14: timesteps (arange(N)·⌊T/N⌋)[::-1] + steps_offset; the last step uses
 * ᾱ_prev = 1 (set_alpha_to_one) or ᾱ_0 (SD's configs); η scales the stochastic term.
 */
import { ArgumentError, describe } from '../errors.js';
import { scope, type Tensor } from '../torch/index.js';
import { OffsetAlphaScheduler, readConfig, stepNoise, type AlphaPredictionType } from './base.js';
import { BETA_DEFAULTS, type RawConfig } from './config.js';
import { f32, sqrt32 } from './numerics.js';
import type { StepOptions, StepOutput } from './types.js';

/** DDIMScheduler.__init__ defaults (diffusers 0.14). */
export const DDIM_DEFAULTS: RawConfig = Object.freeze({
  ...BETA_DEFAULTS,
  clip_sample: true,
  set_alpha_to_one: true,
  steps_offset: 0,
  prediction_type: 'epsilon',
});

/** The step() options this scheduler takes. */
const DDIM_STEP_OPTIONS: readonly (keyof StepOptions)[] = ['eta', 'generator', 'noise', 'useClippedModelOutput'];

export class DDIMScheduler extends OffsetAlphaScheduler {
  readonly className = 'DDIMScheduler' as const;
  readonly clipSample: boolean;
  readonly predictionType: AlphaPredictionType;

  constructor(config: RawConfig = {}) {
    const r = readConfig('DDIMScheduler', DDIM_DEFAULTS, config);
    super(r);
    this.clipSample = r.bool('clip_sample');
    this.predictionType = r.oneOf('prediction_type', ['epsilon', 'sample', 'v_prediction']);
  }

  protected computeTimesteps(n: number): number[] {
    return this.offsetTimesteps(n).reverse();
  }

  step(modelOutput: Tensor, timestep: number | Tensor, sample: Tensor, options: StepOptions = {}): StepOutput {
    const t = this.checkStep(modelOutput, timestep, sample, options, DDIM_STEP_OPTIONS);
    const eta = options.eta ?? 0;
    if (typeof eta !== 'number' || !Number.isFinite(eta) || eta < 0)
      throw new ArgumentError(`DDIMScheduler.step(): expected eta to be a number ≥ 0 but received ${describe(eta)}`);
    const prevT = t - this.stepRatio();
    const at = this.alphaAt(t);
    const ap = this.alphaPrev(prevT);
    const bt = f32(1 - at);
    const sa = sqrt32(at);
    const sb = sqrt32(bt);
    return scope(() => {
      let x0 = this.predictX0(modelOutput, sample, sa, sb, this.predictionType);
      let eps = this.predictionType === 'v_prediction' ? modelOutput.mul(sa).add(sample.mul(sb)) : modelOutput;
      if (this.clipSample) x0 = x0.clamp(-1, 1);
      // σ_t(η) of DDIM eq. 16: η·√((1−ᾱ_prev)/(1−ᾱ_t) · (1 − ᾱ_t/ᾱ_prev)).
      const variance = f32(f32(f32(1 - ap) / bt) * f32(1 - f32(at / ap)));
      const std = f32(f32(eta) * sqrt32(variance));
      if (options.useClippedModelOutput) eps = sample.sub(x0.mul(sa)).div(sb);
      const direction = eps.mul(sqrt32(f32(f32(1 - ap) - f32(std * std))));
      let prev = x0.mul(sqrt32(ap)).add(direction);
      if (eta > 0) prev = prev.add(stepNoise(modelOutput, options, this.className).mul(std));
      return { prevSample: prev, predOriginalSample: x0 };
    });
  }
}
