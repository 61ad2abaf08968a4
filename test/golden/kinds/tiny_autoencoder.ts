// kind "tiny_autoencoder": a TAESD-family model from real weights (original taesd files named in
// case.json `weights`); latent of a real photo, its reconstruction, and the latent of flat gray.
// Where the Hugging Face layout of the same weights sits beside them (models/taef2-hf), it must
// give the same numbers.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { AutoencoderTiny } from '../../../src/models/autoencoder-tiny.js';
import { loadAutoencoderFromPath } from '../../../src/models/load.js';
import { full, noGrad, scope } from '../../../src/torch/index.js';
import { assertClose, toleranceFor } from '../compare.js';
import { caseTensors, declaredOutputs, type CaseTensors } from '../io.js';
import type { CaseRunner } from './types.js';

/** Compares every output case.json gives a tolerance for; ref() fails on one io.safetensors lacks. */
function check(
  model: AutoencoderTiny,
  io: CaseTensors,
  spec: { tolerances?: Record<string, { atol?: number; rtol?: number }> },
  label: string,
): void {
  const wanted = declaredOutputs(spec, ['latent', 'reconstruction', 'gray_latent']);
  noGrad(() =>
    scope(() => {
      const tol = (k: string) => toleranceFor(spec.tolerances as never, k, { atol: 1e-4, rtol: 1e-4 });
      const image = io.ref('image');
      const latent = model.encode(image);
      if (wanted.has('latent')) assertClose(latent, io.ref('latent'), tol('latent'), `${label} latent`);
      if (wanted.has('reconstruction'))
        assertClose(
          model.decode(io.has('latent') ? io.ref('latent') : latent),
          io.ref('reconstruction'),
          tol('reconstruction'),
          `${label} reconstruction`,
        );
      if (wanted.has('gray_latent'))
        assertClose(
          model.encode(full(image.shape, 0.5)),
          io.ref('gray_latent'),
          tol('gray_latent'),
          `${label} gray_latent`,
        );
    }),
  );
}

const run: CaseRunner = async ({ dir, spec }, t) => {
  using io = caseTensors(dir);
  const enc = resolve(dir, String(spec.weights?.encoder));
  if (!existsSync(enc)) {
    t.skip(`real weights not found: ${enc}`);
    return;
  }
  await t.test('original taesd files (encoder + decoder)', () => {
    const m = loadAutoencoderFromPath(enc);
    try {
      if (!(m instanceof AutoencoderTiny)) throw new Error('not recognised as a TAESD-family model');
      check(m, io, spec, 'original layout');
    } finally {
      m.dispose();
    }
  });
  const hf = resolve(dir, String(spec.weights.encoder), '..', 'taef2-hf');
  await t.test(
    'Hugging Face repo layout (encoder.layers.N / decoder.layers.M)',
    { skip: existsSync(hf) ? false : `no ${hf}` },
    () => {
      const m = loadAutoencoderFromPath(hf);
      try {
        check(m as AutoencoderTiny, io, spec, 'HF layout');
      } finally {
        m.dispose();
      }
    },
  );
};
export default run;
