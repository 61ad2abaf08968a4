// kind "encoder_attack": photoguard's notebook pgd() and the paper's Algorithm 1 against an
// image encoder. Sign-PGD amplifies float noise (a gradient entry near 0 may take either sign),
// so each step is checked from the stored previous iterate (teacher forcing), then the full
// run loosely, as the case's how_to_compare prescribes.
import assert from 'node:assert/strict';
import { join, resolve } from 'node:path';
import { algorithm1, algorithm1Step } from '../../../src/attacks/algorithm1.js';
import { tinyEncoder, type ImageEncoder } from '../../../src/attacks/encoder.js';
import { pgd, pgdWithGradient, stepSizeAt, type PgdOptions } from '../../../src/attacks/pgd.js';
import { AutoencoderKL } from '../../../src/models/autoencoder-kl.js';
import { AutoencoderTiny } from '../../../src/models/autoencoder-tiny.js';
import { loadAutoencoderFromPath } from '../../../src/models/load.js';
import { getNumThreads, grad, noGrad, scope, setNumThreads, type Tensor } from '../../../src/torch/index.js';
import { assertClose, closeness } from '../compare.js';
import { caseTensors, type CaseTensors } from '../io.js';
import type { CaseRunner } from './types.js';

const pad = (i: number) => String(i).padStart(2, '0');

/** Fraction of entries where |a − b| > atol. */
function fractionDiffering(a: Tensor, b: Tensor, atol: number): number {
  return noGrad(() => scope(() => a.sub(b).abs().gt(atol).to('float32').mean().item()));
}

function meanAbsDiff(a: Tensor, b: Tensor): number {
  return noGrad(() => scope(() => a.sub(b).abs().mean().item()));
}

/** Where the gradient signs differ (1) or agree (0). */
function signFlips(a: Tensor, b: Tensor): Tensor {
  return noGrad(() => scope(() => a.sign().ne(b.sign()).to('float32')));
}

/** The number in a prose tolerance such as "1e-4 * max|grad_i|" or "equal (atol 1e-6) …"; fails when there is none. */
function numberIn(text: unknown, pattern: RegExp, what: string): number {
  const m = pattern.exec(String(text));
  const v = m === null ? NaN : Number(m[1]);
  assert.ok(Number.isFinite(v), `case.json ${what}: cannot read a number from '${String(text)}'`);
  return v;
}

/** The case's teacher-forced and full-run tolerances, read as written (no defaults). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
function tolerancesOf(spec: any) {
  const tf = spec.tolerances.teacher_forced;
  const fr = spec.tolerances.full_run;
  return {
    lossRtol: numberIn(tf.loss_i.rtol, /^([\d.e+-]+)$/, 'loss_i.rtol'),
    gradOfMax: numberIn(tf.grad_i.atol, /^([\d.e+-]+)\s*\*\s*max/, 'grad_i.atol'),
    iterateAtol: numberIn(tf.iterate_i, /atol ([\d.e+-]+)/, 'iterate_i'),
    flipFactor: numberIn(tf.iterate_i, /rate below, x(\d+)/, 'iterate_i'),
    runLossRtol: numberIn(fr.losses.rtol, /^([\d.e+-]+)$/, 'full_run.losses.rtol'),
    advAtol: numberIn(fr.adv, /max \|diff\| <= ([\d.e+-]+)/, 'full_run.adv'),
    advShare: numberIn(fr.adv, /on >= ([\d.]+)% of entries/, 'full_run.adv') / 100,
  };
}

/**
 * The iterate check as case.json words it: equal within atol except on entries where the
 * gradient sign differs from the reference's, and those flips no more frequent than `factor`×
 * the reference's own float32-vs-float64 disagreement rate at that step.
 */
function assertIterate(
  got: Tensor,
  want: Tensor,
  flips: Tensor,
  atol: number,
  maxFlipRate: number,
  label: string,
): number {
  return noGrad(() =>
    scope(() => {
      const off = got.sub(want).abs().gt(atol).to('float32');
      const unexplained = off.mul(flips.neg().add(1)).sum().item();
      assert.equal(
        unexplained,
        0,
        `${label}: ${unexplained} entries differ by > ${atol} where the gradient signs agree`,
      );
      const rate = flips.mean().item();
      assert.ok(
        rate <= maxFlipRate,
        `${label}: the gradient sign differs on ${(rate * 100).toFixed(4)}% of entries — allowed ${(maxFlipRate * 100).toFixed(4)}%`,
      );
      return off.mean().item();
    }),
  );
}

/**
 * The notebook's image in photoguard's memory layout. prepare_mask_and_masked_image builds it
 * with numpy's `image[None].transpose(0, 3, 1, 2)` and `torch.from_numpy`, which keeps NHWC
 * strides, and every later elementwise op preserves them: the reference VAE ran its convolutions
 * and group norms on channels-last tensors. libtorch 1.13's CPU kernels give a different float32
 * result for that layout once the background is exactly 0 (iterations ≥ 1; its channels-last
 * group norm is the imprecise one: on a 128-channel activation with a constant background, max
 * error 1.1e-4 against float64 where the contiguous kernel has 8e-7). Measured at the
 * stored iterates, the reference loss is 1.6–1.9e-5 (relative) above and its gradient 0.8–1.2e-3·max
 * from a float64 evaluation, while the same VAE on contiguous input is within 1.6e-7 and
 * 2.4e-6·max of float64; fed channels-last, it reproduces the reference within 3e-7 and
 * 1.8e-5·max. A copy with permuted strides has the same values, and its gradient is exact.
 */
function photoguardLayout(x: Tensor): Tensor {
  return x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2);
}

/**
 * A full run as the case's full_run tolerances say: every loss within rtol, and at least the
 * given share of the result's entries within atol. Disposes `r.adv`; returns that share.
 */
function assertFullRun(
  r: { losses: number[]; adv: Tensor },
  losses: Tensor,
  adv: Tensor,
  tol: ReturnType<typeof tolerancesOf>,
  whose: string,
): number {
  r.losses.forEach((l, i) => {
    const w = losses.select(0, i).item();
    assert.ok(Math.abs(l - w) <= tol.runLossRtol * Math.abs(w), `loss ${i}: ${l} vs ${w}`);
  });
  const close = 1 - fractionDiffering(r.adv, adv, tol.advAtol);
  r.adv.dispose();
  assert.ok(
    close >= tol.advShare,
    `only ${(close * 100).toFixed(2)}% of entries within ${tol.advAtol} of ${whose}'s result`,
  );
  return close;
}

const run: CaseRunner = async ({ dir, spec }, t) => {
  using io = caseTensors(dir);
  if (spec.notebook_pgd !== undefined) await notebookAndAlgorithm1(dir, spec, io, t);
  else if (spec.attack !== undefined) await tinyAttack(dir, spec, io.ref, t);
  else throw new Error('encoder_attack: case.json has neither notebook_pgd nor attack');
};

type Ref = (k: string) => Tensor;
type T = Parameters<CaseRunner>[1];

// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function notebookAndAlgorithm1(dir: string, spec: any, io: CaseTensors, t: T): Promise<void> {
  const { ref } = io;
  const tol = tolerancesOf(spec);
  const vae = loadAutoencoderFromPath(join(resolve(dir, spec.model.dir), 'weights.safetensors'));
  assert.ok(vae instanceof AutoencoderKL, 'the attack_encoder model is an AutoencoderKL');
  // The notebook attacks E on [-1, 1] directly; Algorithm 1 works on [0, 1] pixels (E sees 2x − 1).
  const encPm1: ImageEncoder = {
    name: 'vae[-1,1]',
    encode01: (x) =>
      scope(() => {
        using d = vae.encode(x);
        return d.mean.alias();
      }),
  };
  const enc01: ImageEncoder = { name: 'vae[0,1]', encode01: (x) => encPm1.encode01(x.mul(2).sub(1)) };
  const nb = spec.notebook_pgd;
  const iters: number = nb.iters;
  const X = ref('X');
  const mask = ref('perturb_mask');
  const target = ref('target_latent');
  const lossFn = (xa: Tensor) => encPm1.encode01(photoguardLayout(xa)).sub(target).norm();
  const options: PgdOptions = {
    eps: nb.eps,
    stepSize: nb.step_size,
    steps: iters,
    schedule: 'linear-decay',
    range: nb.clamp,
    mask,
    projectStart: false,
  };
  const sched = { stepSize: nb.step_size, steps: iters, schedule: 'linear-decay' as const };
  const flipRates = spec.robustness.teacher_forced_sign_disagreement_f32_vs_f64_per_iteration;
  // The reference ran on 1 thread, and the channels-last group norm's float32 result depends on
  // the thread count (measured with 2 threads: loss_1 2.2e-5 below the reference).
  const threads = getNumThreads();
  setNumThreads(1);
  try {
    // The notebook's target_latent is used as stored (an input); the recomputable target is
    // Algorithm 1's z_targ = E(gray), checked here.
    if (io.has('z_targ_algorithm1')) {
      await t.test('target latent E(gray)', () =>
        noGrad(() =>
          scope(() => {
            assertClose(
              enc01.encode01(X.mul(0).add(0.5)),
              ref('z_targ_algorithm1'),
              { atol: 1e-5, rtol: 1e-4 },
              'z_targ_algorithm1',
            );
          }),
        ),
      );
    }
    await t.test('notebook pgd, one step at a time from the stored iterate', () => {
      const rates: number[] = [];
      for (let i = 0; i < iters; i++) {
        scope(() => {
          const prev = i === 0 ? X.add(ref('start_noise')) : ref(`notebook.x_adv_${pad(i - 1)}`);
          // Loss and gradient at the stored iterate.
          const xa = prev.detach().requiresGrad_();
          const loss = lossFn(xa);
          const [g] = grad(loss, [xa]);
          const want = ref('losses_notebook').select(0, i).item();
          assert.ok(
            Math.abs(loss.item() - want) <= tol.lossRtol * Math.abs(want),
            `loss_${i}: ${loss.item()} vs ${want} (rtol ${tol.lossRtol})`,
          );
          const gRef = ref(`notebook.grad_${pad(i)}`);
          assertClose(g!, gRef, { atol: tol.gradOfMax * gRef.abs().max().item(), rtol: 0 }, `grad_${i}`);
          // One pgd() step from there along this gradient, with the schedule's step size of iteration i.
          const size = stepSizeAt(sched, i);
          assert.ok(Math.abs(size - ref('step_sizes_notebook').select(0, i).item()) < 1e-9, `step size ${i}`);
          const r = pgdWithGradient(X, () => ({ loss: loss.item(), grad: g!.clone() }), {
            ...options,
            steps: 1,
            schedule: 'constant',
            stepSize: size,
            startNoise: prev.sub(X),
          });
          rates.push(
            assertIterate(
              r.adv,
              ref(`notebook.x_adv_${pad(i)}`),
              signFlips(g!, gRef),
              tol.iterateAtol,
              tol.flipFactor * flipRates.notebook[i],
              `x_adv_${i}`,
            ),
          );
          r.adv.dispose();
        });
      }
      t.diagnostic(
        `notebook teacher-forced: fraction of iterate entries off by > ${tol.iterateAtol} per step: ${rates.map((r) => r.toExponential(1)).join(' ')}`,
      );
    });
    await t.test('notebook pgd, full run', () =>
      scope(() => {
        const r = pgd(X, lossFn, { ...options, startNoise: ref('start_noise') });
        const close = assertFullRun(r, ref('losses_notebook'), ref('adv_notebook'), tol, 'the notebook');
        t.diagnostic(`notebook full run: ${(close * 100).toFixed(2)}% of entries within ${tol.advAtol}`);
      }),
    );
    if (spec.algorithm1 !== undefined && io.has('x01')) {
      const a1 = spec.algorithm1;
      const x01 = ref('x01');
      const z = ref('z_targ_algorithm1');
      await t.test('Algorithm 1, one step at a time from the stored state', () => {
        for (let n = 0; n < a1.iters; n++) {
          scope(() => {
            const state =
              n === 0
                ? { xIm: x01, delta: x01.mul(0) }
                : { xIm: ref(`algorithm1.x_im_${pad(n - 1)}`), delta: ref(`algorithm1.delta_${pad(n - 1)}`) };
            const s = algorithm1Step(enc01, x01, state, z, a1.eps, a1.step_size);
            const want = ref('losses_algorithm1').select(0, n).item();
            assert.ok(Math.abs(s.loss - want) <= tol.lossRtol * Math.abs(want), `loss_${n}: ${s.loss} vs ${want}`);
            const gRef = ref(`algorithm1.grad_${pad(n)}`);
            assertClose(s.grad, gRef, { atol: tol.gradOfMax * gRef.abs().max().item(), rtol: 0 }, `grad_${n}`);
            const flips = signFlips(s.grad, gRef);
            for (const [k, v] of [
              ['delta', s.next.delta],
              ['x_im', s.next.xIm],
            ] as const) {
              assertIterate(
                v,
                ref(`algorithm1.${k}_${pad(n)}`),
                flips,
                tol.iterateAtol,
                tol.flipFactor * flipRates.algorithm1[n],
                `${k}_${n}`,
              );
            }
            s.grad.dispose();
            s.next.delta.dispose();
            s.next.xIm.dispose();
          });
        }
      });
      await t.test('Algorithm 1, full run', () =>
        scope(() => {
          const r = algorithm1(enc01, x01, z, { eps: a1.eps, stepSize: a1.step_size, steps: a1.iters });
          assertFullRun(r, ref('losses_algorithm1'), ref('adv_algorithm1'), tol, 'the reference');
        }),
      );
    }
  } finally {
    setNumThreads(threads);
    vae.dispose();
  }
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function tinyAttack(dir: string, spec: any, ref: Ref, t: T): Promise<void> {
  const model = loadAutoencoderFromPath(resolve(dir, spec.weights.encoder));
  assert.ok(model instanceof AutoencoderTiny, 'a TAESD-family model');
  const a = spec.attack;
  const enc = tinyEncoder(model);
  const x = ref('image');
  const gray = ref('gray_latent');
  try {
    await t.test('gray target latent', () =>
      noGrad(() =>
        scope(() => {
          assertClose(enc.encode01(x.mul(0).add(0.5)), gray, { atol: 1e-4, rtol: 1e-3 }, 'gray_latent');
        }),
      ),
    );
    await t.test('pgd trajectory: losses, adversarial image and its reconstruction', () =>
      scope(() => {
        const lossFn = (xa: Tensor) => enc.encode01(xa).sub(gray).norm();
        const r = pgd(x, lossFn, {
          eps: a.eps,
          stepSize: a.step_size,
          steps: a.iters,
          schedule: 'linear-decay',
          startNoise: ref('attack_start_noise'),
          range: [0, 1],
        });
        const finalLoss = noGrad(() => scope(() => lossFn(r.adv).item()));
        const want = ref('attack_losses');
        [...r.losses, finalLoss].forEach((l, i) => {
          const w = want.select(0, i).item();
          assert.ok(
            Math.abs(l - w) <= (spec.tolerances?.attack_losses?.rtol ?? 1e-3) * Math.abs(w),
            `loss ${i}: ${l} vs ${w}`,
          );
        });
        const linf = noGrad(() => scope(() => r.adv.sub(x).abs().max().item()));
        assert.ok(linf <= a.eps + 1e-6, `L∞ ${linf} within ε ${a.eps}`);
        const mad = meanAbsDiff(r.adv, ref('adv_image'));
        assert.ok(mad < 1e-3, `adv_image mean |diff| ${mad}`);
        const rec = noGrad(() => model.decode(model.encode(r.adv)));
        const madRec = meanAbsDiff(rec, ref('adv_reconstruction'));
        assert.ok(madRec < 2e-3, `adv_reconstruction mean |diff| ${madRec}`);
        t.diagnostic(
          `adv mean |diff| ${mad.toExponential(2)}, reconstruction ${madRec.toExponential(2)}, max |diff| ${closeness(r.adv, ref('adv_image'), { atol: 0, rtol: 0 }).maxAbs.toExponential(2)}`,
        );
        r.adv.dispose();
      }),
    );
  } finally {
    model.dispose();
  }
}

export default run;
