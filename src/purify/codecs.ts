/**
 * Real lossy codecs through sharp (libvips): JPEG and WebP round trips. JPEG is exactly what
 * removes immunization in practice (Sandoval-Segura et al. 2023), so these are the reference
 * purifications; `diffJpeg` (diff-jpeg.ts) is their differentiable stand-in.
 *
 * Each image is quantised to 8-bit RGB (round half to even, as images.ts saves), encoded,
 * decoded, and returned as float in [0, 1] in the input's dtype and device. Not differentiable
 * and asynchronous (sharp encodes on libvips' thread pool).
 */
import sharp from 'sharp';
import { ArgumentError, describe } from '../errors.js';
import { toRgbBytes } from '../io/images.js';
import { cat, noGrad, scope, tensor, type Tensor } from '../torch/index.js';
import { checkImageBatch, checkNumber } from './common.js';

/**
 * 'libjpeg-turbo': sharp's default, libjpeg-compatible output (IJG tables scaled by quality,
 * no trellis): what PIL, browsers and most services produce. 'mozjpeg': sharp's `mozjpeg: true`
 * (trellis quantisation, overshoot deringing, progressive scans, mozjpeg's own tables).
 */
export type JpegEncoder = 'libjpeg-turbo' | 'mozjpeg';
export type ChromaSubsampling = '4:2:0' | '4:4:4';

export interface JpegOptions {
  /** 1–100. */
  quality: number;
  /** Default 'libjpeg-turbo'. */
  encoder?: JpegEncoder;
  /** Default '4:2:0', the libjpeg and sharp default. */
  chromaSubsampling?: ChromaSubsampling;
}

export interface WebpOptions {
  /** 1–100. */
  quality: number;
}

/** Encodes and decodes every image of the batch with `encode`. */
async function roundTrip(x: Tensor, fn: string, encode: (img: sharp.Sharp) => sharp.Sharp): Promise<Tensor> {
  checkImageBatch(x, fn, 3);
  const n = x.shape[0]!;
  const outs: Tensor[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const { data, width, height } = noGrad(() => scope(() => toRgbBytes(x.narrow(0, i, 1))));
      const raw = sharp(Buffer.from(data.buffer, data.byteOffset, data.length), {
        raw: { width, height, channels: 3 },
      });
      const coded = await encode(raw).toBuffer();
      const dec = await sharp(coded).removeAlpha().raw().toBuffer({ resolveWithObject: true });
      if (dec.info.channels !== 3 || dec.info.width !== width || dec.info.height !== height) {
        throw new ArgumentError(
          `${fn}: the codec returned ${dec.info.width}×${dec.info.height}×${dec.info.channels} for a ${width}×${height}×3 image`,
        );
      }
      outs.push(
        noGrad(() =>
          scope(() =>
            tensor(new Uint8Array(dec.data.buffer, dec.data.byteOffset, dec.data.length), [1, height, width, 3])
              .permute(0, 3, 1, 2)
              .to({ dtype: x.dtype, device: x.device })
              .div(255)
              .contiguous(),
          ),
        ),
      );
    }
    return n === 1 ? outs.pop()! : noGrad(() => cat(outs, 0));
  } finally {
    for (const t of outs) t.dispose();
  }
}

function checkQuality(fn: string, q: unknown): number {
  return checkNumber(fn, 'quality', q, { min: 1, max: 100, integer: true });
}

/** A real JPEG round trip at `quality` through sharp. */
export async function jpeg(x: Tensor, o: JpegOptions): Promise<Tensor> {
  if (o === null || typeof o !== 'object')
    throw new ArgumentError(`jpeg: expected options { quality } but received ${describe(o)}`);
  const quality = checkQuality('jpeg', o.quality);
  const encoder = o.encoder ?? 'libjpeg-turbo';
  if (encoder !== 'libjpeg-turbo' && encoder !== 'mozjpeg')
    throw new ArgumentError(`jpeg: expected encoder 'libjpeg-turbo' or 'mozjpeg' but received ${describe(encoder)}`);
  const chromaSubsampling = o.chromaSubsampling ?? '4:2:0';
  if (chromaSubsampling !== '4:2:0' && chromaSubsampling !== '4:4:4')
    throw new ArgumentError(
      `jpeg: expected chromaSubsampling '4:2:0' or '4:4:4' but received ${describe(chromaSubsampling)}`,
    );
  return roundTrip(x, 'jpeg', (img) => img.jpeg({ quality, chromaSubsampling, mozjpeg: encoder === 'mozjpeg' }));
}

/** A real lossy WebP round trip at `quality` through sharp (libwebp; chroma always 4:2:0). */
export async function webp(x: Tensor, o: WebpOptions): Promise<Tensor> {
  if (o === null || typeof o !== 'object')
    throw new ArgumentError(`webp: expected options { quality } but received ${describe(o)}`);
  const quality = checkQuality('webp', o.quality);
  return roundTrip(x, 'webp', (img) => img.webp({ quality }));
}
