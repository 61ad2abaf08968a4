/**
 * The diffusion attack (Salman et al. 2023, §3.2; photoguard's demo_complex_attack_inpainting):
 * push the *output* of the inpainting pipeline towards a target image by back-propagating through
 * a few denoising steps. Each PGD step averages the gradient over `gradReps` random passes
 * (fresh latents, posterior and DDIM noise each time).
 *
 * Memory: plain autograd keeps every UNet step's activations until the backward pass, so memory
 * grows with the step count. With `checkpoint` (default) the forward pass runs without a graph,
 * keeping only each step's latents and noise; the backward pass then re-runs one step at a time
 * with a graph and chains vector–Jacobian products, so at most one step's activations are alive.
 */
import { ArgumentError } from '../errors.js';
import type { StableDiffusion } from '../pipelines/components.js';
import { encodePrompt } from '../pipelines/generate.js';
import type { NoiseSource } from '../pipelines/noise.js';
import { seededNoise } from '../pipelines/noise.js';
import { cat, F, grad, keep, noGrad, scope, zeros, type Tensor } from '../torch/index.js';
import { pgdWithGradient, type PgdOptions, type PgdResult } from './pgd.js';

export interface DiffusionForwardOptions {
  /** Denoising steps of the pipeline; all of them are back-propagated (photoguard: 4 of 4 by default in its demo, 50 in the paper). */
  steps: number;
  guidance?: number;
  eta?: number;
  noise: NoiseSource;
  checkpoint?: boolean;
}

/**
 * photoguard's attack_forward: masked image ([-1, 1], the pixels the editor keeps) and mask
 * (1 = repaint) → the decoded inpainting (no clamp). Text embeddings come in ready (detached).
 */
export interface ForwardTrace {
  /** Decoded image, [1, 3, H, W] in about [-1, 1]. */
  image: Tensor;
}

function stepOnce(
  sd: StableDiffusion,
  latents: Tensor,
  t: number,
  embeds: Tensor,
  maskedLatents: Tensor,
  smallMask: Tensor,
  guidance: number,
  eta: number,
  noise: Tensor | undefined,
): Tensor {
  return scope(() => {
    const cfg = guidance > 1;
    const doubled = cfg ? cat([latents, latents], 0) : latents;
    const m = cfg ? cat([smallMask, smallMask], 0) : smallMask;
    const ml = cfg ? cat([maskedLatents, maskedLatents], 0) : maskedLatents;
    // photoguard's attack_forward skips scale_model_input (the identity for DDIM, its scheduler).
    let pred = sd.unet.forward(cat([doubled, m, ml], 1), t, embeds);
    if (cfg) {
      const [u, c] = pred.chunk(2, 0) as [Tensor, Tensor];
      pred = u.add(c.sub(u).mul(guidance));
    }
    const out = sd.scheduler.step(pred, t, latents, { eta, noise });
    out.predOriginalSample?.dispose();
    return out.prevSample;
  });
}

function needsStepNoise(sd: StableDiffusion, eta: number): boolean {
  return sd.scheduler.className === 'DDIMScheduler'
    ? eta > 0
    : ['DDPMScheduler', 'EulerDiscreteScheduler', 'EulerAncestralDiscreteScheduler'].includes(sd.scheduler.className);
}

/**
 * Loss ‖f(masked) − target‖₂ and its gradient with respect to the masked image, times (1 − mask)
 * as photoguard's compute_grad. Returns the decoded image too (caller owns everything).
 */
export function diffusionLossAndGradient(
  sd: StableDiffusion,
  maskedImage: Tensor,
  mask: Tensor,
  target: Tensor,
  embeds: Tensor,
  o: DiffusionForwardOptions,
): { loss: number; grad: Tensor; image: Tensor } {
  const guidance = o.guidance ?? 7.5;
  const eta = o.eta ?? 0;
  const [h, w] = [maskedImage.shape[2]!, maskedImage.shape[3]!];
  const lc = sd.vae.config.latent_channels;
  return scope(() => {
    const leaf = maskedImage.detach().requiresGrad_();
    const latents0 = noGrad(() =>
      o.noise
        .next([1, lc, Math.floor(h / 8), Math.floor(w / 8)], leaf, 'attack latents')
        .mul(sd.scheduler.initNoiseSigma),
    );
    const smallMask = noGrad(() =>
      F.interpolate(mask, { size: [Math.floor(h / 8), Math.floor(w / 8)], mode: 'nearest' }),
    );
    // The posterior sample (not the mean): gradients flow through both mean and std.
    let maskedLatents: Tensor;
    {
      using d = sd.vae.encode(leaf);
      const eps = o.noise.next(d.mean.shape, d.mean, 'attack posterior sample');
      maskedLatents = d.mean.add(d.std.mul(eps)).mul(0.18215);
    }
    sd.scheduler.setTimesteps(o.steps);
    const timesteps = sd.scheduler.timesteps;
    const withNoise = needsStepNoise(sd, eta);
    if (!(o.checkpoint ?? true)) {
      let z = latents0;
      timesteps.forEach((t) => {
        const n = withNoise ? o.noise.next(z.shape, z, 'attack scheduler step') : undefined;
        z = stepOnce(sd, z, t, embeds, maskedLatents, smallMask, guidance, eta, n);
      });
      const image = sd.vae.decode(z.div(0.18215));
      const loss = image.sub(target).norm();
      const [g] = grad(loss, [leaf]);
      return { loss: loss.item(), grad: keep(g!.mul(mask.neg().add(1))), image: keep(image.detach()) };
    }
    // Checkpointed: forward without a graph, remembering each step's input latents and noise.
    const mlDetached = maskedLatents.detach();
    const states: Tensor[] = [latents0];
    const noises: (Tensor | undefined)[] = [];
    noGrad(() =>
      timesteps.forEach((t, k) => {
        const n = withNoise ? o.noise.next(latents0.shape, latents0, 'attack scheduler step') : undefined;
        noises.push(n);
        states.push(stepOnce(sd, states[k]!, t, embeds, mlDetached, smallMask, guidance, eta, n));
      }),
    );
    const zT = states[timesteps.length]!.detach().requiresGrad_();
    const image = sd.vae.decode(zT.div(0.18215));
    const loss = image.sub(target).norm();
    let [gz] = grad(loss, [zT]) as [Tensor];
    let gml = zeros(mlDetached.shape, { dtype: mlDetached.dtype, device: mlDetached.device });
    for (let k = timesteps.length - 1; k >= 0; k--) {
      scope(() => {
        const zk = states[k]!.detach().requiresGrad_();
        const mlk = mlDetached.detach().requiresGrad_();
        const out = stepOnce(sd, zk, timesteps[k]!, embeds, mlk, smallMask, guidance, eta, noises[k]);
        const [a, b] = grad(out, [zk, mlk], { gradOutputs: [gz] });
        gz = keep(a!);
        gml = keep(gml.add(b!));
      });
    }
    const [g] = grad(maskedLatents, [leaf], { gradOutputs: [gml] });
    return { loss: loss.item(), grad: keep(g!.mul(mask.neg().add(1))), image: keep(image.detach()) };
  });
}

export interface DiffusionAttackOptions extends Omit<PgdOptions, 'range' | 'mask'> {
  /** Denoising steps back-propagated per pass (photoguard's demo: 4). */
  denoiseSteps: number;
  /** Passes averaged per PGD step (photoguard: grad_reps). */
  gradReps?: number;
  guidance?: number;
  eta?: number;
  prompt?: string;
  /** Random draws of every pass, in order (default: seededNoise(seed ?? 0)). */
  noise?: NoiseSource;
  checkpoint?: boolean;
  /** Target image in [-1, 1] (default zeros: a gray image, as photoguard). */
  target?: Tensor;
  /** Called with every pass's decoded image and gradient (borrowed). */
  onPass?: (pass: number, image: Tensor, grad: Tensor, loss: number) => void;
}

export interface DiffusionAttackResult extends PgdResult {
  /** Mean loss over the passes of each step. */
  passLosses: number[];
}

/**
 * Immunizes the kept region of an image against inpainting, as photoguard's super_l2/super_linf:
 * `maskedImage` ([1, 3, H, W] in [-1, 1], zero where the editor repaints) and `mask`
 * ([1, 1, H, W], 1 = repaint). Budgets and steps are on that [-1, 1] scale (twice the [0, 1]
 * values). Returns the adversarial masked image (`adv`, [-1, 1]).
 */
export function diffusionAttack(
  sd: StableDiffusion,
  maskedImage: Tensor,
  mask: Tensor,
  o: DiffusionAttackOptions,
): DiffusionAttackResult {
  if (sd.unet.config.in_channels !== 2 * sd.vae.config.latent_channels + 1)
    throw new ArgumentError(
      `the diffusion attack needs an inpainting pipeline (9-channel UNet); this one has ${sd.unet.config.in_channels}`,
    );
  if (!Number.isSafeInteger(o.denoiseSteps) || o.denoiseSteps < 1)
    throw new ArgumentError(`denoiseSteps must be a positive integer but received ${o.denoiseSteps}`);
  const reps = o.gradReps ?? 1;
  if (!Number.isSafeInteger(reps) || reps < 1)
    throw new ArgumentError(`gradReps must be a positive integer but received ${reps}`);
  const guidance = o.guidance ?? 7.5;
  const embeds = keep(encodePrompt(sd, o.prompt ?? '', '', guidance > 1));
  const target = o.target ?? zeros(maskedImage.shape, { dtype: maskedImage.dtype, device: maskedImage.device });
  const noise = o.noise ?? seededNoise(o.seed ?? 0);
  const passLosses: number[] = [];
  let pass = 0;
  try {
    const r = pgdWithGradient(
      maskedImage,
      (xa) =>
        scope(() => {
          let sum: Tensor | null = null;
          let lossSum = 0;
          for (let k = 0; k < reps; k++) {
            const p = diffusionLossAndGradient(sd, xa, mask, target, embeds, {
              steps: o.denoiseSteps,
              guidance,
              eta: o.eta,
              noise,
              checkpoint: o.checkpoint,
            });
            o.onPass?.(pass++, p.image, p.grad, p.loss);
            p.image.dispose();
            lossSum += p.loss;
            sum = sum === null ? p.grad : sum.add(p.grad);
          }
          passLosses.push(lossSum / reps);
          return { loss: lossSum / reps, grad: keep(sum!.div(reps)) };
        }),
      { ...o, range: [-1, 1], randomStart: o.randomStart ?? false },
    );
    return { ...r, passLosses };
  } finally {
    embeds.dispose();
    if (o.target === undefined) target.dispose();
  }
}
