/**
 * What the schedulers share: the training schedule, timestep bookkeeping, img2img start, noise
 * draws, and the two forms of add_noise (alpha-based: √ᾱ·x0 + √(1−ᾱ)·ε; sigma-based: x0 + σ·ε).
 */
import { ArgumentError, describe } from '../errors.js';
import { cat, isTensor, keep, randn, scope, tensor, type Generator, type Tensor } from '../torch/index.js';
import {
  checkInferenceSteps,
  checkStrength,
  ConfigReader,
  mergeConfig,
  SchedulerStateError,
  type RawConfig,
} from './config.js';
import { computeAlphasCumprod, computeBetas, f32, npInterpUnitGrid, sqrt32, type BetaSpec } from './numerics.js';
import type { Img2ImgTimesteps, Scheduler, SchedulerClassName, StepOptions, StepOutput } from './types.js';

export type AlphaPredictionType = 'epsilon' | 'sample' | 'v_prediction';

/** Reads a given config against a class's defaults. */
export function readConfig(className: SchedulerClassName, defaults: RawConfig, given: RawConfig): ConfigReader {
  if (given === null || typeof given !== 'object' || Array.isArray(given)) {
    throw new ArgumentError(`${className}: expected a config object but received ${describe(given)}`);
  }
  return new ConfigReader(className, mergeConfig(className, defaults, given));
}

export abstract class SchedulerBase implements Scheduler {
  abstract readonly className: SchedulerClassName;
  abstract readonly timestepsDtype: 'int64' | 'float64';
  abstract readonly initNoiseSigma: number;
  readonly order = 1;
  readonly config: Readonly<Record<string, unknown>>;
  readonly numTrainTimesteps: number;
  readonly betas: Float32Array;
  readonly alphasCumprod: Float32Array;
  #numInferenceSteps: number | null = null;
  #timesteps: readonly number[] = Object.freeze([]);

  protected constructor(reader: ConfigReader, spec: BetaSpec) {
    this.config = Object.freeze({ ...reader.cfg });
    this.numTrainTimesteps = spec.numTrainTimesteps;
    this.betas = computeBetas(spec);
    this.alphasCumprod = computeAlphasCumprod(this.betas);
  }

  get numInferenceSteps(): number | null {
    return this.#numInferenceSteps;
  }
  get timesteps(): readonly number[] {
    return this.#timesteps;
  }

  setTimesteps(numInferenceSteps: number): void {
    const n = checkInferenceSteps(numInferenceSteps, this.numTrainTimesteps);
    const ts = this.computeTimesteps(n);
    this.resetState();
    this.#numInferenceSteps = n;
    this.#timesteps = Object.freeze(ts);
  }

  /** The class's set_timesteps: returns the timesteps (and sets any per-schedule arrays). */
  protected abstract computeTimesteps(n: number): number[];
  /** Drops the state a multistep scheduler carries between steps. */
  protected resetState(): void {}

  timestepsTensor(): Tensor {
    return this.timestepsDtype === 'int64'
      ? tensor(
          BigInt64Array.from(this.#timesteps, (t) => BigInt(t)),
          [this.#timesteps.length],
        )
      : tensor(Float64Array.from(this.#timesteps), [this.#timesteps.length]);
  }

  abstract scaleModelInput(sample: Tensor, timestep: number | Tensor): Tensor;
  abstract step(modelOutput: Tensor, timestep: number | Tensor, sample: Tensor, options?: StepOptions): StepOutput;
  abstract addNoise(originalSamples: Tensor, noise: Tensor, timesteps: number | readonly number[] | Tensor): Tensor;

  img2imgTimesteps(strength: number): Img2ImgTimesteps {
    const s = checkStrength(strength);
    const n = this.requireTimesteps('img2imgTimesteps()');
    const initTimestep = Math.min(Math.trunc(n * s), n);
    const tStart = Math.max(n - initTimestep, 0);
    const timesteps = this.#timesteps.slice(tStart);
    return { strength: s, initTimestep, tStart, timesteps, latentTimestep: timesteps[0] ?? null, numSteps: n - tStart };
  }

  dispose(): void {
    this.resetState();
  }
  [Symbol.dispose](): void {
    this.dispose();
  }

  /** Number of inference steps; a clear error if setTimesteps() has not been called. */
  protected requireTimesteps(what: string): number {
    if (this.#numInferenceSteps === null) {
      throw new SchedulerStateError(
        `${this.className}.${what} needs the inference timesteps: call setTimesteps(numInferenceSteps) first`,
      );
    }
    return this.#numInferenceSteps;
  }

  /** Validates step() arguments shared by every class; returns the timestep as a number. */
  protected checkStep(
    modelOutput: Tensor,
    timestep: number | Tensor,
    sample: Tensor,
    options: StepOptions,
    takes: readonly (keyof StepOptions)[],
  ): number {
    this.requireTimesteps('step()');
    if (!isTensor(modelOutput) || !isTensor(sample))
      throw new ArgumentError(`${this.className}.step(): expected tensors for modelOutput and sample`);
    const a = modelOutput.shape;
    const b = sample.shape;
    if (a.length !== b.length || a.some((d, i) => d !== b[i])) {
      throw new ArgumentError(
        `${this.className}.step(): modelOutput has shape [${a.join(', ')}] but sample has shape [${b.join(', ')}]`,
      );
    }
    for (const k of Object.keys(options) as (keyof StepOptions)[]) {
      if (options[k] === undefined || takes.includes(k)) continue;
      // eta and generator are ignored where a class has no use for them, as diffusers' pipelines
      // pass them only to a step() that takes them (prepare_extra_step_kwargs).
      if (k === 'eta' || k === 'generator') continue;
      throw new ArgumentError(
        `${this.className}.step(): option '${k}' is not one this scheduler takes (it takes ${takes.length ? takes.join(', ') : 'no options'})`,
      );
    }
    return toTimestep(timestep, this.className);
  }

  /** ᾱ at an integer timestep, with a clear error outside [0, T). */
  protected alphaAt(t: number): number {
    if (!Number.isInteger(t) || t < 0 || t >= this.numTrainTimesteps) {
      throw new ArgumentError(
        `${this.className}: timestep ${t} is outside the training range [0, ${this.numTrainTimesteps - 1}]`,
      );
    }
    return this.alphasCumprod[t]!;
  }
}

export function toTimestep(t: number | Tensor, who: string): number {
  const v = isTensor(t) ? t.item() : t;
  if (typeof v !== 'number' || !Number.isFinite(v))
    throw new ArgumentError(`${who}: expected a timestep number but received ${describe(t)}`);
  return v;
}

function timestepList(timesteps: number | readonly number[] | Tensor, who: string): number[] {
  const list = isTensor(timesteps) ? timesteps.toArray() : typeof timesteps === 'number' ? [timesteps] : [...timesteps];
  if (list.length === 0 || !list.every((t) => typeof t === 'number' && Number.isFinite(t))) {
    throw new ArgumentError(`${who}.addNoise(): expected one or more timesteps but received ${describe(timesteps)}`);
  }
  return list;
}

/** A [B, 1, …, 1] float32 tensor of per-batch coefficients, on `like`'s device and dtype. */
function perBatch(values: number[], like: Tensor): Tensor {
  const shape = [values.length, ...Array<number>(Math.max(like.ndim - 1, 0)).fill(1)];
  return tensor(Float32Array.from(values), shape, { dtype: like.dtype, device: like.device });
}

/**
 * The base for the alpha-based classes (DDIM, PNDM, DDPM, DPM-Solver): integer timesteps, add_noise,
 * an identity scale_model_input, and x̂0 from the model's prediction.
 */
export abstract class AlphaScheduler extends SchedulerBase {
  readonly timestepsDtype = 'int64' as const;
  readonly initNoiseSigma: number = 1;

  /** ⌊T/N⌋: the spacing of N evenly strided timesteps (N defaults to the inference steps set). */
  protected stepRatio(n = this.numInferenceSteps!): number {
    return Math.floor(this.numTrainTimesteps / n);
  }

  /**
   * x̂0 for x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·ε from each prediction type, in 0.14's float32 order;
   * `a` = √ᾱ_t, `s` = √(1−ᾱ_t).
   */
  protected predictX0(
    modelOutput: Tensor,
    sample: Tensor,
    a: number,
    s: number,
    predictionType: AlphaPredictionType,
  ): Tensor {
    switch (predictionType) {
      case 'epsilon':
        return scope(() => sample.sub(modelOutput.mul(s)).div(a));
      case 'sample':
        return modelOutput.alias();
      case 'v_prediction':
        return scope(() => sample.mul(a).sub(modelOutput.mul(s)));
    }
  }

  /** Returns a new handle on the same values (these classes do not scale the model input). */
  scaleModelInput(sample: Tensor, timestep: number | Tensor): Tensor {
    toTimestep(timestep, this.className);
    return sample.alias();
  }

  /** √ᾱ_t · x0 + √(1 − ᾱ_t) · ε, in float32 as torch does. */
  addNoise(originalSamples: Tensor, noise: Tensor, timesteps: number | readonly number[] | Tensor): Tensor {
    const acp = timestepList(timesteps, this.className).map((t) => this.alphaAt(t));
    return scope(() => {
      const a = perBatch(
        acp.map((v) => sqrt32(v)),
        originalSamples,
      );
      const b = perBatch(
        acp.map((v) => sqrt32(f32(1 - v))),
        originalSamples,
      );
      return originalSamples.mul(a).add(noise.mul(b));
    });
  }
}

/**
 * The base for the sigma-based classes (Euler, Euler-ancestral, LMS) of 0.14: timesteps
 * linspace(0, T−1, N) reversed in float64; σ(t) = √((1−ᾱ)/ᾱ) interpolated at them in float64
 * (numpy.interp), stored as float32 with a final 0; the model input divided by √(σ²+1).
 */
export abstract class SigmaScheduler extends SchedulerBase {
  readonly timestepsDtype = 'float64' as const;
  readonly initNoiseSigma: number;
  /** σ for each training timestep (float32): √((1 − ᾱ_t) / ᾱ_t). */
  readonly trainSigmas: Float32Array;
  #sigmas: Float32Array = new Float32Array(0);

  protected constructor(reader: ConfigReader, spec: BetaSpec) {
    super(reader, spec);
    this.trainSigmas = Float32Array.from(this.alphasCumprod, (a) => sqrt32(f32(f32(1 - a) / a)));
    // 0.14 sets init_noise_sigma = max over the training sigmas at construction (σ at t = T−1).
    this.initNoiseSigma = this.trainSigmas.reduce((m, v) => Math.max(m, v), 0);
  }

  /** The inference sigmas, N + 1 of them (the last is 0). Empty until setTimesteps(). */
  get sigmas(): Float32Array {
    return this.#sigmas;
  }

  protected computeTimesteps(n: number): number[] {
    const T = this.numTrainTimesteps;
    const timesteps = linspaceReversed(T - 1, n);
    this.#sigmas = this.computeSigmas(timesteps);
    return timesteps;
  }

  /** σ at each timestep and a trailing 0, float32. */
  protected computeSigmas(timesteps: number[]): Float32Array {
    const out = new Float32Array(timesteps.length + 1);
    timesteps.forEach((t, i) => {
      out[i] = npInterpUnitGrid(t, this.trainSigmas);
    });
    return out;
  }

  protected setSigmas(s: Float32Array): void {
    this.#sigmas = s;
  }

  /** The position of t in the timesteps ((timesteps == t).nonzero().item() in diffusers). */
  protected stepIndex(t: number, what: string): number {
    this.requireTimesteps(what);
    const i = this.timesteps.indexOf(t);
    if (i < 0)
      throw new ArgumentError(
        `${this.className}.${what}: timestep ${t} is not one of this scheduler's timesteps (pass values taken from .timesteps)`,
      );
    return i;
  }

  scaleModelInput(sample: Tensor, timestep: number | Tensor): Tensor {
    const sigma = this.#sigmas[this.stepIndex(toTimestep(timestep, this.className), 'scaleModelInput()')]!;
    return sample.div(sqrt32(f32(f32(sigma * sigma) + 1)));
  }

  addNoise(originalSamples: Tensor, noise: Tensor, timesteps: number | readonly number[] | Tensor): Tensor {
    const ts = timestepList(timesteps, this.className);
    const sig = ts.map((t) => this.#sigmas[this.stepIndex(t, 'addNoise()')]!);
    return scope(() => originalSamples.add(noise.mul(perBatch(sig, originalSamples))));
  }

  /** x̂0 for the sigma parameterisation (x = x0 + σ·ε) from each prediction type, in 0.14's float32 order. */
  protected predictX0(modelOutput: Tensor, sample: Tensor, sigma: number, predictionType: string): Tensor {
    switch (predictionType) {
      case 'epsilon':
        return sample.sub(modelOutput.mul(sigma));
      case 'v_prediction': {
        const s2p1 = f32(f32(sigma * sigma) + 1);
        return scope(() => modelOutput.mul(f32(-sigma / sqrt32(s2p1))).add(sample.div(s2p1)));
      }
      default: // 'sample' / 'original_sample'
        return modelOutput.alias();
    }
  }
}

/**
 * DDIM and PNDM: timesteps arange(N)·⌊T/N⌋ shifted by steps_offset, and set_alpha_to_one's choice
 * of the ᾱ that stands "previous" to the last step.
 */
export abstract class OffsetAlphaScheduler extends AlphaScheduler {
  readonly setAlphaToOne: boolean;
  readonly stepsOffset: number;
  /** ᾱ used as "previous" at the last step: 1, or ᾱ_0 (SD's configs). */
  readonly finalAlphaCumprod: number;

  protected constructor(reader: ConfigReader) {
    super(reader, reader.betas());
    this.setAlphaToOne = reader.bool('set_alpha_to_one');
    this.stepsOffset = reader.int('steps_offset', 0, this.numTrainTimesteps - 1);
    this.finalAlphaCumprod = this.setAlphaToOne ? 1 : this.alphasCumprod[0]!;
  }

  /** arange(n)·⌊T/n⌋ + steps_offset, ascending. */
  protected offsetTimesteps(n: number): number[] {
    const ratio = this.stepRatio(n);
    return Array.from({ length: n }, (_, i) => i * ratio + this.stepsOffset);
  }

  /** ᾱ at the previous timestep: finalAlphaCumprod once the steps have gone below 0. */
  protected alphaPrev(prevT: number): number {
    return prevT >= 0 ? this.alphaAt(prevT) : this.finalAlphaCumprod;
  }
}

/** numpy.linspace(0, last, n)[::-1] in float64. */
function linspaceReversed(last: number, n: number): number[] {
  if (n === 1) return [0];
  const step = last / (n - 1);
  const out = Array.from({ length: n }, (_, i) => i * step);
  out[n - 1] = last;
  return out.reverse();
}

/**
 * Standard normal noise shaped like `like`, as diffusers' randn_tensor: from `generator` (a CPU
 * generator draws on the CPU, then the noise moves), one generator per batch element for a list,
 * or from the global generator.
 */
export function drawNoise(like: Tensor, generator: Generator | readonly Generator[] | undefined): Tensor {
  const dtype = like.dtype;
  const device = like.device;
  if (generator === undefined) return randn(like.shape, { dtype, device });
  const draw = (g: Generator, shape: number[]): Tensor => {
    if (g.device === device) return randn(shape, { dtype, device, generator: g });
    if (g.device !== 'cpu') throw new ArgumentError(`cannot draw ${device} noise from a ${g.device} generator`);
    return scope(() => randn(shape, { dtype, generator: g }).to(device));
  };
  if (!Array.isArray(generator)) return draw(generator as Generator, like.shape);
  const gens = generator as readonly Generator[];
  const shape = like.shape;
  if (gens.length !== shape[0])
    throw new ArgumentError(`expected one generator per batch element (${shape[0]}) but received ${gens.length}`);
  return scope(() =>
    cat(
      gens.map((g) => draw(g, [1, ...shape.slice(1)])),
      0,
    ),
  );
}

/** The noise for a step: the replayed one (checked) or a fresh draw. */
export function stepNoise(like: Tensor, options: StepOptions, who: string): Tensor {
  if (options.noise !== undefined) {
    const n = options.noise;
    if (!isTensor(n) || n.shape.join() !== like.shape.join()) {
      throw new ArgumentError(
        `${who}.step(): expected option noise to be a tensor of shape [${like.shape.join(', ')}] but received ${isTensor(n) ? `shape [${n.shape.join(', ')}]` : describe(n)}`,
      );
    }
    return n.alias();
  }
  return drawNoise(like, options.generator);
}

/** Takes a tensor out of every scope so a scheduler can keep it between steps. */
export function hold(t: Tensor): Tensor {
  return keep(t.alias());
}
