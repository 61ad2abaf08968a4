/**
 * EulerDiscreteScheduler (Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based
 * Generative Models", Algorithm 2), as diffusers 0.14: sigma-based timesteps, the model input
 * divided by √(σ²+1), optional churn. 0.14 draws a noise tensor on every step even when s_churn
 * is 0 (it is then multiplied by nothing): the draw still advances the generator, so it is kept.
 */
import { ArgumentError, describe } from '../errors.js';
import { linspace, scope, type Tensor } from '../torch/index.js';
import { readConfig, SigmaScheduler, stepNoise } from './base.js';
import { BETA_DEFAULTS, type RawConfig } from './config.js';
import { f32, mapFloat32, sqrt32 } from './numerics.js';
import type { StepOptions, StepOutput } from './types.js';

/** EulerDiscreteScheduler.__init__ defaults (diffusers 0.14). */
export const EULER_DEFAULTS: RawConfig = Object.freeze({
  ...BETA_DEFAULTS,
  prediction_type: 'epsilon',
  interpolation_type: 'linear',
});

export type SigmaPredictionType = 'epsilon' | 'v_prediction' | 'sample';

/** The step() options this scheduler takes. */
const EULER_STEP_OPTIONS: readonly (keyof StepOptions)[] = ['generator', 'noise', 'sChurn', 'sTmin', 'sTmax', 'sNoise'];

export class EulerDiscreteScheduler extends SigmaScheduler {
  readonly className = 'EulerDiscreteScheduler' as const;
  readonly predictionType: SigmaPredictionType | 'original_sample';
  readonly interpolationType: 'linear' | 'log_linear';

  constructor(config: RawConfig = {}) {
    const r = readConfig('EulerDiscreteScheduler', EULER_DEFAULTS, config);
    super(r, r.betas());
    this.predictionType = r.oneOf('prediction_type', ['epsilon', 'v_prediction', 'sample', 'original_sample']);
    this.interpolationType = r.oneOf('interpolation_type', ['linear', 'log_linear']);
  }

  protected override computeSigmas(timesteps: number[]): Float32Array {
    if (this.interpolationType === 'linear') return super.computeSigmas(timesteps);
    // 0.14's log_linear: exp(torch.linspace(log σ_max, log σ_min, N + 1)) in float32, then a 0
    // (N + 2 values; the step never reaches the last non-zero one). Kept as 0.14 has it.
    const n = timesteps.length;
    const [logMax, logMin] = mapFloat32(
      Float32Array.of(this.trainSigmas[this.trainSigmas.length - 1]!, this.trainSigmas[0]!),
      'log',
    );
    const out = new Float32Array(n + 2);
    out.set(
      scope(
        () =>
          linspace(logMax!, logMin!, n + 1, { dtype: 'float32' })
            .exp()
            .toTypedArray() as Float32Array,
      ),
    );
    return out;
  }

  step(modelOutput: Tensor, timestep: number | Tensor, sample: Tensor, options: StepOptions = {}): StepOutput {
    const t = this.checkStep(modelOutput, timestep, sample, options, EULER_STEP_OPTIONS);
    const { sChurn = 0, sTmin = 0, sTmax = Infinity, sNoise = 1 } = options;
    for (const [k, v] of Object.entries({ sChurn, sTmin, sTmax, sNoise })) {
      if (typeof v !== 'number' || Number.isNaN(v))
        throw new ArgumentError(
          `EulerDiscreteScheduler.step(): expected ${k} to be a number but received ${describe(v)}`,
        );
    }
    const i = this.stepIndex(t, 'step()');
    const sigmas = this.sigmas;
    const sigma = sigmas[i]!;
    const gamma = sTmin <= sigma && sigma <= sTmax ? Math.min(sChurn / (sigmas.length - 1), 2 ** 0.5 - 1) : 0;
    return scope(() => {
      const eps = stepNoise(modelOutput, options, this.className).mul(f32(sNoise));
      const sigmaHat = f32(sigma * f32(gamma + 1));
      let x = sample;
      if (gamma > 0) x = x.add(eps.mul(sqrt32(f32(f32(sigmaHat * sigmaHat) - f32(sigma * sigma)))));
      // 0.14 uses σ̂ for ε-prediction and σ for v-prediction.
      const x0 =
        this.predictionType === 'epsilon'
          ? x.sub(modelOutput.mul(sigmaHat))
          : this.predictX0(modelOutput, x, sigma, this.predictionType);
      const derivative = x.sub(x0).div(sigmaHat);
      const dt = f32(sigmas[i + 1]! - sigmaHat);
      return { prevSample: x.add(derivative.mul(dt)), predOriginalSample: x0 };
    });
  }
}
