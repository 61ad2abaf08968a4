/**
 * Geometric purifications: resizing (as torchvision's `TF.resize` and PIL's `Image.resize`),
 * rotation (torchvision's `TF.rotate` on tensors), flips and crops. All differentiable.
 */
import { ArgumentError, describe } from '../errors.js';
import { F, ones, scope, tensor, type Tensor } from '../torch/index.js';
import { op } from '../torch/ops.js';
import { internal } from '../torch/tensor.js';
import { checkImageBatch, checkNumber } from './common.js';

const { wrapResult } = internal;
const gridSampler = op('aten::grid_sampler');

export type ResizeMode = 'nearest' | 'bilinear' | 'bicubic' | 'lanczos';

export interface ResizeOptions {
  /** Default 'bilinear'. 'lanczos' is PIL's LANCZOS (Lanczos-3, always anti-aliased). */
  mode?: ResizeMode;
  /**
   * Anti-aliased down-sampling (bilinear/bicubic), as `TF.resize(antialias=True)`, which is
   * PIL-compatible (support widened by the scale; bicubic a = −0.5). Default false, as
   * torchvision 0.14's tensor default.
   */
  antialias?: boolean;
}

/** [H, W] or one side for both. */
export type Size = number | readonly [number, number];

/** Resizes to `size` ([H, W]) with align_corners=False, as torchvision 0.14's `TF.resize`. */
export function resize(x: Tensor, size: Size, o: ResizeOptions = {}): Tensor {
  checkImageBatch(x, 'resize');
  const [oh, ow] = typeof size === 'number' ? [size, size] : [size[0], size[1]];
  checkNumber('resize', 'height', oh, { min: 1, integer: true });
  checkNumber('resize', 'width', ow, { min: 1, integer: true });
  const mode = o.mode ?? 'bilinear';
  switch (mode) {
    case 'nearest':
      return F.interpolate(x, { size: [oh, ow], mode: 'nearest' });
    case 'bilinear':
    case 'bicubic':
      return F.interpolate(x, { size: [oh, ow], mode, alignCorners: false, antialias: o.antialias ?? false });
    case 'lanczos':
      return pilResize(x, [oh, ow], 'lanczos');
    default:
      throw new ArgumentError(
        `resize: expected mode 'nearest', 'bilinear', 'bicubic' or 'lanczos' but received ${describe(mode)}`,
      );
  }
}

// PIL's resampling filters (Pillow src/libImaging/Resample.c): support and kernel.
const PIL_FILTERS = {
  bilinear: {
    support: 1,
    f: (x: number) => {
      x = Math.abs(x);
      return x < 1 ? 1 - x : 0;
    },
  },
  // Keys' cubic with a = −0.5, as Pillow.
  bicubic: {
    support: 2,
    f: (x: number) => {
      const a = -0.5;
      x = Math.abs(x);
      if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
      if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
      return 0;
    },
  },
  lanczos: {
    support: 3,
    f: (x: number) => (x >= -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0),
  },
} as const;
function sinc(x: number): number {
  if (x === 0) return 1;
  const px = x * Math.PI;
  return Math.sin(px) / px;
}

/**
 * The [out, in] matrix of Pillow's `precompute_coeffs` for one axis: the filter is widened by
 * the down-scaling factor (anti-aliasing), truncated at the image edge and renormalised.
 */
export function pilResampleMatrix(inSize: number, outSize: number, filter: keyof typeof PIL_FILTERS): Float64Array {
  const { support: base, f } = PIL_FILTERS[filter];
  const scale = inSize / outSize;
  const filterscale = Math.max(1, scale);
  const support = base * filterscale;
  const m = new Float64Array(outSize * inSize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const ss = 1 / filterscale;
    // C's (int) truncates towards zero; center − support + 0.5 may be negative.
    const xmin = Math.max(0, Math.trunc(center - support + 0.5));
    const xmax = Math.min(inSize, Math.trunc(center + support + 0.5));
    let ww = 0;
    for (let x = xmin; x < xmax; x++) {
      const w = f((x - center + 0.5) * ss);
      m[xx * inSize + x] = w;
      ww += w;
    }
    if (ww !== 0) for (let x = xmin; x < xmax; x++) m[xx * inSize + x]! /= ww;
  }
  return m;
}

/** Resize as Pillow's `Image.resize` (float images, no reducing_gap): separable resampling matrices. */
export function pilResize(
  x: Tensor,
  size: readonly [number, number],
  filter: 'bilinear' | 'bicubic' | 'lanczos',
): Tensor {
  checkImageBatch(x, 'pilResize');
  const [h, w] = [x.shape[2]!, x.shape[3]!];
  const [oh, ow] = size;
  return scope(() => {
    const opts = { dtype: 'float64' as const };
    const mh = tensor(pilResampleMatrix(h, oh, filter), [oh, h], opts).to({ dtype: x.dtype, device: x.device });
    const mw = tensor(pilResampleMatrix(w, ow, filter), [ow, w], opts).to({ dtype: x.dtype, device: x.device });
    // Pillow resamples horizontally, then vertically.
    return mh.matmul(x.matmul(mw.mT));
  });
}

/**
 * Down-scales by `scale` and back to the original size, as an image re-shared at a lower
 * resolution: PIL-style (anti-aliased) both ways, then clamped to [0, 1] (cubic kernels overshoot).
 */
export function resizeDownUp(x: Tensor, scale: number, mode: Exclude<ResizeMode, 'nearest'> = 'bicubic'): Tensor {
  checkImageBatch(x, 'resizeDownUp');
  checkNumber('resizeDownUp', 'scale', scale, { min: 0, max: 1, minExclusive: true });
  const [h, w] = [x.shape[2]!, x.shape[3]!];
  const small: [number, number] = [Math.max(1, Math.round(h * scale)), Math.max(1, Math.round(w * scale))];
  return scope(() => {
    const down = resize(x, small, { mode, antialias: true });
    return resize(down, [h, w], { mode, antialias: true }).clamp(0, 1);
  });
}

export interface RotateOptions {
  /** Default 'bilinear'. */
  interpolation?: 'bilinear' | 'nearest';
  /**
   * Value for pixels that come from outside the image. A number (default 0) blends with the
   * sampled coverage, as torchvision's `fill=[v]`; null leaves grid_sample's zero padding
   * (torchvision's `fill=None`), which differs along the border.
   */
  fill?: number | null;
}

/**
 * Rotates by `angle` degrees counter-clockwise about the centre, keeping the size, as
 * torchvision 0.14's `TF.rotate` on tensors: an inverse affine grid (pixel centres at
 * ±(n/2 − 1/2), normalised by n/2) sampled with grid_sample(align_corners=False).
 */
export function rotate(x: Tensor, angle: number, o: RotateOptions = {}): Tensor {
  checkImageBatch(x, 'rotate');
  checkNumber('rotate', 'angle', angle);
  const interp = o.interpolation ?? 'bilinear';
  if (interp !== 'bilinear' && interp !== 'nearest')
    throw new ArgumentError(`rotate: expected interpolation 'bilinear' or 'nearest' but received ${describe(interp)}`);
  const fill = o.fill === undefined ? 0 : o.fill;
  if (fill !== null) checkNumber('rotate', 'fill', fill);
  const [n, c, h, w] = x.shape as [number, number, number, number];
  // torchvision passes −angle to _get_inverse_affine_matrix; with no shear or scale the
  // inverse matrix is [[cos r, sin r], [−sin r, cos r]] with r = radians(−angle).
  const r = (-angle * Math.PI) / 180;
  const [cr, sr] = [Math.cos(r), Math.sin(r)];
  const grid = new Float64Array(h * w * 2);
  for (let i = 0; i < h; i++) {
    const by = -h / 2 + 0.5 + i;
    for (let j = 0; j < w; j++) {
      const bx = -w / 2 + 0.5 + j;
      grid[(i * w + j) * 2] = (cr * bx + sr * by) / (0.5 * w);
      grid[(i * w + j) * 2 + 1] = (-sr * bx + cr * by) / (0.5 * h);
    }
  }
  const mode = interp === 'bilinear' ? 0 : 1;
  return scope(() => {
    const g = tensor(grid, [1, h, w, 2], { dtype: 'float64' })
      .to({ dtype: x.dtype, device: x.device })
      .expand(n, h, w, 2);
    if (fill === null) return wrapResult(gridSampler(x.handle, g.handle, mode, 0, false)) as Tensor;
    // torchvision appends a ones channel, samples it with the image and blends with the fill.
    const cover = ones([n, 1, h, w], { dtype: x.dtype, device: x.device });
    const both = wrapResult(gridSampler(x.contiguous().handle, g.handle, mode, 0, false)) as Tensor;
    const mask = wrapResult(gridSampler(cover.handle, g.handle, mode, 0, false)) as Tensor;
    if (interp === 'nearest') return both.where(mask.ge(0.5), fill);
    const m = mask.expand(n, c, h, w);
    return fill === 0 ? both.mul(m) : both.mul(m).add(m.rsub(1).mul(fill));
  });
}

/** Mirror left–right (TF.hflip). */
export function hflip(x: Tensor): Tensor {
  checkImageBatch(x, 'hflip');
  return x.flip(-1);
}

/** Mirror top–bottom (TF.vflip). */
export function vflip(x: Tensor): Tensor {
  checkImageBatch(x, 'vflip');
  return x.flip(-2);
}

/** The central `fraction` of each side, as TF.center_crop (offsets round((n − m) / 2)). */
export function centerCrop(x: Tensor, fraction: number): Tensor {
  checkImageBatch(x, 'centerCrop');
  checkNumber('centerCrop', 'fraction', fraction, { min: 0, max: 1, minExclusive: true });
  const [h, w] = [x.shape[2]!, x.shape[3]!];
  const [ch, cw] = [Math.max(1, Math.round(h * fraction)), Math.max(1, Math.round(w * fraction))];
  const top = pyRound((h - ch) / 2);
  const left = pyRound((w - cw) / 2);
  return scope(() => x.narrow(2, top, ch).narrow(3, left, cw).contiguous());
}

/** Crops the centre and scales it back up to the original size (bilinear, PIL-style). */
export function cropResize(x: Tensor, fraction: number): Tensor {
  const [h, w] = [x.shape[2]!, x.shape[3]!];
  return scope(() => resize(centerCrop(x, fraction), [h, w], { mode: 'bilinear', antialias: true }));
}

/** Python's round(): half to even. */
function pyRound(v: number): number {
  const f = Math.floor(v);
  const d = v - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}
