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
  /**
   * Resize. With both sides and the default fit 'cover' the image is scaled to cover the box and
   * centre-cropped; fit 'inside' keeps the whole image and its aspect ratio within the box.
   */
  width?: number;
  height?: number;
  fit?: 'cover' | 'inside';
  /** With fit 'inside': never enlarge an image already within the box. */
  withoutEnlargement?: boolean;
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

/** What an image file says about itself, read from its header only (nothing is decoded). */
export interface ImageProbe {
  /** Width and height as displayed, i.e. after the EXIF orientation. */
  width: number;
  height: number;
  format: string;
  /** EXIF orientation 1–8 (1 when absent). */
  orientation: number;
  hasAlpha: boolean;
  /** Frames in the file (animated GIF/WebP, multi-page TIFF); only the first is read. */
  pages: number;
  /** The XMP packet, when the file has one. */
  xmp: string | null;
}

/**
 * Reads an image's header. Header reads are cheap and safe for any size, so the pixel limit is
 * checked here, by the caller, with a message that can say what to do.
 */
export async function probeImage(input: string | Buffer): Promise<ImageProbe> {
  let meta: sharp.Metadata;
  try {
    meta = await sharp(input, { limitInputPixels: false }).metadata();
  } catch (e) {
    const m = (e as Error).message;
    const why = /empty/i.test(m)
      ? 'the file is empty'
      : /unsupported image format/i.test(m)
        ? 'not an image, or a format sharp cannot read'
        : m;
    throw new ImmunizeError('E_IMAGE', `${label(input)}: not a readable image (${why})`);
  }
  if (!meta.width || !meta.height)
    throw new ImmunizeError(
      'E_IMAGE',
      `${label(input)}: the image has no pixels (${meta.width ?? 0}×${meta.height ?? 0})`,
    );
  const orientation = meta.orientation ?? 1;
  // EXIF orientations 5–8 swap width and height.
  const swap = orientation >= 5;
  return {
    width: swap ? meta.height : meta.width,
    height: swap ? meta.width : meta.height,
    format: meta.format ?? 'unknown',
    orientation,
    hasAlpha: meta.hasAlpha ?? false,
    pages: meta.pages ?? 1,
    xmp: meta.xmp === undefined ? null : meta.xmp.toString('utf8'),
  };
}

/** Decodes an image file or buffer into a [1, 3, H, W] tensor in [0, 1]. */
export async function readImage(input: string | Buffer, o: ReadImageOptions = {}): Promise<LoadedImage> {
  const maxPixels = o.maxPixels ?? 64_000_000;
  const meta = await probeImage(input);
  const ow = meta.width;
  const oh = meta.height;
  if (ow * oh > maxPixels)
    throw new ImmunizeError(
      'E_IMAGE_TOO_LARGE',
      `${label(input)}: ${ow}×${oh} pixels (${((ow * oh) / 1e6).toFixed(1)} MP) exceeds the limit of ${(maxPixels / 1e6).toFixed(1)} MP`,
    );
  let img = sharp(input, { limitInputPixels: maxPixels }).rotate().toColourspace('srgb');
  const hadAlpha = meta.hasAlpha;
  if (hadAlpha) img = img.flatten({ background: { r: 255, g: 255, b: 255 } });
  if (o.width !== undefined || o.height !== undefined) {
    const fit = o.fit ?? 'cover';
    img = img.resize({
      width: o.width,
      height: o.height,
      fit,
      position: 'centre',
      kernel: o.kernel ?? 'lanczos3',
      withoutEnlargement: fit === 'inside' && o.withoutEnlargement === true,
    });
  }
  let raw: { data: Buffer; info: sharp.OutputInfo };
  try {
    raw = await img.removeAlpha().raw().toBuffer({ resolveWithObject: true });
  } catch (e) {
    throw new ImmunizeError('E_IMAGE', `${label(input)}: cannot decode (${(e as Error).message})`);
  }
  const { width, height, channels } = raw.info;
  if (channels !== 3)
    throw new ImmunizeError('E_IMAGE', `${label(input)}: decoded to ${channels} channels, expected 3`);
  const t = noGrad(() =>
    scope(() =>
      tensor(new Uint8Array(raw.data.buffer, raw.data.byteOffset, raw.data.length), [height, width, 3])
        .permute(2, 0, 1)
        .unsqueeze(0)
        .to('float32')
        .div(255)
        .contiguous(),
    ),
  );
  return {
    tensor: t,
    width,
    height,
    originalWidth: ow,
    originalHeight: oh,
    hadAlpha,
    format: meta.format ?? 'unknown',
  };
}

/**
 * A single-channel mask in [0, 1] at the given size, binarised at 0.5: [1, 1, H, W]. By default
 * a mask of another size is scaled to cover the image (nearest neighbour, centre crop); with
 * `exact` it must already have the image's size (after EXIF orientation), else E_IMAGE_SIZE.
 */
export async function readMask(
  input: string | Buffer,
  width: number,
  height: number,
  o: { exact?: boolean } = {},
): Promise<Tensor> {
  if (o.exact) {
    const m = await probeImage(input);
    if (m.width !== width || m.height !== height)
      throw new ImmunizeError(
        'E_IMAGE_SIZE',
        `${label(input)}: the mask is ${m.width}×${m.height} but the image is ${width}×${height}; they must match`,
      );
  }
  let raw: Buffer;
  try {
    raw = await sharp(input)
      .rotate()
      .flatten({ background: '#000000' })
      .resize({ width, height, fit: 'cover', kernel: 'nearest' })
      .greyscale()
      .raw()
      .toBuffer();
  } catch (e) {
    throw new ImmunizeError('E_IMAGE', `${label(input)}: not a readable mask image (${(e as Error).message})`);
  }
  return noGrad(() =>
    scope(() =>
      tensor(new Uint8Array(raw.buffer, raw.byteOffset, raw.length), [1, 1, height, width])
        .to('float32')
        .div(255)
        .gt(0.5)
        .to('float32'),
    ),
  );
}

/** [1, 3, H, W] or [3, H, W] in [0, 1] → 8-bit RGB bytes (round half to even, as torch.round). */
export function toRgbBytes(t: Tensor): { data: Uint8Array; width: number; height: number } {
  return noGrad(() =>
    scope(() => {
      const x = t.ndim === 4 ? t.select(0, 0) : t;
      if (x.ndim !== 3 || x.shape[0] !== 3)
        throw new ImmunizeError(
          'E_IMAGE',
          `expected an image tensor [1, 3, H, W] but received [${t.shape.join(', ')}]`,
        );
      const [, h, w] = x.shape as [number, number, number];
      const bytes = x
        .detach()
        .clamp(0, 1)
        .mul(255)
        .round()
        .to('uint8')
        .permute(1, 2, 0)
        .contiguous()
        .toTypedArray() as Uint8Array;
      return { data: bytes, width: w, height: h };
    }),
  );
}

export type ImageFormat = 'png' | 'jpeg' | 'webp';

export interface WriteImageOptions {
  format?: ImageFormat;
  /** JPEG/WebP quality 1–100. */
  quality?: number;
  /** Called with a warning (e.g. lossy format) instead of printing it. */
  warn?: (message: string) => void;
  /** An XMP packet to embed (PNG: an iTXt chunk `XML:com.adobe.xmp`; JPEG: APP1; WebP: XMP chunk). */
  xmp?: string;
}

/** Encodes an image tensor; PNG unless asked otherwise. */
export async function encodeImage(t: Tensor, o: WriteImageOptions = {}): Promise<Buffer> {
  const { data, width, height } = toRgbBytes(t);
  let img = sharp(Buffer.from(data.buffer, data.byteOffset, data.length), { raw: { width, height, channels: 3 } });
  if (o.xmp !== undefined) img = img.withXmp(o.xmp);
  const format = o.format ?? 'png';
  if (format !== 'png') {
    (o.warn ?? ((m: string) => process.stderr.write(`warning: ${m}\n`)))(
      `saving as ${format.toUpperCase()} is lossy: re-compression is exactly what weakens immunization (Sandoval-Segura et al. 2023). Use PNG to keep the protection intact.`,
    );
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

/**
 * The raster formats an untrusted upload may be, as sharp names them (AVIF is 'heif'). Each is
 * pixels only: none can make the decoder read or fetch anything else, unlike SVG (librsvg follows
 * XInclude and `<image href>`), which is why the list is closed rather than "whatever sharp reads".
 */
export const UPLOAD_FORMATS = ['jpeg', 'png', 'webp', 'tiff', 'gif', 'heif'] as const;
export type UploadFormat = (typeof UPLOAD_FORMATS)[number];

/** libvips's loaders of UPLOAD_FORMATS (GIF's is nsgif; heif reads AVIF). */
const UPLOAD_LOADERS = [
  'VipsForeignLoadJpeg',
  'VipsForeignLoadPng',
  'VipsForeignLoadWebp',
  'VipsForeignLoadTiff',
  'VipsForeignLoadNsgif',
  'VipsForeignLoadHeif',
];

/**
 * Lets this process's libvips decode only UPLOAD_FORMATS: every other loader (SVG, PDF, the vips
 * format, ImageMagick, …) is blocked for the life of the process. For processes that decode
 * uploads (the API and the job runners), behind the magic-byte check, in case a file gets past it.
 */
export function restrictDecodersToUploadFormats(): void {
  sharp.block({ operation: ['VipsForeignLoad'] });
  sharp.unblock({ operation: UPLOAD_LOADERS });
}

/** The upload format that `data`'s first bytes announce, or null for anything else (SVG, text, …). */
export function sniffUploadFormat(data: Buffer): UploadFormat | null {
  const ascii = (from: number, to: number): string => data.subarray(from, to).toString('latin1');
  if (data.length >= 3 && data[0] === 0xff && data[1] === 0xd8 && data[2] === 0xff) return 'jpeg';
  if (data.length >= 8 && data.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])))
    return 'png';
  if (ascii(0, 4) === 'RIFF' && ascii(8, 12) === 'WEBP') return 'webp';
  if (ascii(0, 4) === 'II*\0' || ascii(0, 4) === 'MM\0*') return 'tiff';
  if (ascii(0, 6) === 'GIF87a' || ascii(0, 6) === 'GIF89a') return 'gif';
  // ISO-BMFF: a 'ftyp' box whose brands include AVIF's (still image or sequence).
  if (data.length >= 16 && ascii(4, 8) === 'ftyp') {
    const size = Math.min(data.readUInt32BE(0), data.length, 256);
    for (let i = 8; i + 4 <= size; i += 4) if (['avif', 'avis'].includes(ascii(i, i + 4))) return 'heif';
  }
  return null;
}
