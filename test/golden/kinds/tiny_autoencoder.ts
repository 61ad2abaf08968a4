// kind "tiny_autoencoder": a TAESD-family model from real weights (original taesd files named in
// case.json `weights`); latent of a real photo, its reconstruction, and the latent of flat gray.
// Where the Hugging Face layout of the same weights sits beside them (models/taef2-hf), it must
// give the same numbers.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadSafetensors } from '../../../src/io/tensors.js';
import { AutoencoderTiny } from '../../../src/models/autoencoder-tiny.js';
import { loadAutoencoderFromPath } from '../../../src/models/load.js';
import { full, noGrad, scope, type Tensor } from '../../../src/torch/index.js';
import { assertClose, toleranceFor } from '../compare.js';
import type { CaseRunner } from './types.js';

function check(model: AutoencoderTiny, io: Map<string, Tensor>, spec: { tolerances?: Record<string, { atol?: number; rtol?: number }> }, label: string): void {
  noGrad(() => scope(() => {
    const tol = (k: string) => toleranceFor(spec.tolerances as never, k, { atol: 1e-4, rtol: 1e-4 });
    const image = io.get('image')!;
    const latent = model.encode(image);
    if (io.has('latent')) assertClose(latent, io.get('latent')!, tol('latent'), `${label} latent`);
    if (io.has('reconstruction')) assertClose(model.decode(io.get('latent') ?? latent), io.get('reconstruction')!, tol('reconstruction'), `${label} reconstruction`);
    if (io.has('gray_latent')) assertClose(model.encode(full(image.shape, 0.5)), io.get('gray_latent')!, tol('gray_latent'), `${label} gray_latent`);
  }));
}

const run: CaseRunner = async ({ dir, spec }, t) => {
  const io = loadSafetensors(join(dir, 'io.safetensors'));
  try {
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
    await t.test('Hugging Face repo layout (encoder.layers.N / decoder.layers.M)', { skip: existsSync(hf) ? false : `no ${hf}` }, () => {
      const m = loadAutoencoderFromPath(hf);
      try {
        check(m as AutoencoderTiny, io, spec, 'HF layout');
      } finally {
        m.dispose();
      }
    });
  } finally {
    for (const v of io.values()) v.dispose();
  }
};
export default run;
