/**
 * DPMSolverMultistepScheduler (Lu et al. 2022, "DPM-Solver++: Fast Solver for Guided Sampling of
 * Diffusion Probabilistic Models", Algorithm 2; and DPM-Solver, NeurIPS 2022), as diffusers 0.14:
 * timesteps round(linspace(0, T−1, N+1))[::-1][:-1] (steps_offset ignored), α_t = √ᾱ_t,
 * σ_t = √(1−ᾱ_t), λ_t = log α_t − log σ_t in float32; the first step is first order, and with
 * lower_order_final and N < 15 so are the last (and, for order 3, the second-to-last is order 2).
 */
import { ArgumentError } from '../errors.js';
import { full, scope, type Tensor } from '../torch/index.js';
import { AlphaScheduler, hold, readConfig, type AlphaPredictionType } from './base.js';
import { BETA_DEFAULTS, type RawConfig } from './config.js';
import { exp32 as expf, f32, mapFloat32, npLinspace, npRound, sqrt32 } from './numerics.js';
import type { StepOptions, StepOutput } from './types.js';

/** DPMSolverMultistepScheduler.__init__ defaults (diffusers 0.14). */
export const DPM_SOLVER_MULTISTEP_DEFAULTS: RawConfig = Object.freeze({
  ...BETA_DEFAULTS,
  solver_order: 2,
  prediction_type: 'epsilon',
  thresholding: false,
  dynamic_thresholding_ratio: 0.995,
  sample_max_value: 1.0,
  algorithm_type: 'dpmsolver++',
  solver_type: 'midpoint',
  lower_order_final: true,
});

export class DPMSolverMultistepScheduler extends AlphaScheduler {
  readonly className = 'DPMSolverMultistepScheduler' as const;
  readonly solverOrder: 1 | 2 | 3;
  readonly predictionType: AlphaPredictionType;
  readonly thresholding: boolean;
  readonly dynamicThresholdingRatio: number;
  readonly sampleMaxValue: number;
  readonly algorithmType: 'dpmsolver' | 'dpmsolver++';
  readonly solverType: 'midpoint' | 'heun';
  readonly lowerOrderFinal: boolean;
  /** α_t = √ᾱ_t, σ_t = √(1 − ᾱ_t), λ_t = log α_t − log σ_t (float32, libtorch's log). */
  readonly alphaT: Float32Array;
  readonly sigmaT: Float32Array;
  readonly lambdaT: Float32Array;
  #modelOutputs: (Tensor | null)[] = [];
  #lowerOrderNums = 0;

  constructor(config: RawConfig = {}) {
    const r = readConfig('DPMSolverMultistepScheduler', DPM_SOLVER_MULTISTEP_DEFAULTS, config);
    super(r, r.betas());
    this.solverOrder = r.int('solver_order', 1, 3) as 1 | 2 | 3;
    this.predictionType = r.oneOf('prediction_type', ['epsilon', 'sample', 'v_prediction']);
    this.thresholding = r.bool('thresholding');
    this.dynamicThresholdingRatio = r.num('dynamic_thresholding_ratio', 0, 1);
    this.sampleMaxValue = r.num('sample_max_value', 0);
    // 0.14 maps 'deis' and the DEIS/UniPC solver types onto these in __init__, but step() reads
    // the unmapped config value and fails; here the mapping is honoured.
    const alg = r.oneOf('algorithm_type', ['dpmsolver', 'dpmsolver++', 'deis']);
    this.algorithmType = alg === 'deis' ? 'dpmsolver++' : alg;
    const st = r.oneOf('solver_type', ['midpoint', 'heun', 'logrho', 'bh1', 'bh2']);
    this.solverType = st === 'heun' ? 'heun' : 'midpoint';
    this.lowerOrderFinal = r.bool('lower_order_final');
    this.alphaT = Float32Array.from(this.alphasCumprod, (a) => sqrt32(a));
    this.sigmaT = Float32Array.from(this.alphasCumprod, (a) => sqrt32(f32(1 - a)));
    const logA = mapFloat32(this.alphaT, 'log');
    const logS = mapFloat32(this.sigmaT, 'log');
    this.lambdaT = logA.map((v, i) => f32(v - logS[i]!));
  }

  protected computeTimesteps(n: number): number[] {
    return npLinspace(0, this.numTrainTimesteps - 1, n + 1)
      .map(npRound)
      .reverse()
      .slice(0, -1);
  }

  protected override resetState(): void {
    for (const m of this.#modelOutputs) m?.dispose();
    this.#modelOutputs = Array<Tensor | null>(this.solverOrder).fill(null);
    this.#lowerOrderNums = 0;
  }

  step(modelOutput: Tensor, timestep: number | Tensor, sample: Tensor, options: StepOptions = {}): StepOutput {
    const t = this.checkStep(modelOutput, timestep, sample, options, []);
    const ts = this.timesteps;
    const i = ts.indexOf(t);
    if (i < 0)
      throw new ArgumentError(
        `DPMSolverMultistepScheduler.step(): timestep ${t} is not one of this scheduler's timesteps (pass values taken from .timesteps)`,
      );
    const last = ts.length - 1;
    const prevT = i === last ? 0 : ts[i + 1]!;
    const lowerFinal = i === last && this.lowerOrderFinal && ts.length < 15;
    const lowerSecond = i === last - 1 && this.lowerOrderFinal && ts.length < 15;
    return scope(() => {
      const converted = this.#convertModelOutput(modelOutput, t, sample);
      const outs = this.#modelOutputs;
      outs[0]?.dispose();
      for (let k = 0; k < this.solverOrder - 1; k++) outs[k] = outs[k + 1]!;
      outs[this.solverOrder - 1] = hold(converted);
      let prev: Tensor;
      if (this.solverOrder === 1 || this.#lowerOrderNums < 1 || lowerFinal) {
        prev = this.#firstOrder(converted, t, prevT, sample);
      } else if (this.solverOrder === 2 || this.#lowerOrderNums < 2 || lowerSecond) {
        prev = this.#secondOrder(outs, [ts[i - 1]!, t], prevT, sample);
      } else {
        prev = this.#thirdOrder(outs, [ts[i - 2]!, ts[i - 1]!, t], prevT, sample);
      }
      if (this.#lowerOrderNums < this.solverOrder) this.#lowerOrderNums++;
      return this.algorithmType === 'dpmsolver++'
        ? { prevSample: prev, predOriginalSample: converted }
        : { prevSample: prev };
    });
  }

  /** The solver's variable: x̂0 for DPM-Solver++ (optionally dynamically thresholded), ε for DPM-Solver. */
  #convertModelOutput(modelOutput: Tensor, t: number, sample: Tensor): Tensor {
    this.alphaAt(t);
    const a = this.alphaT[t]!;
    const s = this.sigmaT[t]!;
    if (this.algorithmType === 'dpmsolver++') {
      let x0 = this.predictX0(modelOutput, sample, a, s, this.predictionType);
      if (this.thresholding) x0 = this.#threshold(x0);
      return x0;
    }
    if (this.predictionType === 'epsilon') return modelOutput.alias();
    if (this.predictionType === 'sample') return sample.sub(modelOutput.mul(a)).div(s);
    return modelOutput.mul(a).add(sample.mul(s));
  }

  /** Dynamic thresholding (Saharia et al. 2022, Imagen §2.3), as 0.14 applies it. */
  #threshold(x0: Tensor): Tensor {
    const orig = x0.dtype;
    const x = orig === 'float32' || orig === 'float64' ? x0 : x0.to('float32');
    const b = x.shape[0]!;
    const q = x.abs().reshape([b, -1]).quantile(this.dynamicThresholdingRatio, 1);
    const s = q
      .maximum(full(q.shape, this.sampleMaxValue, { dtype: q.dtype, device: q.device }))
      .reshape([b, ...Array<number>(x.ndim - 1).fill(1)]);
    return x.clamp(s.neg(), s).div(s).to(orig);
  }

  #firstOrder(m: Tensor, s: number, t: number, sample: Tensor): Tensor {
    const h = f32(this.lambdaT[t]! - this.lambdaT[s]!);
    if (this.algorithmType === 'dpmsolver++') {
      return sample.mul(f32(this.sigmaT[t]! / this.sigmaT[s]!)).sub(m.mul(f32(this.alphaT[t]! * f32(expf(-h) - 1))));
    }
    return sample.mul(f32(this.alphaT[t]! / this.alphaT[s]!)).sub(m.mul(f32(this.sigmaT[t]! * f32(expf(h) - 1))));
  }

  #secondOrder(outs: (Tensor | null)[], [s1, s0]: number[], t: number, sample: Tensor): Tensor {
    const m0 = outs[outs.length - 1]!;
    const m1 = outs[outs.length - 2]!;
    const L = this.lambdaT;
    const h = f32(L[t]! - L[s0!]!);
    const h0 = f32(L[s0!]! - L[s1!]!);
    const r0 = f32(h0 / h);
    const d1 = m0.sub(m1).mul(f32(1 / r0));
    const at = this.alphaT[t]!;
    const st = this.sigmaT[t]!;
    if (this.algorithmType === 'dpmsolver++') {
      const c = f32(at * f32(expf(-h) - 1));
      const x = sample.mul(f32(st / this.sigmaT[s0!]!)).sub(m0.mul(c));
      return this.solverType === 'midpoint'
        ? x.sub(d1.mul(f32(0.5 * c)))
        : x.add(d1.mul(f32(at * f32(f32(f32(expf(-h) - 1) / h) + 1))));
    }
    const c = f32(st * f32(expf(h) - 1));
    const x = sample.mul(f32(at / this.alphaT[s0!]!)).sub(m0.mul(c));
    return this.solverType === 'midpoint'
      ? x.sub(d1.mul(f32(0.5 * c)))
      : x.sub(d1.mul(f32(st * f32(f32(f32(expf(h) - 1) / h) - 1))));
  }

  #thirdOrder(outs: (Tensor | null)[], [s2, s1, s0]: number[], t: number, sample: Tensor): Tensor {
    const m0 = outs[outs.length - 1]!;
    const m1 = outs[outs.length - 2]!;
    const m2 = outs[outs.length - 3]!;
    const L = this.lambdaT;
    const h = f32(L[t]! - L[s0!]!);
    const h0 = f32(L[s0!]! - L[s1!]!);
    const h1 = f32(L[s1!]! - L[s2!]!);
    const r0 = f32(h0 / h);
    const r1 = f32(h1 / h);
    const d10 = m0.sub(m1).mul(f32(1 / r0));
    const d11 = m1.sub(m2).mul(f32(1 / r1));
    const diff = d10.sub(d11);
    const d1 = d10.add(diff.mul(f32(r0 / f32(r0 + r1))));
    const d2 = diff.mul(f32(1 / f32(r0 + r1)));
    const at = this.alphaT[t]!;
    const st = this.sigmaT[t]!;
    const h2 = f32(h * h);
    if (this.algorithmType === 'dpmsolver++') {
      const e = f32(expf(-h) - 1);
      return sample
        .mul(f32(st / this.sigmaT[s0!]!))
        .sub(m0.mul(f32(at * e)))
        .add(d1.mul(f32(at * f32(f32(e / h) + 1))))
        .sub(d2.mul(f32(at * f32(f32(f32(e + h) / h2) - 0.5))));
    }
    const e = f32(expf(h) - 1);
    return sample
      .mul(f32(at / this.alphaT[s0!]!))
      .sub(m0.mul(f32(st * e)))
      .sub(d1.mul(f32(st * f32(f32(e / h) - 1))))
      .sub(d2.mul(f32(st * f32(f32(f32(e - h) / h2) - 0.5))));
  }
}
