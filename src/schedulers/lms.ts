/**
 * LMSDiscreteScheduler (linear multistep in σ, k-diffusion's sample_lms), as diffusers 0.14:
 * x_{i+1} = x_i + Σ_k c_k · d_{i−k}, with c_k = ∫_{σ_i}^{σ_{i+1}} ℓ_k(τ) dτ the integral of the
 * Lagrange basis polynomial through the last `order` sigmas. diffusers integrates with
 * scipy.integrate.quad; the integrand is a polynomial of degree < 4, so a 4-point Gauss–Legendre
 * rule is exact and deterministic (the golden case allows 1e-4 for quad's float32 integrand).
 */
import { ArgumentError, describe } from '../errors.js';
import { scope, type Tensor } from '../torch/index.js';
import { hold, readConfig, SigmaScheduler } from './base.js';
import { BETA_DEFAULTS, type RawConfig } from './config.js';
import type { SigmaPredictionType } from './euler.js';
import { f32, integratePolynomial } from './numerics.js';
import type { StepOptions, StepOutput } from './types.js';

/** LMSDiscreteScheduler.__init__ defaults (diffusers 0.14). */
export const LMS_DEFAULTS: RawConfig = Object.freeze({
  ...BETA_DEFAULTS,
  prediction_type: 'epsilon',
});

export class LMSDiscreteScheduler extends SigmaScheduler {
  readonly className = 'LMSDiscreteScheduler' as const;
  readonly predictionType: SigmaPredictionType;
  #derivatives: Tensor[] = [];

  constructor(config: RawConfig = {}) {
    const r = readConfig('LMSDiscreteScheduler', LMS_DEFAULTS, config);
    super(r, r.betas());
    this.predictionType = r.oneOf('prediction_type', ['epsilon', 'v_prediction', 'sample']);
  }

  protected override resetState(): void {
    for (const d of this.#derivatives) d.dispose();
    this.#derivatives = [];
  }

  /** c = ∫_{σ_t}^{σ_{t+1}} ∏_{k≠j} (τ − σ_{t−k}) / (σ_{t−j} − σ_{t−k}) dτ (diffusers' get_lms_coefficient). */
  lmsCoefficient(order: number, t: number, currentOrder: number): number {
    const s = this.sigmas;
    const basis = (tau: number): number => {
      let prod = 1;
      for (let k = 0; k < order; k++) {
        if (k === currentOrder) continue;
        prod *= (tau - s[t - k]!) / (s[t - currentOrder]! - s[t - k]!);
      }
      return prod;
    };
    return integratePolynomial(basis, s[t]!, s[t + 1]!);
  }

  step(modelOutput: Tensor, timestep: number | Tensor, sample: Tensor, options: StepOptions = {}): StepOutput {
    const t = this.checkStep(modelOutput, timestep, sample, options, ['order']);
    const maxOrder = options.order ?? 4;
    if (!Number.isSafeInteger(maxOrder) || maxOrder < 1 || maxOrder > 4) {
      throw new ArgumentError(
        `LMSDiscreteScheduler.step(): expected order to be an integer in [1, 4] but received ${describe(maxOrder)}`,
      );
    }
    const i = this.stepIndex(t, 'step()');
    const sigma = this.sigmas[i]!;
    return scope(() => {
      const x0 = this.predictX0(modelOutput, sample, sigma, this.predictionType);
      const derivative = sample.sub(x0).div(sigma);
      this.#derivatives.push(hold(derivative));
      while (this.#derivatives.length > maxOrder) this.#derivatives.shift()!.dispose();
      const order = Math.min(i + 1, maxOrder);
      const recent = [...this.#derivatives].reverse();
      // Python's sum(): 0 + c0·d0 + c1·d1 + …, each coefficient a double cast to float32.
      let acc: Tensor | null = null;
      for (let k = 0; k < Math.min(order, recent.length); k++) {
        const term = recent[k]!.mul(f32(this.lmsCoefficient(order, i, k)));
        acc = acc === null ? term : acc.add(term);
      }
      return { prevSample: acc === null ? sample.alias() : sample.add(acc), predOriginalSample: x0 };
    });
  }
}
