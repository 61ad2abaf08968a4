/**
 * The models a protect request needs, loaded once for a batch: an autoencoder for the encoder
 * attack (and for measuring any method), or an inpainting pipeline for the diffusion attack.
 */
import { asEncoder, tiledEncoder, type ImageEncoder } from '../attacks/encoder.js';
import { DEFAULT_IMMUNIZER } from '../models/defaults.js';
import { loadImmunizer, type ImmunizerNet } from '../models/immunizer.js';
import type { Autoencoder } from '../models/load.js';
import { loadAutoencoder } from '../models/resolve.js';
import { loadStableDiffusion, type StableDiffusion } from '../pipelines/components.js';
import { checkDevice } from '../torch/index.js';
import { ParameterError, type ProtectRequest } from './parameters.js';

export interface ProtectModels extends Disposable {
  /** The autoencoder attacked and measured through (encoder, or noise with a model). */
  autoencoder: Autoencoder | null;
  /** The encoder as the attack sees it (tiled when the request asks). */
  encoder: ImageEncoder | null;
  /** The inpainting pipeline (diffusion). */
  pipeline: StableDiffusion | null;
  /** The model that measures the reconstruction and the checks. */
  readonly measuredBy: Autoencoder | null;
  /** The learned immunizer G (method learned, or start learned); null otherwise. */
  immunizer?: ImmunizerNet | null;
}

/** Whether a request runs the learned immunizer (alone, or as PGD's start). */
export function usesImmunizer(r: Pick<ProtectRequest, 'method' | 'start'>): boolean {
  return r.method === 'learned' || r.start === 'learned';
}

/** Loads what `r` needs; the learned immunizer comes from `immunizerPath` (default: the shipped weights). */
export async function loadProtectModels(r: ProtectRequest, immunizerPath = DEFAULT_IMMUNIZER): Promise<ProtectModels> {
  const immunizer = usesImmunizer(r) ? loadImmunizer(immunizerPath) : null;
  try {
    const m = await loadModels(r);
    if (immunizer === null) return m;
    return {
      ...m,
      immunizer,
      [Symbol.dispose]: () => {
        m[Symbol.dispose]();
        immunizer.dispose();
      },
    };
  } catch (e) {
    immunizer?.dispose();
    throw e;
  }
}

/** Loads the models `r.model` names (a repo id, folder or file). */
async function loadModels(r: ProtectRequest): Promise<ProtectModels> {
  const device = checkDevice(r.device);
  const variant = r.fp16 ? ('fp16' as const) : undefined;
  if (r.method === 'diffusion') {
    const sd = await loadStableDiffusion(r.model!, { device, variant });
    if (sd.unet.config.in_channels !== 2 * sd.vae.config.latent_channels + 1) {
      sd.dispose();
      throw new ParameterError(
        'model',
        `{method} diffusion needs an inpainting pipeline (9-channel UNet); ${r.model} has ${sd.unet.config.in_channels} input channels`,
      );
    }
    return { autoencoder: null, encoder: null, pipeline: sd, measuredBy: sd.vae, [Symbol.dispose]: () => sd.dispose() };
  }
  if (r.model === null)
    return { autoencoder: null, encoder: null, pipeline: null, measuredBy: null, [Symbol.dispose]: () => {} };
  const model = await loadAutoencoder(r.model, { device, variant });
  if (r.tile !== null && r.tile % (4 * model.downscale) !== 0) {
    model.dispose();
    throw new ParameterError(
      'tile',
      `{tile}: ${r.tile} must be a multiple of ${4 * model.downscale} for this model (4 × its downscale factor ${model.downscale})`,
    );
  }
  const encoder =
    r.tile === null
      ? asEncoder(model)
      : tiledEncoder(asEncoder(model), model.downscale, { tile: r.tile, overlap: r.tile / 4 });
  return { autoencoder: model, encoder, pipeline: null, measuredBy: model, [Symbol.dispose]: () => model.dispose() };
}
