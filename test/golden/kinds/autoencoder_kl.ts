// kind "autoencoder_kl": AutoencoderKL from config.json + weights.safetensors; encoder output,
// moments, posterior (mean, logvar, std, seeded sample), decode, and photoguard's L2 losses
// with their gradients. Every output case.json gives a tolerance for is compared; one missing
// from io.safetensors fails.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { AutoencoderKL } from '../../../src/models/autoencoder-kl.js';
import { loadAutoencoderFromPath } from '../../../src/models/load.js';
import { Generator, grad, noGrad, scope } from '../../../src/torch/index.js';
import { assertClose, toleranceFor } from '../compare.js';
import { caseTensors, declaredOutputs } from '../io.js';
import type { CaseRunner } from './types.js';

const OUTPUTS = [
  'encoder_out',
  'moments',
  'mean',
  'logvar',
  'std',
  'sample',
  'decoded_mean',
  'forward',
  'loss',
  'grad_x',
  'loss_decode',
  'grad_z_decode',
] as const;

const run: CaseRunner = async ({ dir, spec }, t) => {
  using io = caseTensors(dir);
  const { ref } = io;
  const wanted = declaredOutputs(spec, OUTPUTS);
  const want = (...ks: string[]) => ks.some((k) => wanted.has(k));
  const tol = (k: string) => toleranceFor(spec.tolerances, k);
  const vae = loadAutoencoderFromPath(join(dir, 'weights.safetensors')); // config.json beside it
  try {
    assert.ok(vae instanceof AutoencoderKL, `loaded ${(vae as object).constructor.name}, not an AutoencoderKL`);
    const x = ref('x');
    if (want('encoder_out', 'moments')) {
      await t.test('encoder_out, moments', () =>
        noGrad(() =>
          scope(() => {
            if (wanted.has('encoder_out'))
              assertClose(vae.encoder.forward(x), ref('encoder_out'), tol('encoder_out'), 'encoder_out');
            if (wanted.has('moments')) assertClose(vae.moments(x), ref('moments'), tol('moments'), 'moments');
          }),
        ),
      );
    }
    if (want('mean', 'logvar', 'std')) {
      await t.test('posterior mean, logvar, std', () =>
        noGrad(() =>
          scope(() => {
            using d = vae.encode(x);
            for (const [k, v] of [
              ['mean', d.mean],
              ['logvar', d.logvar],
              ['std', d.std],
            ] as const)
              if (wanted.has(k)) assertClose(v, ref(k), tol(k), k);
          }),
        ),
      );
    }
    if (want('sample')) {
      await t.test('seeded posterior sample', () =>
        noGrad(() =>
          scope(() => {
            using d = vae.encode(x);
            const seed = Number(/manual_seed\((\d+)\)/.exec(String(spec.calls?.sample ?? ''))?.[1] ?? 1004);
            assertClose(d.sample(new Generator({ seed })), ref('sample'), tol('sample'), 'sample');
          }),
        ),
      );
    }
    if (want('decoded_mean', 'forward')) {
      await t.test('decode and forward', () =>
        noGrad(() =>
          scope(() => {
            if (wanted.has('decoded_mean'))
              assertClose(vae.decode(ref('mean')), ref('decoded_mean'), tol('decoded_mean'), 'decoded_mean');
            if (wanted.has('forward')) assertClose(vae.forward(x), ref('forward'), tol('forward'), 'forward');
          }),
        ),
      );
    }
    if (want('loss', 'grad_x')) {
      await t.test('photoguard encoder loss ‖E(x) − z_target‖ and d/dx', () =>
        scope(() => {
          const xg = x.detach().requiresGrad_();
          using d = vae.encode(xg);
          const loss = d.mean.sub(ref('z_target')).norm();
          assertClose(loss.reshape(1), ref('loss'), tol('loss'), 'loss');
          const [g] = grad(loss, [xg]);
          assertClose(g!, ref('grad_x'), tol('grad_x'), 'grad_x');
        }),
      );
    }
    if (want('loss_decode', 'grad_z_decode')) {
      await t.test('decoder loss and d/dz', () =>
        scope(() => {
          const z = ref('mean').detach().requiresGrad_();
          const loss = vae.decode(z).sub(ref('img_target')).norm();
          assertClose(loss.reshape(1), ref('loss_decode'), tol('loss_decode'), 'loss_decode');
          const [g] = grad(loss, [z]);
          assertClose(g!, ref('grad_z_decode'), tol('grad_z_decode'), 'grad_z_decode');
        }),
      );
    }
  } finally {
    vae.dispose();
  }
};
export default run;
