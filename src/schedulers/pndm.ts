/**
 * PNDMScheduler (Liu et al. 2022, "Pseudo Numerical Methods for Diffusion Models on Manifolds"),
 * as diffusers 0.14. Stable Diffusion's config sets skip_prk_steps: PLMS only (the linear
 * multistep part, eq. 12), started with a pseudo improved-Euler step: the first timestep appears
 * twice, and the second call redoes the first step with the mean of both model outputs. Without
 * skip_prk_steps, 12 pseudo Runge–Kutta calls (3 steps × 4 stages, eq. 13) come first.
 * step() keeps state: call it once per timestep entry, in order, after setTimesteps().
 */
import { ArgumentError } from '../errors.js';
import { scope, type Tensor } from '../torch/index.js';
import { OffsetAlphaScheduler, hold, readConfig } from './base.js';
import { BETA_DEFAULTS, type RawConfig } from './config.js';
import { f32, sqrt32 } from './numerics.js';
import type { StepOptions, StepOutput } from './types.js';

/** PNDMScheduler.__init__ defaults (diffusers 0.14). */
export const PNDM_DEFAULTS: RawConfig = Object.freeze({
  ...BETA_DEFAULTS,
  skip_prk_steps: false,
  set_alpha_to_one: false,
  prediction_type: 'epsilon',
  steps_offset: 0,
});

const PNDM_ORDER = 4;

export class PNDMScheduler extends OffsetAlphaScheduler {
  readonly className = 'PNDMScheduler' as const;
  readonly skipPrkSteps: boolean;
  readonly predictionType: 'epsilon' | 'v_prediction';
  /** The pseudo Runge–Kutta timesteps (empty with skip_prk_steps), then the PLMS ones. */
  prkTimesteps: number[] = [];
  plmsTimesteps: number[] = [];
  #ets: Tensor[] = [];
  #counter = 0;
  #curSample: Tensor | null = null;
  #curModelOutput: Tensor | null = null;

  constructor(config: RawConfig = {}) {
    const r = readConfig('PNDMScheduler', PNDM_DEFAULTS, config);
    super(r);
    this.skipPrkSteps = r.bool('skip_prk_steps');
    this.predictionType = r.oneOf('prediction_type', ['epsilon', 'v_prediction']);
  }

  /** How many step() calls have been made since setTimesteps(). */
  get counter(): number {
    return this.#counter;
  }

  protected computeTimesteps(n: number): number[] {
    const base = this.offsetTimesteps(n); // ascending
    if (this.skipPrkSteps) {
      // [t_0, …, t_{N-2}, t_{N-2}, t_{N-1}] reversed: the largest timestep twice.
      this.prkTimesteps = [];
      this.plmsTimesteps = [...base.slice(0, -1), ...base.slice(-2, -1), ...base.slice(-1)].reverse();
    } else {
      // The last 4 timesteps, each with its half step: t, t + ⌊ratio/2⌋; then diffusers'
      // prk[:-1].repeat(2)[1:-1] reversed (12 entries: each RK step evaluates t, t−h/2, t−h/2, t−h).
      const half = Math.floor(this.stepRatio(n) / 2);
      const last = base.slice(-PNDM_ORDER);
      const prk = last.flatMap((t) => [t, t + half]);
      const rep = prk
        .slice(0, -1)
        .flatMap((t) => [t, t])
        .slice(1, -1);
      this.prkTimesteps = rep.reverse();
      this.plmsTimesteps = base.slice(0, -3).reverse();
    }
    return [...this.prkTimesteps, ...this.plmsTimesteps];
  }

  protected override resetState(): void {
    for (const e of this.#ets) e.dispose();
    this.#ets = [];
    this.#counter = 0;
    this.#curSample?.dispose();
    this.#curSample = null;
    this.#curModelOutput?.dispose();
    this.#curModelOutput = null;
  }

  step(modelOutput: Tensor, timestep: number | Tensor, sample: Tensor, options: StepOptions = {}): StepOutput {
    const t = this.checkStep(modelOutput, timestep, sample, options, []);
    if (!Number.isInteger(t))
      throw new ArgumentError(`PNDMScheduler.step(): expected an integer timestep but received ${t}`);
    const prev =
      this.#counter < this.prkTimesteps.length && !this.skipPrkSteps
        ? this.#stepPrk(modelOutput, t, sample)
        : this.#stepPlms(modelOutput, t, sample);
    return { prevSample: prev };
  }

  #stepPrk(modelOutput: Tensor, t: number, sample: Tensor): Tensor {
    const diffToPrev = this.#counter % 2 ? 0 : Math.floor(this.stepRatio() / 2);
    const prevT = t - diffToPrev;
    const tBase = this.prkTimesteps[Math.floor(this.#counter / 4) * 4]!;
    const c = this.#counter % 4;
    const prev = scope(() => {
      let eps = modelOutput;
      // RK4 weights 1/6, 1/3, 1/3, 1/6 accumulated over the four stages (Python doubles → float32).
      if (c === 0) {
        this.#setCurModelOutput(modelOutput.mul(f32(1 / 6)));
        this.#ets.push(hold(modelOutput));
        this.#curSample?.dispose();
        this.#curSample = hold(sample);
      } else if (c === 1 || c === 2) {
        this.#setCurModelOutput(this.#curModelOutput!.add(modelOutput.mul(f32(1 / 3))));
      } else {
        eps = this.#curModelOutput!.add(modelOutput.mul(f32(1 / 6)));
        this.#setCurModelOutput(null);
      }
      return this.#prevSample(this.#curSample ?? sample, tBase, prevT, eps);
    });
    this.#counter++;
    return prev;
  }

  #setCurModelOutput(v: Tensor | null): void {
    this.#curModelOutput?.dispose();
    this.#curModelOutput = v === null ? null : hold(v);
  }

  #stepPlms(modelOutput: Tensor, t: number, sample: Tensor): Tensor {
    if (!this.skipPrkSteps && this.#ets.length < 3) {
      throw new ArgumentError(
        'PNDMScheduler: PLMS steps can only run after the 12 pseudo Runge–Kutta steps (run every entry of .timesteps in order)',
      );
    }
    const ratio = this.stepRatio();
    let prevT = t - ratio;
    let curT = t;
    if (this.#counter !== 1) {
      const drop = this.#ets.splice(0, Math.max(this.#ets.length - 3, 0));
      for (const e of drop) e.dispose();
      this.#ets.push(hold(modelOutput));
    } else {
      // The repeated first timestep: redo the step t+ratio → t.
      prevT = t;
      curT = t + ratio;
    }
    const ets = this.#ets;
    const n = ets.length;
    const e = (k: number): Tensor => ets[n - k]!;
    const prev = scope(() => {
      let x = sample;
      let eps: Tensor;
      if (n === 1 && this.#counter === 0) {
        eps = modelOutput;
        this.#curSample?.dispose();
        this.#curSample = hold(sample);
      } else if (n === 1 && this.#counter === 1) {
        eps = modelOutput.add(e(1)).div(2);
        x = this.#curSample!;
      } else if (n === 2) {
        eps = e(1).mul(3).sub(e(2)).div(2);
      } else if (n === 3) {
        eps = e(1).mul(23).sub(e(2).mul(16)).add(e(3).mul(5)).div(12);
      } else {
        // Adams–Bashforth 4 (PNDM eq. 12).
        eps = e(1)
          .mul(55)
          .sub(e(2).mul(59))
          .add(e(3).mul(37))
          .sub(e(4).mul(9))
          .mul(f32(1 / 24));
      }
      return this.#prevSample(x, curT, prevT, eps);
    });
    if (n === 1 && this.#counter === 1) {
      this.#curSample?.dispose();
      this.#curSample = null;
    }
    this.#counter++;
    return prev;
  }

  /** PNDM eq. 9, the transfer φ(x_t, ε_t, t, t−δ), in 0.14's float32 order. */
  #prevSample(sample: Tensor, t: number, prevT: number, modelOutput: Tensor): Tensor {
    const at = this.alphaAt(t);
    const ap = this.alphaPrev(prevT);
    const bt = f32(1 - at);
    const bp = f32(1 - ap);
    return scope(() => {
      let eps = modelOutput;
      if (this.predictionType === 'v_prediction') eps = modelOutput.mul(sqrt32(at)).add(sample.mul(sqrt32(bt)));
      const sampleCoeff = sqrt32(f32(ap / at));
      const denom = f32(f32(at * sqrt32(bp)) + sqrt32(f32(f32(at * bt) * ap)));
      return sample.mul(sampleCoeff).sub(eps.mul(f32(ap - at)).div(denom));
    });
  }
}
