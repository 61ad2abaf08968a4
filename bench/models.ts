/**
 * The encoders the step benches attack: the SD1.5-size AutoencoderKL with the seeded weights of
 * golden seeded_sd15_vae_encoder (real config, full model loaded as the CLI does), and TAEF2 with
 * its real weights from ../shared/models.
 */
import { klEncoder, tinyEncoder, type ImageEncoder } from '../src/attacks/encoder.js';
import { AutoencoderKL } from '../src/models/autoencoder-kl.js';
import { AutoencoderTiny } from '../src/models/autoencoder-tiny.js';
import { loadAutoencoderFromPath } from '../src/models/load.js';
import { seededModel } from '../test/helpers/seeded-weights.js';
import { sharedFile } from './harness.js';

export interface Loaded {
  enc: ImageEncoder;
  dispose: () => void;
  loadS: number;
}

export function sd15(): Loaded | { skipped: string } {
  const dir = sharedFile('golden', 'manifest_sd15_vae');
  if ('skipped' in dir) return dir;
  const t0 = Date.now();
  const vae = seededModel(dir.path, (config) => new AutoencoderKL(config));
  return {
    enc: klEncoder(vae, 'SD1.5 AutoencoderKL (seeded)'),
    dispose: () => vae.dispose(),
    loadS: (Date.now() - t0) / 1000,
  };
}

export function taef2(): Loaded | { skipped: string } {
  const f = sharedFile('models', 'taef2_encoder.safetensors');
  if ('skipped' in f) return f;
  const t0 = Date.now();
  const m = loadAutoencoderFromPath(f.path);
  if (!(m instanceof AutoencoderTiny))
    throw new Error(`${f.path} loaded as ${m.constructor.name}, expected AutoencoderTiny`);
  return { enc: tinyEncoder(m, 'TAEF2'), dispose: () => m.dispose(), loadS: (Date.now() - t0) / 1000 };
}
