/**
 * DDIMScheduler (Song et al. 2021, "Denoising Diffusion Implicit Models", eq. 12 and 16), as
 * diffusers 0.14: timesteps (arange(N)·⌊T/N⌋)[::-1] + steps_offset; the last step uses
 * ᾱ_prev = 1 (set_alpha_to_one) or ᾱ_0 (SD's configs); η scales the stochastic term.
 */
import { ArgumentError, describe } from '../errors.js';
import { scope, type Tensor } from '../torch/index.js';
import { AlphaScheduler, readConfig, stepNoise } from './base.js';
import type { RawConfig } from './config.js';
import { f32, sqrt32 } from './numerics.js';
import type { StepOptions, StepOutput } from './types.js';

/** DDIMScheduler.__init__ defaults (diffusers 0.14). */
export const DDIM_DEFAULTS: RawConfig = Object.freeze({
  num_train_timesteps: 1000, beta_start: 0.0001, beta_end: 0.02, beta_schedule: 'linear', trained_betas: null,
  clip_sample: true, set_alpha_to_one: true, steps_offset: 0, prediction_type: 'epsilon',
});

export type AlphaPredictionType = 'epsilon' | 'sample' | 'v_prediction';

export class DDIMScheduler extends AlphaScheduler {
  readonly className = 'DDIMScheduler' as const;
  readonly timestepsDtype = 'int64' as const;
  readonly clipSample: boolean;
  readonly setAlphaToOne: boolean;
  readonly stepsOffset: number;
  readonly predictionType: AlphaPredictionType;
  /** ᾱ used as "previous" at the last step. */
  readonly finalAlphaCumprod: number;

  constructor(config: RawConfig = {}) {
    const r = readConfig('DDIMScheduler', DDIM_DEFAULTS, config);
    const spec = r.betas();
    super(r, spec);
    this.clipSample = r.bool('clip_sample');
    this.setAlphaToOne = r.bool('set_alpha_to_one');
    this.stepsOffset = r.int('steps_offset', 0, spec.numTrainTimesteps - 1);
    this.predictionType = r.oneOf('prediction_type', ['epsilon', 'sample', 'v_prediction']);
    this.finalAlphaCumprod = this.setAlphaToOne ? 1 : this.alphasCumprod[0]!;
  }

  protected computeTimesteps(n: number): number[] {
    const ratio = Math.floor(this.numTrainTimesteps / n);
    return Array.from({ length: n }, (_, i) => (n - 1 - i) * ratio + this.stepsOffset);
  }

  step(modelOutput: Tensor, timestep: number | Tensor, sample: Tensor, options: StepOptions = {}): StepOutput {
    const t = this.checkStep(modelOutput, timestep, sample, options, ['eta', 'generator', 'noise', 'useClippedModelOutput']);
    const eta = options.eta ?? 0;
    if (typeof eta !== 'number' || !Number.isFinite(eta) || eta < 0) throw new ArgumentError(`DDIMScheduler.step(): expected eta to be a number ≥ 0 but received ${describe(eta)}`);
    const prevT = t - Math.floor(this.numTrainTimesteps / this.numInferenceSteps!);
    const at = this.alphaAt(t);
    const ap = prevT >= 0 ? this.alphaAt(prevT) : this.finalAlphaCumprod;
    const bt = f32(1 - at);
    const sa = sqrt32(at);
    const sb = sqrt32(bt);
    return scope(() => {
      let eps = modelOutput;
      let x0: Tensor;
      if (this.predictionType === 'epsilon') {
        x0 = sample.sub(modelOutput.mul(sb)).div(sa);
      } else if (this.predictionType === 'sample') {
        x0 = modelOutput.alias();
      } else {
        x0 = sample.mul(sa).sub(modelOutput.mul(sb));
        eps = modelOutput.mul(sa).add(sample.mul(sb));
      }
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
