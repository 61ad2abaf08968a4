/**
 * Image I/O with sharp. At API boundaries images are float32 NCHW in [0, 1], sRGB, with EXIF
 * orientation applied and alpha composited over white. Immunized images are saved losslessly
 * (PNG) by default: JPEG is exactly what removes protection (Sandoval-Segura et al. 2023).
 */
import sharp from 'sharp';
import { ImmunizeError } from '../errors.js';
import { noGrad, scope, tensor, type Tensor } from '../torch/index.js';

export interface ReadImageOptions {
  /** Refuse images with more pixels than this before decoding (decompression bombs). Default 64 MP. */
  maxPixels?: number;
  /** Resize so that the shorter side / both sides match (cover + centre crop when both are given). */
  width?: number;
  height?: number;
  /** Resampling kernel for resizing (default lanczos3, as PIL's LANCZOS). */
  kernel?: 'lanczos3' | 'cubic' | 'linear' | 'nearest' | 'mitchell';
}

export interface LoadedImage {
  /** [1, 3, H, W] float32 in [0, 1]. */
  tensor: Tensor;
  width: number;
  height: number;
  /** Size before any resize. */
  originalWidth: number;
  originalHeight: number;
  hadAlpha: boolean;
  format: string;
}

function label(input: string | Buffer): string {
  return typeof input === 'string' ? input : 'image buffer';
}

/** Decodes an image file or buffer into a [1, 3, H, W] tensor in [0, 1]. */
export async function readImage(input: string | Buffer, o: ReadImageOptions = {}): Promise<LoadedImage> {
  const maxPixels = o.maxPixels ?? 64_000_000;
  let meta: sharp.Metadata;
  try {
    meta = await sharp(input, { limitInputPixels: maxPixels }).metadata();
  } catch (e) {
    throw new ImmunizeError('E_IMAGE', `${label(input)}: not a readable image (${(e as Error).message})`);
  }
  if (meta.width === undefined || meta.height === undefined) throw new ImmunizeError('E_IMAGE', `${label(input)}: image has no dimensions`);
  // EXIF orientations 5–8 swap width and height.
  const swap = (meta.orientation ?? 1) >= 5;
  const ow = swap ? meta.height : meta.width;
  const oh = swap ? meta.width : meta.height;
  if (ow * oh > maxPixels) throw new ImmunizeError('E_IMAGE_TOO_LARGE', `${label(input)}: ${ow}×${oh} pixels exceeds the limit of ${maxPixels}`);
  let img = sharp(input, { limitInputPixels: maxPixels }).rotate().toColourspace('srgb');
  const hadAlpha = meta.hasAlpha ?? false;
  if (hadAlpha) img = img.flatten({ background: { r: 255, g: 255, b: 255 } });
  if (o.width !== undefined || o.height !== undefined) {
    img = img.resize({ width: o.width, height: o.height, fit: 'cover', position: 'centre', kernel: o.kernel ?? 'lanczos3' });
  }
  let raw: { data: Buffer; info: sharp.OutputInfo };
  try {
    raw = await img.removeAlpha().raw().toBuffer({ resolveWithObject: true });
  } catch (e) {
    throw new ImmunizeError('E_IMAGE', `${label(input)}: cannot decode (${(e as Error).message})`);
  }
  const { width, height, channels } = raw.info;
  if (channels !== 3) throw new ImmunizeError('E_IMAGE', `${label(input)}: decoded to ${channels} channels, expected 3`);
  const t = noGrad(() => scope(() => tensor(new Uint8Array(raw.data.buffer, raw.data.byteOffset, raw.data.length), [height, width, 3])
    .permute(2, 0, 1).unsqueeze(0).to('float32').div(255).contiguous()));
  return { tensor: t, width, height, originalWidth: ow, originalHeight: oh, hadAlpha, format: meta.format ?? 'unknown' };
}

/** A single-channel mask in [0, 1] at the given size, binarised at 0.5: [1, 1, H, W]. */
export async function readMask(input: string | Buffer, width: number, height: number): Promise<Tensor> {
  let raw: Buffer;
  try {
    raw = await sharp(input).rotate().flatten({ background: '#000000' }).resize({ width, height, fit: 'cover', kernel: 'nearest' }).greyscale().raw().toBuffer();
  } catch (e) {
    throw new ImmunizeError('E_IMAGE', `${label(input)}: not a readable mask image (${(e as Error).message})`);
  }
  return noGrad(() => scope(() => tensor(new Uint8Array(raw.buffer, raw.byteOffset, raw.length), [1, 1, height, width]).to('float32').div(255).gt(0.5).to('float32')));
}

/** [1, 3, H, W] or [3, H, W] in [0, 1] → 8-bit RGB bytes (round half to even, as torch.round). */
export function toRgbBytes(t: Tensor): { data: Uint8Array; width: number; height: number } {
  return noGrad(() => scope(() => {
    const x = t.ndim === 4 ? t.select(0, 0) : t;
    if (x.ndim !== 3 || x.shape[0] !== 3) throw new ImmunizeError('E_IMAGE', `expected an image tensor [1, 3, H, W] but received [${t.shape.join(', ')}]`);
    const [, h, w] = x.shape as [number, number, number];
    const bytes = x.detach().clamp(0, 1).mul(255).round().to('uint8').permute(1, 2, 0).contiguous().toTypedArray() as Uint8Array;
    return { data: bytes, width: w, height: h };
  }));
}

export type ImageFormat = 'png' | 'jpeg' | 'webp';

export interface WriteImageOptions {
  format?: ImageFormat;
  /** JPEG/WebP quality 1–100. */
  quality?: number;
  /** Called with a warning (e.g. lossy format) instead of printing it. */
  warn?: (message: string) => void;
}

/** Encodes an image tensor; PNG unless asked otherwise. */
export async function encodeImage(t: Tensor, o: WriteImageOptions = {}): Promise<Buffer> {
  const { data, width, height } = toRgbBytes(t);
  const img = sharp(Buffer.from(data.buffer, data.byteOffset, data.length), { raw: { width, height, channels: 3 } });
  const format = o.format ?? 'png';
  if (format !== 'png') {
    (o.warn ?? ((m: string) => process.stderr.write(`warning: ${m}\n`)))(`saving as ${format.toUpperCase()} is lossy: re-compression is exactly what weakens immunization (Sandoval-Segura et al. 2023). Use PNG to keep the protection intact.`);
  }
  if (format === 'jpeg') return img.jpeg({ quality: o.quality ?? 95 }).toBuffer();
  if (format === 'webp') return img.webp({ quality: o.quality ?? 95 }).toBuffer();
  return img.png({ compressionLevel: 6 }).toBuffer();
}

export function formatFromPath(path: string): ImageFormat {
  const ext = path.toLowerCase().split('.').pop();
  if (ext === 'jpg' || ext === 'jpeg') return 'jpeg';
  if (ext === 'webp') return 'webp';
  if (ext === 'png') return 'png';
  throw new ImmunizeError('E_ARGUMENT', `${path}: unknown image extension '.${ext}' (use .png, .jpg or .webp)`);
}
