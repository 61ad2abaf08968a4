// kind "diffusion_attack": photoguard's super_l2 / super_linf through the tiny inpainting
// pipeline, replaying the recorded global-RNG draws of every forward pass. Each pass's decoded
// image and masked gradient is compared with the reference, then the losses and the result.
import assert from 'node:assert/strict';
import { join, resolve } from 'node:path';
import { diffusionAttack, diffusionLossAndGradient } from '../../../src/attacks/diffusion.js';
import { loadSafetensors } from '../../../src/io/tensors.js';
import { loadStableDiffusionFromPath } from '../../../src/pipelines/components.js';
import { encodePrompt } from '../../../src/pipelines/generate.js';
import { replayNoise } from '../../../src/pipelines/noise.js';
import { noGrad, scope, zeros, type Tensor } from '../../../src/torch/index.js';
import { assertClose, closeness } from '../compare.js';
import type { CaseRunner } from './types.js';

const pad2 = (i: number) => String(i).padStart(2, '0');

const run: CaseRunner = async ({ dir, spec }, t) => {
  const io = loadSafetensors(join(dir, 'io.safetensors'));
  const ref = (k: string): Tensor => {
    const v = io.get(k);
    if (v === undefined) throw new Error(`io.safetensors has no '${k}'`);
    return v;
  };
  const pipelineDir = resolve(dir, String(spec.pipeline).split(' ')[0]!);
  const sd = loadStableDiffusionFromPath(pipelineDir);
  const f = spec.forward;
  const X = ref('cur_masked_image');
  const mask = ref('cur_mask');
  try {
    for (const [name, v] of Object.entries(spec.variants as Record<string, any>)) { // eslint-disable-line @typescript-eslint/no-explicit-any
      await t.test(`${name} (${v.function})`, () => scope(() => {
        const tw = v.tolerances_from_float64_twin;
        const noise = replayNoise(v.random_draws.map((d: { name: string }) => ref(d.name)));
        const losses: number[] = [];
        const r = diffusionAttack(sd, X, mask, {
          eps: v.eps, stepSize: v.step_size, steps: v.iters, norm: name === 'l2' ? 'l2' : 'linf', schedule: 'constant',
          denoiseSteps: f.num_inference_steps, gradReps: v.grad_reps, guidance: f.guidance_scale, eta: f.eta, prompt: '', noise,
          onPass: (k, image, grad, loss) => {
            losses.push(loss);
            assertClose(image, ref(`${name}.rep_image_${pad2(k)}`), tw.rep_image[k], `${name}.rep_image_${pad2(k)}`);
            assertClose(grad, ref(`${name}.rep_grad_${pad2(k)}`), tw.rep_grad[k], `${name}.rep_grad_${pad2(k)}`);
          },
        });
        assert.equal(noise.used, v.random_draws.length, 'every recorded draw was used, in order');
        v.losses.forEach((want: number, k: number) => assert.ok(Math.abs(losses[k]! - want) <= 1e-4 * Math.abs(want), `loss ${k}: ${losses[k]} vs ${want}`));
        const last = tw.x_adv.at(-1);
        const c = closeness(r.adv, ref(`${name}.result`), last);
        if (name === 'l2') assert.ok(c.ok, `${name}.result: max |diff| ${c.maxAbs}`);
        else {
          // L∞: equal except where sign() of a near-zero gradient flips (then 2·step apart).
          const off = noGrad(() => scope(() => r.adv.sub(ref(`${name}.result`)).abs().gt(1e-5).to('float32').mean().item()));
          assert.ok(off <= 0.01, `${name}.result: ${(off * 100).toFixed(3)}% of entries differ`);
        }
        r.adv.dispose();
      }));
    }
    await t.test('checkpointed and plain back-propagation give the same gradient', () => scope(() => {
      const v = spec.variants.l2;
      const embeds = encodePrompt(sd, '', '', true);
      const target = zeros(X.shape);
      const draws = v.random_draws.slice(0, 2 + f.num_inference_steps).map((d: { name: string }) => ref(d.name));
      const common = { steps: f.num_inference_steps, guidance: f.guidance_scale, eta: f.eta };
      const a = diffusionLossAndGradient(sd, X, mask, target, embeds, { ...common, noise: replayNoise(draws), checkpoint: true });
      const b = diffusionLossAndGradient(sd, X, mask, target, embeds, { ...common, noise: replayNoise(draws), checkpoint: false });
      assert.ok(Math.abs(a.loss - b.loss) <= 1e-6 * Math.abs(b.loss), `loss ${a.loss} vs ${b.loss}`);
      const gmax = b.grad.abs().max().item();
      assertClose(a.grad, b.grad, { atol: 1e-5 * gmax, rtol: 1e-4 }, 'checkpointed gradient');
      for (const x of [a.grad, a.image, b.grad, b.image]) x.dispose();
    }));
  } finally {
    sd.dispose();
    for (const x of io.values()) x.dispose();
  }
};

export default run;
