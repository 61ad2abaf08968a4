/**
 * img2img and (legacy 9-channel) inpainting as diffusers 0.14's StableDiffusionImg2ImgPipeline
 * and StableDiffusionInpaintPipeline compute them: classifier-free guidance, strength, steps,
 * eta, and the same random draws in the same order (so a seed gives diffusers' result).
 * Images are NCHW in [0, 1]; the VAE sees 2x − 1.
 */
import { ArgumentError } from '../errors.js';
import type { AutoencoderKL } from '../models/autoencoder-kl.js';
import { cat, F, keep, noGrad, scope, type Tensor } from '../torch/index.js';
import type { StableDiffusion } from './components.js';
import { seededNoise, type NoiseSource } from './noise.js';

export interface GenerateOptions {
  prompt: string;
  /** The unconditional side of classifier-free guidance (default ''). */
  negativePrompt?: string;
  /** Denoising steps (default 50). */
  steps?: number;
  /** Classifier-free guidance scale; ≤ 1 turns guidance off (default 7.5). */
  guidance?: number;
  /** DDIM's η (default 0); ignored by schedulers without it. */
  eta?: number;
  /** Random draws: `noise` (a NoiseSource) wins over `seed` (default 0). */
  seed?: number;
  noise?: NoiseSource;
  /** Called after each denoising step. */
  onStep?: (step: number, steps: number) => void;
  /** Receives intermediate tensors by name (prompt_embeds, unet_in_00, unet_out_00, latents_00, decoded_final); borrowed, clone to keep. */
  trace?: (name: string, t: Tensor) => void;
}

export interface Img2ImgOptions extends GenerateOptions {
  /** How much of the image to repaint, 0–1 (default 0.8). */
  strength?: number;
}

export interface InpaintOptions extends GenerateOptions {
  /** [1, 1, H, W] in [0, 1]: white (≥ 0.5) = repaint, black = keep. */
  mask: Tensor;
}

export interface GenerateResult {
  /** [1, 3, H, W] in [0, 1]. */
  image: Tensor;
  /** Denoising steps run. */
  steps: number;
}

const pad2 = (i: number) => String(i).padStart(2, '0');

function checkImage(image: Tensor, what: string): [number, number] {
  if (image.ndim !== 4 || image.shape[0] !== 1 || image.shape[1] !== 3)
    throw new ArgumentError(
      `${what}: expected an image of shape [1, 3, H, W] but received [${image.shape.join(', ')}]`,
    );
  const [h, w] = [image.shape[2]!, image.shape[3]!];
  if (h % 8 !== 0 || w % 8 !== 0)
    throw new ArgumentError(
      `${what}: height and width must be multiples of 8 (received ${w}×${h}); resize or pad first`,
    );
  return [h, w];
}

function checkCommon(o: GenerateOptions): { steps: number; guidance: number; eta: number; noise: NoiseSource } {
  const steps = o.steps ?? 50;
  if (!Number.isSafeInteger(steps) || steps < 1 || steps > 1000)
    throw new ArgumentError(`steps must be an integer in 1..1000 but received ${steps}`);
  const guidance = o.guidance ?? 7.5;
  if (!Number.isFinite(guidance) || guidance < 0)
    throw new ArgumentError(`guidance must be a non-negative number but received ${guidance}`);
  const eta = o.eta ?? 0;
  if (!Number.isFinite(eta) || eta < 0)
    throw new ArgumentError(`eta must be a non-negative number but received ${eta}`);
  if (typeof o.prompt !== 'string') throw new ArgumentError('prompt must be a string');
  return { steps, guidance, eta, noise: o.noise ?? seededNoise(o.seed ?? 0) };
}

/** Text embeddings the UNet sees: cat([uncond, cond]) with guidance, else cond alone. */
export function encodePrompt(sd: StableDiffusion, prompt: string, negativePrompt: string, guidance: boolean): Tensor {
  return noGrad(() =>
    scope(() => {
      const device = sd.device;
      const embed = (text: string) =>
        sd.textEncoder.forward(sd.tokenizer.inputIdsTensor([text], { padding: 'max_length', truncation: true, device }))
          .lastHiddenState;
      const cond = embed(prompt);
      return guidance ? cat([embed(negativePrompt), cond], 0) : cond;
    }),
  );
}

/** posterior sample · scaling_factor, with the sample's noise drawn from `noise`. */
export function encodeLatents(vae: AutoencoderKL, image01: Tensor, noise: NoiseSource, site: string): Tensor {
  return scope(() => {
    using d = vae.encode(image01.mul(2).sub(1));
    const eps = noise.next(d.mean.shape, d.mean, site);
    return d.mean.add(d.std.mul(eps)).mul(vae.config.scaling_factor);
  });
}

/** latents / scaling_factor → image in [0, 1]. */
export function decodeLatents(vae: AutoencoderKL, latents: Tensor, trace?: GenerateOptions['trace']): Tensor {
  return scope(() => {
    const decoded = vae.decode(latents.div(vae.config.scaling_factor));
    trace?.('decoded_final', decoded);
    return decoded.div(2).add(0.5).clamp(0, 1);
  });
}

/** One guided denoising step: UNet on the doubled batch, guidance, scheduler step. */
export function denoiseStep(
  sd: StableDiffusion,
  latents: Tensor,
  t: number,
  embeds: Tensor,
  guidance: number,
  eta: number,
  noise: NoiseSource,
  extra: Tensor | null,
  i: number,
  trace?: GenerateOptions['trace'],
): Tensor {
  return scope(() => {
    const cfg = guidance > 1;
    let input = sd.scheduler.scaleModelInput(cfg ? cat([latents, latents], 0) : latents, t);
    if (extra !== null) input = cat([input, extra], 1);
    trace?.(`unet_in_${pad2(i)}`, input);
    let pred = sd.unet.forward(input, t, embeds);
    trace?.(`unet_out_${pad2(i)}`, pred);
    if (cfg) {
      const [u, c] = pred.chunk(2, 0) as [Tensor, Tensor];
      pred = u.add(c.sub(u).mul(guidance));
    }
    const stepNoise = needsNoise(sd, eta, t) ? noise.next(latents.shape, latents, `scheduler step ${i}`) : undefined;
    const out = sd.scheduler.step(pred, t, latents, { eta, noise: stepNoise });
    out.predOriginalSample?.dispose();
    trace?.(`latents_${pad2(i)}`, out.prevSample);
    return out.prevSample;
  });
}

/** Whether the scheduler draws noise in step() (diffusers calls randn_tensor there). */
function needsNoise(sd: StableDiffusion, eta: number, t: number): boolean {
  switch (sd.scheduler.className) {
    case 'DDIMScheduler':
      return eta > 0;
    case 'DDPMScheduler':
      return t > 0;
    case 'EulerDiscreteScheduler':
    case 'EulerAncestralDiscreteScheduler':
      return true;
    default:
      return false;
  }
}

/** Stable Diffusion img2img (diffusers 0.14 StableDiffusionImg2ImgPipeline). */
export function img2img(sd: StableDiffusion, image: Tensor, o: Img2ImgOptions): GenerateResult {
  checkImage(image, 'img2img');
  const { steps, guidance, eta, noise } = checkCommon(o);
  const strength = o.strength ?? 0.8;
  return noGrad(() => {
    const embeds = keep(encodePrompt(sd, o.prompt, o.negativePrompt ?? '', guidance > 1));
    try {
      o.trace?.('prompt_embeds', embeds);
      sd.scheduler.setTimesteps(steps);
      const plan = sd.scheduler.img2imgTimesteps(strength);
      const dev = sd.device;
      let latents = scope(() => {
        const init = encodeLatents(sd.vae, image.to(dev), noise, 'vae posterior sample');
        if (plan.latentTimestep === null) return init;
        const n = noise.next(init.shape, init, 'img2img initial noise');
        return sd.scheduler.addNoise(init, n, plan.latentTimestep);
      });
      plan.timesteps.forEach((t, i) => {
        const next = denoiseStep(sd, latents, t, embeds, guidance, eta, noise, null, i, o.trace);
        latents.dispose();
        latents = next;
        o.onStep?.(i + 1, plan.timesteps.length);
      });
      const out = decodeLatents(sd.vae, latents, o.trace);
      latents.dispose();
      return { image: out, steps: plan.timesteps.length };
    } finally {
      embeds.dispose();
    }
  });
}

/** The mask at latent resolution and the masked image (kept pixels only), as prepare_mask_and_masked_image. */
export function prepareMask(image: Tensor, mask: Tensor): { mask: Tensor; masked: Tensor } {
  return scope(() => {
    const [h, w] = [image.shape[2]!, image.shape[3]!];
    if (mask.ndim !== 4 || mask.shape[0] !== 1 || mask.shape[1] !== 1 || mask.shape[2] !== h || mask.shape[3] !== w) {
      throw new ArgumentError(
        `inpaint: the mask must be [1, 1, ${h}, ${w}] like the image but is [${mask.shape.join(', ')}]`,
      );
    }
    const bin = mask.ge(0.5).to(image.dtype);
    // The masked image keeps the pixels outside the repaint region; in [-1, 1] the rest is 0 (gray).
    const masked = image.mul(2).sub(1).mul(bin.lt(0.5).to(image.dtype));
    return { mask: bin, masked };
  });
}

/** Stable Diffusion inpainting with a 9-channel UNet (diffusers 0.14 StableDiffusionInpaintPipeline). */
export function inpaint(sd: StableDiffusion, image: Tensor, o: InpaintOptions): GenerateResult {
  const [h, w] = checkImage(image, 'inpaint');
  const { steps, guidance, eta, noise } = checkCommon(o);
  const inC = sd.unet.config.in_channels;
  const latentC = sd.vae.config.latent_channels;
  if (inC !== 2 * latentC + 1)
    throw new ArgumentError(
      `inpaint needs an inpainting UNet with ${2 * latentC + 1} input channels; this one has ${inC}`,
    );
  return noGrad(() => {
    const embeds = keep(encodePrompt(sd, o.prompt, o.negativePrompt ?? '', guidance > 1));
    const cfg = guidance > 1;
    try {
      o.trace?.('prompt_embeds', embeds);
      sd.scheduler.setTimesteps(steps);
      const dev = sd.device;
      const dtype = embeds.dtype;
      let latents = scope(() =>
        noise
          .next([1, latentC, h / 8, w / 8], { dtype, device: dev }, 'initial latents')
          .mul(sd.scheduler.initNoiseSigma),
      );
      const extra = keep(
        scope(() => {
          const { mask, masked } = prepareMask(image.to(dev), o.mask.to(dev));
          const small = F.interpolate(mask, { size: [h / 8, w / 8], mode: 'nearest' });
          using d = sd.vae.encode(masked);
          const eps = noise.next(d.mean.shape, d.mean, 'masked image posterior sample');
          const maskedLatents = d.mean.add(d.std.mul(eps)).mul(sd.vae.config.scaling_factor);
          const m = cfg ? cat([small, small], 0) : small;
          const ml = cfg ? cat([maskedLatents, maskedLatents], 0) : maskedLatents;
          return cat([m, ml], 1);
        }),
      );
      try {
        sd.scheduler.timesteps.forEach((t, i) => {
          const next = denoiseStep(sd, latents, t, embeds, guidance, eta, noise, extra, i, o.trace);
          latents.dispose();
          latents = next;
          o.onStep?.(i + 1, sd.scheduler.timesteps.length);
        });
      } finally {
        extra.dispose();
      }
      const out = decodeLatents(sd.vae, latents, o.trace);
      latents.dispose();
      return { image: out, steps: sd.scheduler.timesteps.length };
    } finally {
      embeds.dispose();
    }
  });
}
