// The differentiable img2img forward equals the pipeline's output for the same draws, and its
// checkpointed gradient equals plain autograd's (tiny img2img repo of the conformance case).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadStableDiffusionFromPath } from '../../src/pipelines/components.js';
import { img2imgDifferentiable, img2imgLossAndGradient } from '../../src/pipelines/differentiable.js';
import { img2img } from '../../src/pipelines/generate.js';
import { seededNoise } from '../../src/pipelines/noise.js';
import { manualSeed, noGrad, rand, scope, setNumThreads } from '../../src/torch/index.js';
import { sharedPath, skipReason } from '../helpers/shared.js';

setNumThreads(1);
const common = { prompt: 'two men in a wedding', strength: 0.75, steps: 4, guidance: 7.5, eta: 1 };

test('differentiable img2img = img2img() for the same seed; gradients agree with and without checkpointing', (t) => {
  const repo = sharedPath('golden', 'pipeline_img2img');
  if (repo === null) return t.skip(skipReason('golden', 'pipeline_img2img'));
  using sd = loadStableDiffusionFromPath(repo);
  scope(() => {
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
  });
});
