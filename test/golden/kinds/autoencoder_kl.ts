// kind "autoencoder_kl": AutoencoderKL from config.json + weights.safetensors; encoder output,
// moments, posterior (mean, logvar, std, seeded sample), decode, and photoguard's L2 losses
// with their gradients.
import { join } from 'node:path';
import { loadSafetensors } from '../../../src/io/tensors.js';
import { AutoencoderKL } from '../../../src/models/autoencoder-kl.js';
import { loadAutoencoderFromPath } from '../../../src/models/load.js';
import { Generator, grad, noGrad, scope, type Tensor } from '../../../src/torch/index.js';
import { assertClose, toleranceFor } from '../compare.js';
import type { CaseRunner } from './types.js';

const run: CaseRunner = async ({ dir, spec }, t) => {
  const io = loadSafetensors(join(dir, 'io.safetensors'));
  const vae = loadAutoencoderFromPath(join(dir, 'weights.safetensors')) as AutoencoderKL; // config.json beside it
  const ref = (k: string): Tensor => {
    const v = io.get(k);
    if (v === undefined) throw new Error(`io.safetensors has no '${k}'`);
    return v;
  };
  const has = (k: string) => io.has(k);
  const tol = (k: string) => toleranceFor(spec.tolerances, k);
  const x = ref('x');
  try {
    await t.test('model is an AutoencoderKL', () => {
      if (!(vae instanceof AutoencoderKL)) throw new Error(`loaded ${(vae as object).constructor.name}`);
    });
    await t.test('encoder_out, moments', () => noGrad(() => scope(() => {
      if (has('encoder_out')) assertClose(vae.encoder.forward(x), ref('encoder_out'), tol('encoder_out'), 'encoder_out');
      if (has('moments')) assertClose(vae.moments(x), ref('moments'), tol('moments'), 'moments');
    })));
    await t.test('posterior mean, logvar, std', () => noGrad(() => scope(() => {
      using d = vae.encode(x);
      for (const [k, v] of [['mean', d.mean], ['logvar', d.logvar], ['std', d.std]] as const) if (has(k)) assertClose(v, ref(k), tol(k), k);
    })));
    if (has('sample')) {
      await t.test('seeded posterior sample', () => noGrad(() => scope(() => {
        using d = vae.encode(x);
        const seed = Number(/manual_seed\((\d+)\)/.exec(String(spec.calls?.sample ?? ''))?.[1] ?? 1004);
        assertClose(d.sample(new Generator({ seed })), ref('sample'), tol('sample'), 'sample');
      })));
    }
    await t.test('decode and forward', () => noGrad(() => scope(() => {
      if (has('decoded_mean')) assertClose(vae.decode(ref('mean')), ref('decoded_mean'), tol('decoded_mean'), 'decoded_mean');
      if (has('forward')) assertClose(vae.forward(x), ref('forward'), tol('forward'), 'forward');
    })));
    if (has('loss') && has('z_target')) {
      await t.test("photoguard encoder loss ‖E(x) − z_target‖ and d/dx", () => scope(() => {
        const xg = x.detach().requiresGrad_();
        using d = vae.encode(xg);
        const loss = d.mean.sub(ref('z_target')).norm();
        assertClose(loss.reshape(1), ref('loss'), tol('loss'), 'loss');
        const [g] = grad(loss, [xg]);
        assertClose(g!, ref('grad_x'), tol('grad_x'), 'grad_x');
      }));
    }
    if (has('loss_decode') && has('img_target')) {
      await t.test('decoder loss and d/dz', () => scope(() => {
        const z = ref('mean').detach().requiresGrad_();
        const loss = vae.decode(z).sub(ref('img_target')).norm();
        assertClose(loss.reshape(1), ref('loss_decode'), tol('loss_decode'), 'loss_decode');
        const [g] = grad(loss, [z]);
        assertClose(g!, ref('grad_z_decode'), tol('grad_z_decode'), 'grad_z_decode');
      }));
    }
  } finally {
    vae.dispose();
    for (const v of io.values()) v.dispose();
  }
};
export default run;
