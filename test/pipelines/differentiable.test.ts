// The differentiable img2img forward equals the pipeline's output for the same draws, and its
// checkpointed gradient equals plain autograd's (tiny img2img repo of the conformance case).
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { loadStableDiffusionFromPath, type StableDiffusion } from '../../src/pipelines/components.js';
import { img2imgDifferentiable, img2imgLossAndGradient } from '../../src/pipelines/differentiable.js';
import { diffusionLossAndGradient } from '../../src/attacks/diffusion.js';
import { encodePrompt, img2img, inpaint, prepareMask } from '../../src/pipelines/generate.js';
import { seededNoise } from '../../src/pipelines/noise.js';
import { manualSeed, noGrad, rand, scope, setNumThreads, zeros } from '../../src/torch/index.js';
import { sharedPath, skipReason } from '../helpers/shared.js';

setNumThreads(1);
const common = { prompt: 'two men in a wedding', strength: 0.75, steps: 4, guidance: 7.5, eta: 1 };

/** Runs `body` in a scope on the tiny pipeline of golden case `name`; skips when ../shared lacks it. */
function withTinyPipeline(t: TestContext, name: string, body: (sd: StableDiffusion) => void): void {
  const repo = sharedPath('golden', name);
  if (repo === null) return t.skip(skipReason('golden', name));
  using sd = loadStableDiffusionFromPath(repo);
  scope(() => body(sd));
}

test('differentiable img2img = img2img() for the same seed; gradients agree with and without checkpointing', (t) =>
  withTinyPipeline(t, 'pipeline_img2img', (sd) => {
    manualSeed(0);
    const image = rand([1, 3, 32, 32]);
    const ref = img2img(sd, image, { ...common, noise: seededNoise(7) }).image;
    const mine = noGrad(() => img2imgDifferentiable(sd, image, { ...common, noise: seededNoise(7) }));
    assert.ok(mine.sub(ref).abs().max().item() < 1e-6, 'same output as the non-differentiable pipeline');
    const loss = (edit: typeof image) => edit.sub(0.5).square().mean();
    const a = img2imgLossAndGradient(sd, image, loss, { ...common, noise: seededNoise(7), checkpoint: true });
    const b = img2imgLossAndGradient(sd, image, loss, { ...common, noise: seededNoise(7), checkpoint: false });
    assert.ok(Math.abs(a.loss - b.loss) <= 1e-6 * Math.abs(b.loss), `loss ${a.loss} vs ${b.loss}`);
    const gmax = b.grad.abs().max().item();
    assert.ok(gmax > 0, 'the gradient is not zero');
    assert.ok(a.grad.sub(b.grad).abs().max().item() <= 1e-4 * gmax, 'checkpointed gradient = plain gradient');
    for (const x of [a.grad, a.image, b.grad, b.image]) x.dispose();
  }));

test('the inpainting attack forward (photoguard attack_forward) = inpaint() for the same draws', (t) =>
  withTinyPipeline(t, 'pipeline_inpaint', (sd) => {
    manualSeed(1);
    const image = rand([1, 3, 32, 32]);
    const mask = rand([1, 1, 32, 32]).gt(0.6).to('float32');
    const o = { prompt: '', steps: 3, guidance: 7.5, eta: 1 };
    const ref = inpaint(sd, image, { ...o, mask, noise: seededNoise(11) }).image;
    const { masked } = prepareMask(image, mask);
    const embeds = encodePrompt(sd, '', '', true);
    const r = diffusionLossAndGradient(sd, masked, mask, zeros(masked.shape), embeds, {
      steps: 3,
      guidance: 7.5,
      eta: 1,
      noise: seededNoise(11),
      checkpoint: true,
    });
    const edit = r.image.div(2).add(0.5).clamp(0, 1);
    assert.ok(edit.sub(ref).abs().max().item() < 1e-5, `max |diff| ${edit.sub(ref).abs().max().item()}`);
    r.grad.dispose();
    r.image.dispose();
  }));
