/**
 * The image-autoencoder adapter, the one home of what every user of an autoencoder needs around
 * it (as diffusers' VaeImageProcessor is for its pipelines): images in [0, 1] on both ends
 * (`encode01`/`decode01`), edge-replicated padding to the model's multiple and cropping back,
 * and the reconstruction D(E(x)) — whole, or in overlapping tiles for large photos. The attacks,
 * the purifiers, the protection checks and the protect job all go through it.
 */
import { ArgumentError, describe } from '../errors.js';
import { F, noGrad, scope, withPrecision, type Device, type Tensor } from '../torch/index.js';
import { AutoencoderKL } from './autoencoder-kl.js';
import { AutoencoderTiny } from './autoencoder-tiny.js';
import { tiled } from './tiling.js';

/** An image encoder as the attacks see it: image in [0, 1] → latent. */
export interface ImageEncoder {
  readonly name: string;
  encode01(x: Tensor): Tensor;
}

/** An autoencoder with images in [0, 1] on both ends. */
export interface ImageAutoencoder extends ImageEncoder {
  decode01(z: Tensor): Tensor;
  /** Side multiple the model needs (8 for SD's VAE); other sizes are padded by edge replication. */
  readonly downscale?: number;
}

export type AnyAutoencoder = AutoencoderKL | AutoencoderTiny | ImageAutoencoder;

/**
 * SD's VAE: photoguard attacks the posterior mean, unscaled (no 0.18215), of 2x − 1; decoded and
 * mapped back by (y + 1)/2 without clamping. TAESD family: [0, 1] already; its decoder clamps to
 * [0, 1] as taesd's output is used.
 */
export function asImageAutoencoder(model: AnyAutoencoder): ImageAutoencoder {
  if (model instanceof AutoencoderKL) {
    return {
      name: 'AutoencoderKL',
      downscale: model.downscale,
      encode01: (x) =>
        scope(() => {
          using d = model.encode(x.mul(2).sub(1));
          return d.mean.alias();
        }),
      decode01: (z) => scope(() => model.decode(z).add(1).div(2)),
    };
  }
  if (model instanceof AutoencoderTiny)
    return {
      name: 'AutoencoderTiny',
      downscale: model.downscale,
      encode01: (x) => model.encode(x),
      decode01: (z) => model.decode(z),
    };
  if (
    model === null ||
    typeof model !== 'object' ||
    typeof model.encode01 !== 'function' ||
    typeof model.decode01 !== 'function'
  ) {
    throw new ArgumentError(
      `expected an AutoencoderKL, an AutoencoderTiny or { encode01, decode01 } but received ${describe(model)}`,
    );
  }
  return model;
}

/** The rows and columns `padToMultiple` adds below and to the right: [ph, pw], or null for none. */
export function paddingFor(height: number, width: number, multiple: number): [number, number] | null {
  const ph = (multiple - (height % multiple)) % multiple;
  const pw = (multiple - (width % multiple)) % multiple;
  return ph === 0 && pw === 0 ? null : [ph, pw];
}

/** Pads H and W up to a multiple of `m` by edge replication (differentiable; an alias when nothing is added). */
export function padToMultiple(x: Tensor, m: number): Tensor {
  const pad = paddingFor(x.shape[2]!, x.shape[3]!, m);
  return pad === null ? x.alias() : F.pad(x, [0, pad[1], 0, pad[0]], 'replicate');
}

/** The top-left h×w of an NCHW image, contiguous. */
export function cropTo(x: Tensor, h: number, w: number): Tensor {
  return scope(() => x.narrow(2, 0, h).narrow(3, 0, w).contiguous());
}

export interface ReconstructOptions {
  /** Encode and decode in N×N tiles overlapping by N/4 (N in input pixels). */
  tile?: number;
  /** Clamp the decoded image to [0, 1] (each tile before blending). Default false. */
  clamp?: boolean;
}

/**
 * D(E(x)) for images in [0, 1], at x's size: a side that is not a multiple of the model's
 * `downscale` is padded by edge replication and the reconstruction cropped back. Differentiable
 * (callers that only measure wrap it in noGrad).
 */
export function reconstruct(model: AnyAutoencoder, x: Tensor, o: ReconstructOptions = {}): Tensor {
  const ae = asImageAutoencoder(model);
  const ds = ae.downscale ?? 1;
  const [h, w] = [x.shape[2]!, x.shape[3]!];
  const decode = (z: Tensor): Tensor => (o.clamp ? scope(() => ae.decode01(z).clamp(0, 1)) : ae.decode01(z));
  return scope(() => {
    const xp = padToMultiple(x, ds);
    let y: Tensor;
    if (o.tile === undefined) y = decode(ae.encode01(xp));
    else {
      const z = tiled(xp, (t) => ae.encode01(t), 1 / ds, { tile: o.tile, overlap: o.tile / 4 });
      y = tiled(z, decode, ds, { tile: o.tile / ds, overlap: o.tile / 4 / ds });
    }
    return paddingFor(h, w, ds) === null ? y : y.narrow(2, 0, h).narrow(3, 0, w);
  });
}

/**
 * The reconstruction as a measurement: no gradient, clamped to [0, 1], contiguous on the CPU, and
 * in fp32 whatever precision the caller runs in (every number reported about a result is fp32).
 */
export function reconstructForMeasure(
  model: AnyAutoencoder,
  x: Tensor,
  o: { tile?: number; device?: Device } = {},
): Tensor {
  const device = o.device ?? x.device;
  return withPrecision('fp32', device, () =>
    noGrad(() => scope(() => reconstruct(model, x.to(device), { tile: o.tile, clamp: true }).to('cpu').contiguous())),
  );
}
