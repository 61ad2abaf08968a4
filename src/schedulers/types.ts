/** The scheduler interface every class in src/schedulers implements (diffusers 0.14 semantics). */
import type { Generator, Tensor } from '../torch/index.js';

export type SchedulerClassName =
  | 'DDIMScheduler'
  | 'PNDMScheduler'
  | 'DDPMScheduler'
  | 'EulerDiscreteScheduler'
  | 'EulerAncestralDiscreteScheduler'
  | 'LMSDiscreteScheduler'
  | 'DPMSolverMultistepScheduler';

export interface StepOptions {
  /**
   * Random stream for the schedulers that draw noise in step() (DDIM with eta > 0, DDPM for
   * t > 0, Euler — every step, even with s_churn = 0 —, Euler-ancestral). Default: the global
   * generator. A list draws batch element i from generator i (diffusers' randn_tensor). A CPU
   * generator draws on the CPU and the noise moves to the sample's device.
   */
  generator?: Generator | readonly Generator[];
  /** Use this noise instead of drawing it (replaying recorded noise; diffusers' `variance_noise`). */
  noise?: Tensor;
  /**
   * DDIMScheduler: weight of the stochastic term, η in DDIM eq. 16 (0: DDIM, 1: DDPM-like). Default 0.
   * Other classes ignore it (as diffusers' pipelines only pass it to a step() that takes it).
   */
  eta?: number;
  /** DDIMScheduler only: recompute ε from the clipped x̂0 (only matters with clip_sample). Default false. */
  useClippedModelOutput?: boolean;
  /** LMSDiscreteScheduler only: the linear multistep order. Default 4. */
  order?: number;
  /** EulerDiscreteScheduler only: Karras et al. (2022) stochastic churn, Algorithm 2. Defaults 0, 0, ∞, 1. */
  sChurn?: number;
  sTmin?: number;
  sTmax?: number;
  sNoise?: number;
}

export interface StepOutput {
  /** x_{t-1}: the sample to feed the model at the next timestep. */
  prevSample: Tensor;
  /** x̂0 predicted at this step, where the class computes one (not PNDM). */
  predOriginalSample?: Tensor;
}

/** StableDiffusionImg2ImgPipeline.get_timesteps (diffusers 0.14) for one strength. */
export interface Img2ImgTimesteps {
  strength: number;
  /** min(int(N · strength), N). */
  initTimestep: number;
  /** max(N − initTimestep, 0); 0.14 does not multiply it by scheduler.order. */
  tStart: number;
  /** scheduler.timesteps[tStart:]: what the denoising loop runs over. */
  timesteps: number[];
  /** timesteps[0]: the timestep add_noise uses for the initial latents; null when strength leaves no step. */
  latentTimestep: number | null;
  /** N − tStart, the pipeline's second return value (PNDM's list has one entry more). */
  numSteps: number;
}

export interface Scheduler extends Disposable {
  readonly className: SchedulerClassName;
  /** The resulting config dict (diffusers' `dict(scheduler.config)`, without `_diffusers_version`). */
  readonly config: Readonly<Record<string, unknown>>;
  /** diffusers' `scheduler.order` (1 for every class in 0.14). */
  readonly order: number;
  readonly numTrainTimesteps: number;
  /** Training betas and their cumulative product ᾱ_t, float32 exactly as torch computes them. */
  readonly betas: Float32Array;
  readonly alphasCumprod: Float32Array;
  /** Set by setTimesteps; null before. */
  readonly numInferenceSteps: number | null;
  /** The inference timesteps, in the order to run them. Empty until setTimesteps(). */
  readonly timesteps: readonly number[];
  /** 'int64' for integer timesteps, 'float64' for Euler/Euler-ancestral/LMS (0.14 keeps numpy's float64). */
  readonly timestepsDtype: 'int64' | 'float64';
  /** Sigma-based classes only: the inference σ for each timestep and a final 0 (float32); empty until setTimesteps(). */
  readonly sigmas?: Float32Array;
  /** Standard deviation of the initial noise: 1 for alpha-based classes, σ_max for sigma-based ones. */
  readonly initNoiseSigma: number;

  setTimesteps(numInferenceSteps: number): void;
  /** The timesteps as a tensor of `timestepsDtype`. */
  timestepsTensor(): Tensor;
  /** The model input for timestep t (a new tensor handle; Euler/LMS divide by √(σ²+1)). */
  scaleModelInput(sample: Tensor, timestep: number | Tensor): Tensor;
  /** One reverse step from `sample` at `timestep` given the model's output there. */
  step(modelOutput: Tensor, timestep: number | Tensor, sample: Tensor, options?: StepOptions): StepOutput;
  /** Forward diffusion q(x_t | x_0) at the given timesteps (one per batch element, or one for all). */
  addNoise(originalSamples: Tensor, noise: Tensor, timesteps: number | readonly number[] | Tensor): Tensor;
  /** img2img's start: which timesteps a given strength runs, as StableDiffusionImg2ImgPipeline 0.14. */
  img2imgTimesteps(strength: number): Img2ImgTimesteps;
  /** Frees the tensors a multistep scheduler keeps between steps. */
  dispose(): void;
}
