// kind "diffusion_attack": photoguard's super_l2 / super_linf through the tiny inpainting
// pipeline, replaying the recorded global-RNG draws of every forward pass. Each iteration is
// checked from the stored previous iterate (its passes' decoded images, gradients and losses,
// the averaged gradient and the next iterate), then the full run; every bound is case.json's
// `tolerances`.
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { diffusionAttack, diffusionLossAndGradient } from '../../../src/attacks/diffusion.js';
import { loadStableDiffusionFromPath } from '../../../src/pipelines/components.js';
import { encodePrompt } from '../../../src/pipelines/generate.js';
import { replayNoise } from '../../../src/pipelines/noise.js';
import { keep, noGrad, scope, zeros, type Tensor } from '../../../src/torch/index.js';
import { assertClose, type Tolerance } from '../compare.js';
import { caseTensors } from '../io.js';
import type { CaseRunner } from './types.js';

const pad2 = (i: number) => String(i).padStart(2, '0');

/** rep_grad's note: "compare relative to max|grad|" — rtol scales the reference's largest entry. */
function gradTolerance(t: { atol: number; rtol: number }, want: Tensor): Tolerance {
  return { atol: t.atol + t.rtol * want.abs().max().item(), rtol: 0 };
}

/** Where the gradient signs differ (1) or agree (0). */
function signFlips(a: Tensor, b: Tensor): Tensor {
  return noGrad(() => scope(() => a.sign().ne(b.sign()).to('float32')));
}

/**
 * case.json's L∞ rule: "equal except where sign() of a near-zero gradient flips; then differs
 * by 2*step_size". Equal is read as within 1e-6 (float32 rounding of x + δ − x).
 */
function assertLinfIterate(got: Tensor, want: Tensor, flips: Tensor, step: number, label: string): number {
  return noGrad(() =>
    scope(() => {
      const diff = got.sub(want).abs();
      const off = diff.gt(1e-6).to('float32');
      const unexplained = off.mul(flips.neg().add(1)).sum().item();
      assert.equal(unexplained, 0, `${label}: ${unexplained} entries differ by > 1e-6 where the gradient signs agree`);
      const worst = diff.max().item();
      assert.ok(worst <= 2 * step + 1e-6, `${label}: an entry differs by ${worst} (> 2·step ${2 * step})`);
      return off.sum().item();
    }),
  );
}

const run: CaseRunner = async ({ dir, spec }, t) => {
  using io = caseTensors(dir);
  const { ref } = io;
  const sd = loadStableDiffusionFromPath(resolve(dir, String(spec.pipeline).split(' ')[0]!));
  const f = spec.forward;
  const tol = spec.tolerances;
  const X = ref('cur_masked_image');
  const mask = ref('cur_mask');
  const drawsPerPass = 2 + f.num_inference_steps; // latents, posterior noise, one per DDIM step
  try {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    for (const [name, v] of Object.entries(spec.variants as Record<string, any>)) {
      const reps: number = v.grad_reps;
      const draws = (from: number, to: number): Tensor[] =>
        v.random_draws.slice(from, to).map((d: { name: string }) => ref(d.name));
      /** Checks one forward pass k against the reference; returns nothing the caller owns. */
      const checkPass = (k: number, image: Tensor, grad: Tensor, loss: number) => {
        assertClose(image, ref(`${name}.rep_image_${pad2(k)}`), tol.rep_image, `${name}.rep_image_${pad2(k)}`);
        const want = ref(`${name}.rep_grad_${pad2(k)}`);
        assertClose(grad, want, gradTolerance(tol.rep_grad, want), `${name}.rep_grad_${pad2(k)}`);
        assert.ok(
          Math.abs(loss - v.losses[k]) <= tol.losses.rtol * Math.abs(v.losses[k]),
          `${name} loss ${k}: ${loss} vs ${v.losses[k]}`,
        );
      };
      /** Runs `steps` iterations from `start` replaying `noise`; collects each iteration's mean gradient. */
      const attack = (start: Tensor, steps: number, firstPass: number, noise: Tensor[]) => {
        const replay = replayNoise(noise);
        const means: Tensor[] = [];
        let sum: Tensor | null = null;
        let pass = 0;
        const r = diffusionAttack(sd, X, mask, {
          eps: v.eps,
          stepSize: v.step_size,
          steps,
          norm: name === 'l2' ? 'l2' : 'linf',
          schedule: 'constant',
          denoiseSteps: f.num_inference_steps,
          gradReps: reps,
          guidance: f.guidance_scale,
          eta: f.eta,
          prompt: '',
          noise: replay,
          startNoise: noGrad(() => start.sub(X)),
          onPass: (k, image, grad, loss) => {
            checkPass(firstPass + k, image, grad, loss);
            sum = noGrad(() => keep(sum === null ? grad.clone() : sum.add(grad)));
            if (++pass % reps === 0) {
              means.push(noGrad(() => keep(sum!.div(reps))));
              sum = null;
            }
          },
        });
        assert.equal(replay.used, noise.length, 'every recorded draw was used, in order');
        return { adv: r.adv, means };
      };
      /** An iterate against the stored one (`key`), by the case's rule for this norm. */
      const checkIterate = (got: Tensor, key: string, flips: Tensor) => {
        if (name === 'l2') assertClose(got, ref(key), { atol: tol['x_adv (l2)'].atol, rtol: 0 }, key);
        else
          t.diagnostic(
            `${key}: ${assertLinfIterate(got, ref(key), flips, v.step_size, key)} entries moved by a sign flip`,
          );
      };
      await t.test(`${name} (${v.function}), one iteration at a time from the stored iterate`, () => {
        for (let i = 0; i < v.iters; i++)
          scope(() => {
            const per = reps * drawsPerPass;
            const start = i === 0 ? X : ref(`${name}.x_adv_${i - 1}`);
            const { adv, means } = attack(start, 1, i * reps, draws(i * per, (i + 1) * per));
            const gRef = ref(`${name}.grad_${i}`);
            assertClose(means[0]!, gRef, gradTolerance(tol.rep_grad, gRef), `${name}.grad_${i}`);
            checkIterate(adv, `${name}.x_adv_${i}`, signFlips(means[0]!, gRef));
            for (const x of [adv, ...means]) x.dispose();
          });
      });
      await t.test(`${name} (${v.function}), full run`, () =>
        scope(() => {
          const { adv, means } = attack(X, v.iters, 0, draws(0, v.random_draws.length));
          means.forEach((m, i) =>
            assertClose(
              m,
              ref(`${name}.grad_${i}`),
              gradTolerance(tol.rep_grad, ref(`${name}.grad_${i}`)),
              `${name} run grad_${i}`,
            ),
          );
          // A flip at any iteration may move an entry; the result is otherwise equal.
          const flips = noGrad(() =>
            means.map((m, i) => signFlips(m, ref(`${name}.grad_${i}`))).reduce((a, b) => a.maximum(b)),
          );
          checkIterate(adv, `${name}.result`, flips);
          for (const x of [adv, ...means]) x.dispose();
        }),
      );
    }
    await t.test('checkpointed and plain back-propagation give the same gradient', () =>
      scope(() => {
        const v = spec.variants.l2;
        const embeds = encodePrompt(sd, '', '', true);
        const target = zeros(X.shape);
        const draws = v.random_draws.slice(0, drawsPerPass).map((d: { name: string }) => ref(d.name));
        const common = { steps: f.num_inference_steps, guidance: f.guidance_scale, eta: f.eta };
        const a = diffusionLossAndGradient(sd, X, mask, target, embeds, {
          ...common,
          noise: replayNoise(draws),
          checkpoint: true,
        });
        const b = diffusionLossAndGradient(sd, X, mask, target, embeds, {
          ...common,
          noise: replayNoise(draws),
          checkpoint: false,
        });
        assert.ok(Math.abs(a.loss - b.loss) <= 1e-6 * Math.abs(b.loss), `loss ${a.loss} vs ${b.loss}`);
        const gmax = b.grad.abs().max().item();
        assertClose(a.grad, b.grad, { atol: 1e-5 * gmax, rtol: 1e-4 }, 'checkpointed gradient');
        for (const x of [a.grad, a.image, b.grad, b.image]) x.dispose();
      }),
    );
  } finally {
    sd.dispose();
  }
};

export default run;
