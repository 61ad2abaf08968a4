/**
 * Pipelines and the diffusion attack with the tiny repositories of the conformance cases
 * (../shared/golden/pipeline_*): a full 10-step img2img at 512² (strength 1, so all 10 steps run),
 * and one diffusion-attack gradient (photoguard's attack_forward + backward) through 1, 4 and 8
 * denoising steps with and without checkpointing, each in its own process for its own peak RSS.
 */
import { diffusionLossAndGradient } from '../src/attacks/diffusion.js';
import { loadStableDiffusionFromPath } from '../src/pipelines/components.js';
import { encodePrompt, img2img } from '../src/pipelines/generate.js';
import { seededNoise } from '../src/pipelines/noise.js';
import { manualSeed, rand, scope, zeros } from '../src/torch/index.js';
import { quick, runBench, sharedFile, stepCount, summarize, timeSteps, type BenchCase } from './harness.js';

const img2imgCase: BenchCase = {
  name: 'img2img_tiny_512_10steps',
  run: () => {
    const dir = sharedFile('golden', 'pipeline_img2img');
    if ('skipped' in dir) return dir;
    using sd = loadStableDiffusionFromPath(dir.path);
    manualSeed(1);
    const image = rand([1, 3, 512, 512]);
    const samples = timeSteps(
      () => {
        const r = img2img(sd, image, {
          prompt: 'two men in a wedding',
          strength: 1,
          steps: 10,
          guidance: 7.5,
          eta: 1,
          noise: seededNoise(9209),
        });
        r.image.dispose();
      },
      stepCount(3, 1),
      quick ? 0 : 1,
    );
    image.dispose();
    return {
      what: 'tiny img2img repo, 512×512, 10 DDIM steps (η 1, guidance 7.5), decode included',
      ...summarize(samples, 'msPerRun'),
    };
  },
};

function attackCase(steps: number, checkpoint: boolean): BenchCase {
  return {
    name: `diffusion_attack_grad_tiny_${steps}steps_${checkpoint ? 'checkpointed' : 'plain'}`,
    run: () => {
      const dir = sharedFile('golden', 'pipeline_inpaint');
      if ('skipped' in dir) return dir;
      using sd = loadStableDiffusionFromPath(dir.path);
      manualSeed(2);
      const size = 256;
      const masked = rand([1, 3, size, size]).mul(2).sub(1);
      const mask = zeros([1, 1, size, size]);
      const target = zeros([1, 3, size, size]);
      const embeds = encodePrompt(sd, '', '', true);
      const noise = seededNoise(786349);
      const samples = timeSteps(
        () =>
          scope(() => {
            const r = diffusionLossAndGradient(sd, masked, mask, target, embeds, {
              steps,
              guidance: 7.5,
              eta: 1,
              noise,
              checkpoint,
            });
            r.grad.dispose();
            r.image.dispose();
          }),
        stepCount(3, 1),
        quick ? 0 : 1,
      );
      return {
        what: `one attack gradient through ${steps} denoising steps of the tiny inpainting repo at ${size}², ${checkpoint ? 'checkpointed' : 'plain autograd'}`,
        steps,
        checkpoint,
        ...summarize(samples, 'msPerStep'),
      };
    },
  };
}

await runBench([img2imgCase, ...[1, 4, 8].flatMap((s) => [attackCase(s, true), attackCase(s, false)])]);
