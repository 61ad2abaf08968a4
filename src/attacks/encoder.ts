/**
 * The encoder attack (Salman et al. 2023, §3.1, Algorithm 1): find δ within the budget so that
 * the image encoder maps x + δ close to a target latent, min ‖E(x + δ) − z_target‖₂, with
 * z_target = E(gray). Works on any autoencoder (SD's VAE, the TAESD family) and on an ensemble
 * (the sum of each encoder's loss divided by its loss at the clean image, so no model dominates).
 */
import { ArgumentError } from '../errors.js';
import { AutoencoderKL } from '../models/autoencoder-kl.js';
import { AutoencoderTiny } from '../models/autoencoder-tiny.js';
import { full, noGrad, scope, zeros, keep, withPrecision, type Precision, type Tensor } from '../torch/index.js';
import { tiled, type TileOptions } from '../models/tiling.js';
import { asImageAutoencoder, type ImageEncoder } from '../models/image-autoencoder.js';
import { pgd, type PgdOptions, type PgdResult } from './pgd.js';

export type { ImageEncoder } from '../models/image-autoencoder.js';

/** SD's VAE as an encoder: photoguard attacks the posterior mean, unscaled (no 0.18215), of 2x − 1. */
export function klEncoder(vae: AutoencoderKL, name = 'AutoencoderKL'): ImageEncoder {
  return { name, encode01: asImageAutoencoder(vae).encode01 };
}

/** TAESD family: images are already in [0, 1]. */
export function tinyEncoder(taesd: AutoencoderTiny, name = 'AutoencoderTiny'): ImageEncoder {
  return { name, encode01: asImageAutoencoder(taesd).encode01 };
}

export function asEncoder(model: AutoencoderKL | AutoencoderTiny | ImageEncoder): ImageEncoder {
  if (model instanceof AutoencoderKL) return klEncoder(model);
  if (model instanceof AutoencoderTiny) return tinyEncoder(model);
  return model;
}

/**
 * Encodes in overlapping tiles (for images too large to encode at once). Normalisation layers
 * see per-tile statistics, so the latent differs slightly from an untiled encode (docs/models.md).
 */
export function tiledEncoder(enc: ImageEncoder, downscale: number, o: TileOptions): ImageEncoder {
  if (o.tile % downscale !== 0 || o.overlap % downscale !== 0)
    throw new ArgumentError(
      `tile (${o.tile}) and overlap (${o.overlap}) must be multiples of the model's downscale factor ${downscale}`,
    );
  return {
    name: `${enc.name} (tiles ${o.tile}px, overlap ${o.overlap}px)`,
    encode01: (x) => tiled(x, (t) => enc.encode01(t), 1 / downscale, o),
  };
}

/**
 * The encoder run in a precision (src/torch/precision.ts: convolutions and matrix products in
 * bf16/fp16, normalisations in fp32), its latent handed back in fp32 so that the loss, the target
 * and the attack's state stay fp32. fp32 returns the encoder itself.
 */
export function atPrecision(enc: ImageEncoder, precision: Precision): ImageEncoder {
  if (precision === 'fp32') return enc;
  return {
    name: enc.name,
    encode01: (x) => withPrecision(precision, x.device, () => scope(() => enc.encode01(x).float())),
  };
}

/** gray: E(0.5 everywhere) (photoguard's zeros in [-1, 1]); zeros: the zero latent; or a target image in [0, 1]. */
export type EncoderTarget = 'gray' | 'zeros' | Tensor;

export function targetLatent(enc: ImageEncoder, like: Tensor, target: EncoderTarget): Tensor {
  return noGrad(() =>
    scope(() => {
      if (target === 'gray') return enc.encode01(full(like.shape, 0.5, { dtype: like.dtype, device: like.device }));
      if (target === 'zeros') {
        const z = enc.encode01(like);
        return zeros(z.shape, { dtype: z.dtype, device: z.device });
      }
      if (target.shape.join() !== like.shape.join())
        throw new ArgumentError(
          `target image has shape [${target.shape.join(', ')}] but the image has [${like.shape.join(', ')}]`,
        );
      return enc.encode01(target);
    }),
  );
}

export interface EncoderAttackOptions extends PgdOptions {
  target?: EncoderTarget;
  /** The encoders' arithmetic (default fp32); see `atPrecision`. */
  precision?: Precision;
}

export interface EncoderAttackResult extends PgdResult {
  /** Loss of the final image (the last entry of `losses` is the loss before the last update). */
  finalLoss: number;
  encoders: string[];
}

/** Immunizes `x` (NCHW in [0, 1]) against one encoder or an ensemble. */
export function encoderAttack(
  models: (AutoencoderKL | AutoencoderTiny | ImageEncoder) | (AutoencoderKL | AutoencoderTiny | ImageEncoder)[],
  x: Tensor,
  o: EncoderAttackOptions,
): EncoderAttackResult {
  const encs = (Array.isArray(models) ? models : [models]).map((m) => atPrecision(asEncoder(m), o.precision ?? 'fp32'));
  if (encs.length === 0) throw new ArgumentError('encoderAttack needs at least one encoder');
  const targets = encs.map((e) => keep(targetLatent(e, x, o.target ?? 'gray')));
  try {
    // Ensemble weights: 1 / (loss at the clean image), so each model starts at 1.
    const scales =
      encs.length === 1
        ? [1]
        : encs.map((e, k) =>
            noGrad(() => scope(() => 1 / Math.max(1e-12, e.encode01(x).sub(targets[k]!).norm().item()))),
          );
    const lossFn = (xa: Tensor): Tensor =>
      scope(() => {
        let total: Tensor | null = null;
        encs.forEach((e, k) => {
          const l = e.encode01(xa).sub(targets[k]!).norm().mul(scales[k]!);
          total = total === null ? l : total.add(l);
        });
        return total!;
      });
    const r = pgd(x, lossFn, o);
    const finalLoss = noGrad(() => scope(() => lossFn(r.adv).item()));
    return { ...r, finalLoss, encoders: encs.map((e) => e.name) };
  } finally {
    for (const t of targets) t.dispose();
  }
}
