/**
 * Reading what a protect job works on: the photo (EXIF orientation applied, alpha flattened,
 * downscaled only when `size` asks), its mask (inverted when asked) and a target image, with the
 * notes a person should read about what happened to them. Reads files; writes nothing.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { ImmunizeError } from '../errors.js';
import { probeImage, readImage, readMask, type ImageProbe, type LoadedImage } from '../io/images.js';
import { noGrad, scope, type Tensor } from '../torch/index.js';
import type { ProtectRequest } from './parameters.js';

/** sharp's default limitInputPixels (0x3FFF²): the most any photo may have before decoding. */
export const DECODE_LIMIT = 0x3fff * 0x3fff;

export interface ProtectInputs extends Disposable {
  /** The photo as read (and resized when asked), [1, 3, H, W] in [0, 1] on the CPU. */
  image: LoadedImage;
  probe: ImageProbe;
  /** 1 where the perturbation may go (already inverted when asked), [1, 1, H, W]; null: everywhere. */
  mask: Tensor | null;
  /** 'gray', 'zeros', or a target image of the photo's size. */
  target: 'gray' | 'zeros' | Tensor;
  /** What a person should know (resized, alpha flattened, frames dropped). */
  notes: string[];
}

export function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/** The size `size: N` gives: the longer side N, aspect ratio kept, never enlarged (as sharp's fit 'inside'). */
export function sizeAfterResize(w: number, h: number, size: number | null): [number, number] {
  if (size === null || Math.max(w, h) <= size) return [w, h];
  return w >= h ? [size, Math.max(1, Math.round((h * size) / w))] : [Math.max(1, Math.round((w * size) / h)), size];
}

/** 48.0 MP, or an exact count below 0.1 MP. */
export function pixels(n: number): string {
  return n >= 100_000 ? `${(n / 1e6).toFixed(1)} MP` : `${n} pixels`;
}

/**
 * Refuses, before decoding, a photo that is too large (for sharp, or for `maxPixels` after the
 * resize) or whose mask has another size. Returns the photo's probe.
 */
export async function preflightPhoto(
  path: string,
  r: Pick<ProtectRequest, 'size' | 'maxPixels'>,
  maskProbe: ImageProbe | null,
  maskPath?: string,
): Promise<ImageProbe> {
  const p = await probeImage(path);
  if (p.width * p.height > DECODE_LIMIT) {
    throw new ImmunizeError(
      'E_IMAGE_TOO_LARGE',
      `${path}: ${p.width}×${p.height} = ${pixels(p.width * p.height)} is more than can be decoded safely (${pixels(DECODE_LIMIT)}, sharp's decompression-bomb limit)`,
    );
  }
  const [ew, eh] = sizeAfterResize(p.width, p.height, r.size);
  if (ew * eh > r.maxPixels) {
    throw new ImmunizeError(
      'E_IMAGE_TOO_LARGE',
      `${path}: ${ew}×${eh} = ${pixels(ew * eh)} is over the limit of ${pixels(r.maxPixels)} (--max-pixels); downscale it with --size, or raise --max-pixels if this machine has the memory`,
    );
  }
  if (maskProbe !== null && (maskProbe.width !== p.width || maskProbe.height !== p.height)) {
    throw new ImmunizeError(
      'E_IMAGE_SIZE',
      `the mask ${maskPath ?? ''} is ${maskProbe.width}×${maskProbe.height} but the photo ${path} is ${p.width}×${p.height}; they must have the same size`,
    );
  }
  return p;
}

/** Reads the photo, mask and target of one job (the caller disposes the result). */
export async function readProtectInputs(
  files: { image: string; mask?: string | null; target?: string | null },
  r: ProtectRequest,
  probe?: ImageProbe,
): Promise<ProtectInputs> {
  const pr = probe ?? (await probeImage(files.image));
  const resize =
    r.size === null ? {} : { width: r.size, height: r.size, fit: 'inside' as const, withoutEnlargement: true };
  const image = await readImage(files.image, { maxPixels: r.size === null ? r.maxPixels : DECODE_LIMIT, ...resize });
  const owned: Tensor[] = [image.tensor];
  try {
    const name = basename(files.image);
    const resized = image.width !== pr.width || image.height !== pr.height;
    const notes: string[] = [];
    if (resized)
      notes.push(
        `${name}: resized from ${pr.width}×${pr.height} to ${image.width}×${image.height} as --size ${r.size} asked; the output has the new size`,
      );
    if (image.hadAlpha) notes.push(`${name}: has an alpha channel; flattened onto white (the output has none)`);
    if (pr.pages > 1) notes.push(`${name}: ${pr.pages} frames; only the first is protected`);
    let mask: Tensor | null = null;
    if (files.mask) {
      const read = await readMask(files.mask, image.width, image.height, { exact: !resized });
      mask = r.invertMask ? noGrad(() => scope(() => read.neg().add(1))) : read;
      if (mask !== read) read.dispose();
      owned.push(mask);
    }
    let target: ProtectInputs['target'] = r.target === 'zeros' ? 'zeros' : 'gray';
    if (r.method !== 'noise' && files.target) {
      target = (await readImage(files.target, { maxPixels: r.maxPixels, width: image.width, height: image.height }))
        .tensor;
      owned.push(target);
    }
    return {
      image,
      probe: pr,
      mask,
      target,
      notes,
      [Symbol.dispose]: () => {
        for (const t of owned) t.dispose();
      },
    };
  } catch (e) {
    for (const t of owned) t.dispose();
    throw e;
  }
}
