/**
 * img2img as a differentiable function of the input image, for attacks that push the *edit*
 * (not just the encoder's view) somewhere. Same computation and draw order as img2img() in
 * generate.ts, without the final no-grad. `steps` truncates the schedule (photoguard attacks
 * through a few steps); with `checkpoint` the denoising steps run without a graph and are
 * re-run one at a time during the backward pass (vector–Jacobian products chained step by step),
 * so memory does not grow with the number of steps.
 */
import { grad, keep, noGrad, scope, type Tensor } from '../torch/index.js';
import type { StableDiffusion } from './components.js';
import { decodeLatents, denoiseStep, encodeLatents, encodePrompt, type Img2ImgOptions } from './generate.js';
import { replayNoise, seededNoise, type NoiseSource } from './noise.js';

export interface DifferentiableImg2ImgOptions extends Img2ImgOptions {
  checkpoint?: boolean;
}

/** Records every draw of `inner` so a step can be re-run with the same noise. */
function recording(inner: NoiseSource): NoiseSource & { draws: Tensor[] } {
  const draws: Tensor[] = [];
  return {
    draws,
    next(shape, like, site) {
      const t = keep(inner.next(shape, like, site));
      draws.push(t);
      return t.alias();
    },
  };
}

function setup(sd: StableDiffusion, o: Img2ImgOptions) {
  const guidance = o.guidance ?? 7.5;
  const embeds = keep(encodePrompt(sd, o.prompt, o.negativePrompt ?? '', guidance > 1));
  sd.scheduler.setTimesteps(o.steps ?? 50);
  const plan = sd.scheduler.img2imgTimesteps(o.strength ?? 0.8);
  return { guidance, eta: o.eta ?? 0, embeds, plan, noise: o.noise ?? seededNoise(o.seed ?? 0) };
}

function initialLatents(
  sd: StableDiffusion,
  image01: Tensor,
  noise: NoiseSource,
  latentTimestep: number | null,
): Tensor {
  return scope(() => {
    const init = encodeLatents(sd.vae, image01, noise, 'vae posterior sample');
    if (latentTimestep === null) return init;
    return sd.scheduler.addNoise(init, noise.next(init.shape, init, 'img2img initial noise'), latentTimestep);
  });
}

/** The edited image ([1, 3, H, W] in [0, 1]) with its autograd graph back to `image01`. */
export function img2imgDifferentiable(sd: StableDiffusion, image01: Tensor, o: Img2ImgOptions): Tensor {
  const { guidance, eta, embeds, plan, noise } = setup(sd, o);
  try {
    return scope(() => {
      let z = initialLatents(sd, image01, noise, plan.latentTimestep);
      plan.timesteps.forEach((t, i) => {
        z = denoiseStep(sd, z, t, embeds, guidance, eta, noise, null, i);
      });
      return decodeLatents(sd.vae, z);
    });
  } finally {
    embeds.dispose();
  }
}

/** loss(edit(image01)) and its gradient with respect to image01 (the caller owns grad and image). */
export function img2imgLossAndGradient(
  sd: StableDiffusion,
  image01: Tensor,
  lossFn: (edit01: Tensor) => Tensor,
  o: DifferentiableImg2ImgOptions,
): { loss: number; grad: Tensor; image: Tensor } {
  if (!(o.checkpoint ?? true)) {
    return scope(() => {
      const leaf = image01.detach().requiresGrad_();
      const image = img2imgDifferentiable(sd, leaf, o);
      const loss = lossFn(image);
      const [g] = grad(loss, [leaf]);
      return { loss: loss.item(), grad: keep(g!), image: keep(image.detach()) };
    });
  }
  const { guidance, eta, embeds, plan, noise } = setup(sd, o);
  const recorder = recording(noise);
  try {
    return scope(() => {
      const leaf = image01.detach().requiresGrad_();
      const z0 = initialLatents(sd, leaf, recorder, plan.latentTimestep);
      const first = recorder.draws.length;
      // Forward without a graph, keeping each step's input and its noise.
      const states: Tensor[] = [z0.detach()];
      noGrad(() =>
        plan.timesteps.forEach((t, i) =>
          states.push(denoiseStep(sd, states[i]!, t, embeds, guidance, eta, recorder, null, i)),
        ),
      );
      const stepDraws = recorder.draws.slice(first);
      const perStep = stepDraws.length / Math.max(1, plan.timesteps.length);
      const zT = states.at(-1)!.detach().requiresGrad_();
      const image = decodeLatents(sd.vae, zT);
      const loss = lossFn(image);
      let [gz] = grad(loss, [zT]) as [Tensor];
      for (let k = plan.timesteps.length - 1; k >= 0; k--) {
        scope(() => {
          const zk = states[k]!.detach().requiresGrad_();
          const replay = replayNoise(stepDraws.slice(k * perStep, (k + 1) * perStep));
          const out = denoiseStep(sd, zk, plan.timesteps[k]!, embeds, guidance, eta, replay, null, k);
          gz = keep(grad(out, [zk], { gradOutputs: [gz] })[0]!);
        });
      }
      const [g] = grad(z0, [leaf], { gradOutputs: [gz] });
      return { loss: loss.item(), grad: keep(g!), image: keep(image.detach()) };
    });
  } finally {
    embeds.dispose();
    for (const d of recorder.draws) d.dispose();
  }
}
