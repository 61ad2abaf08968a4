/**
 * CLIP image preprocessing as openai/CLIP's `_transform(n_px)` (torchvision on PIL images):
 * Resize(n_px, BICUBIC) of the shorter side (the longer one becomes int(n_px·long/short)),
 * CenterCrop(n_px) (offsets int(round((size − n_px) / 2))), ToTensor (/255) and
 * Normalize(mean, std) with CLIP's constants.
 *
 * The default `resample: 'pil'` reproduces Pillow's bicubic resampling bit for bit (Resample.c:
 * separable, antialiased support scaled by the reduction factor, a = −0.5, 22-bit fixed-point
 * coefficients, a horizontal then a vertical pass with uint8 rounding between them), on the images
 * quantised to uint8 (round(255·x)) as a saved image would be. `resample: 'tensor'` uses
 * F.interpolate(bicubic, antialias) on the float images instead: differentiable, within about
 * 1/255 of PIL.
 */
import { ArgumentError, ImmunizeError, describe } from '../../errors.js';
import { F, isTensor, noGrad, scope, tensor, type Tensor } from '../../torch/index.js';

/** openai/CLIP's normalisation constants (clip/clip.py _transform). */
export const CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073] as const;
export const CLIP_STD = [0.26862954, 0.26130258, 0.27577711] as const;

export interface CLIPPreprocessOptions {
  /** Output side n_px. Default 224. */
  size?: number;
  mean?: readonly number[];
  std?: readonly number[];
  /** 'pil' (default): Pillow-exact on uint8; 'tensor': differentiable F.interpolate. */
  resample?: 'pil' | 'tensor';
}

/** Python 3 round(): halves to even (torchvision's centre-crop offsets use it). */
function pyRound(v: number): number {
  const f = Math.floor(v);
  const d = v - f;
  return d > 0.5 ? f + 1 : d < 0.5 ? f : f % 2 === 0 ? f : f + 1;
}

/** torchvision's Resize(size) output for an (h, w) image: shorter side → size. */
export function resizedSize(h: number, w: number, size: number): [number, number] {
  const [short, long] = w <= h ? [w, h] : [h, w];
  const newLong = Math.trunc((size * long) / short);
  return w <= h ? [newLong, size] : [size, newLong];
}

/** Images [N, 3, H, W] in [0, 1] → CLIP pixel values [N, 3, size, size]. */
export function clipPreprocess(images: Tensor, o: CLIPPreprocessOptions = {}): Tensor {
  const size = o.size ?? 224;
  const mean = o.mean ?? CLIP_MEAN;
  const std = o.std ?? CLIP_STD;
  if (!isTensor(images))
    throw new ArgumentError(
      `clipPreprocess: expected images to be a Tensor [N, 3, H, W] but received ${describe(images)}`,
    );
  if (images.ndim !== 4 || images.shape[1] !== 3 || images.shape[0] === 0) {
    throw new ImmunizeError(
      'E_SHAPE',
      `clipPreprocess: expected RGB images [N, 3, H, W] but received [${images.shape.join(', ')}]`,
    );
  }
  if (!Number.isSafeInteger(size) || size < 1)
    throw new ArgumentError(`clipPreprocess: size must be a positive integer but is ${describe(size)}`);
  if (mean.length !== 3 || std.length !== 3)
    throw new ArgumentError('clipPreprocess: mean and std need 3 values (R, G, B)');
  const resample = o.resample ?? 'pil';
  if (resample !== 'pil' && resample !== 'tensor')
    throw new ArgumentError(`clipPreprocess: resample must be 'pil' or 'tensor' but is ${describe(resample)}`);
  const [n, , h, w] = images.shape as [number, number, number, number];
  const [rh, rw] = resizedSize(h, w, size);
  if (rh < size || rw < size)
    throw new ImmunizeError(
      'E_SHAPE',
      `clipPreprocess: a ${w}×${h} image resizes to ${rw}×${rh}, smaller than the ${size}-px crop`,
    );
  const top = pyRound((rh - size) / 2);
  const left = pyRound((rw - size) / 2);
  return scope(() => {
    let x: Tensor;
    if (resample === 'pil') {
      const bytes = noGrad(() =>
        scope(() =>
          images
            .detach()
            .clamp(0, 1)
            .mul(255)
            .round()
            .to({ dtype: 'uint8', device: 'cpu' })
            .permute(0, 2, 3, 1)
            .contiguous()
            .toTypedArray(),
        ),
      ) as Uint8Array;
      const out = new Uint8Array(n * size * size * 3);
      for (let i = 0; i < n; i++) {
        const img = bytes.subarray(i * h * w * 3, (i + 1) * h * w * 3);
        const resized = rh === h && rw === w ? img : pilResize(img, w, h, 3, rw, rh);
        for (let y = 0; y < size; y++) {
          const src = ((y + top) * rw + left) * 3;
          out.set(resized.subarray(src, src + size * 3), (i * size + y) * size * 3);
        }
      }
      x = tensor(out, [n, size, size, 3], { device: images.device }).permute(0, 3, 1, 2).to('float32').div(255);
    } else {
      const r =
        rh === h && rw === w
          ? images
          : F.interpolate(images, { size: [rh, rw], mode: 'bicubic', alignCorners: false, antialias: true });
      x = r.narrow(2, top, size).narrow(3, left, size);
    }
    const m = tensor(Float32Array.from(mean), [3, 1, 1], { dtype: x.dtype, device: x.device });
    const s = tensor(Float32Array.from(std), [3, 1, 1], { dtype: x.dtype, device: x.device });
    return x.sub(m).div(s);
  });
}

// Pillow Resample.c: fixed-point precision of the 8-bit passes.
const PRECISION_BITS = 32 - 8 - 2;
const ONE = 2 ** PRECISION_BITS;

/** Pillow's bicubic kernel (a = −0.5), support 2. */
function bicubic(x: number): number {
  const a = -0.5;
  if (x < 0) x = -x;
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

/** precompute_coeffs + normalize_coeffs_8bpc for one axis: per output pixel, first input index, tap count and int coefficients. */
function coefficients(inSize: number, outSize: number): { bounds: Int32Array; kk: Int32Array; ksize: number } {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = 2 * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const kk = new Int32Array(outSize * ksize);
  const k = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const ss = 1 / filterscale;
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      const wgt = bicubic((x + xmin - center + 0.5) * ss);
      k[x] = wgt;
      ww += wgt;
    }
    for (let x = 0; x < ksize; x++) {
      let v = x < xmax ? k[x]! : 0;
      if (x < xmax && ww !== 0) v /= ww;
      kk[xx * ksize + x] = v < 0 ? Math.trunc(-0.5 + v * ONE) : Math.trunc(0.5 + v * ONE);
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { bounds, kk, ksize };
}

/** clip8: the fixed-point sum shifted back to 8 bits and clamped. */
function clip8(v: number): number {
  const s = Math.floor(v / ONE);
  return s < 0 ? 0 : s > 255 ? 255 : s;
}

/**
 * Pillow's Image.resize(BICUBIC) of an interleaved 8-bit image (HWC) to outW × outH: the
 * horizontal pass over the rows the vertical pass needs, then the vertical pass.
 */
export function pilResize(
  src: Uint8Array,
  w: number,
  h: number,
  channels: number,
  outW: number,
  outH: number,
): Uint8Array {
  if (src.length !== w * h * channels)
    throw new ArgumentError(
      `pilResize: expected ${w * h * channels} bytes for ${w}×${h}×${channels} but received ${src.length}`,
    );
  const horiz = coefficients(w, outW);
  const vert = coefficients(h, outH);
  const needH = outW !== w;
  const needV = outH !== h;
  let img = src;
  let iw = w;
  const vb = Int32Array.from(vert.bounds);
  if (needH) {
    const first = vb[0]!;
    const last = vb[outH * 2 - 2]! + vb[outH * 2 - 1]!;
    for (let i = 0; i < outH; i++) vb[i * 2]! -= first;
    const rows = last - first;
    const tmp = new Uint8Array(rows * outW * channels);
    for (let yy = 0; yy < rows; yy++) {
      const row = (yy + first) * w * channels;
      for (let xx = 0; xx < outW; xx++) {
        const xmin = horiz.bounds[xx * 2]!;
        const xmax = horiz.bounds[xx * 2 + 1]!;
        const kOff = xx * horiz.ksize;
        for (let c = 0; c < channels; c++) {
          let ss = ONE / 2;
          for (let x = 0; x < xmax; x++) ss += src[row + (x + xmin) * channels + c]! * horiz.kk[kOff + x]!;
          tmp[(yy * outW + xx) * channels + c] = clip8(ss);
        }
      }
    }
    img = tmp;
    iw = outW;
  }
  if (!needV) return needH ? img : src.slice();
  const out = new Uint8Array(outH * iw * channels);
  for (let yy = 0; yy < outH; yy++) {
    const ymin = needH ? vb[yy * 2]! : vert.bounds[yy * 2]!;
    const ymax = vert.bounds[yy * 2 + 1]!;
    const kOff = yy * vert.ksize;
    for (let xx = 0; xx < iw; xx++) {
      for (let c = 0; c < channels; c++) {
        let ss = ONE / 2;
        for (let y = 0; y < ymax; y++) ss += img[((y + ymin) * iw + xx) * channels + c]! * vert.kk[kOff + y]!;
        out[(yy * iw + xx) * channels + c] = clip8(ss);
      }
    }
  }
  return out;
}
