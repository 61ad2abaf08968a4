/**
 * Smoothing filters an adversary uses to wash out a perturbation:
 * - `gaussianBlur`: torchvision 0.14 `TF.gaussian_blur` on tensors (kernel from
 *   linspace(−(k−1)/2, (k−1)/2, k), normalised, reflect padding), applied separably;
 * - `medianBlur`: `scipy.ndimage.median_filter(x, size=(1, 1, k, k), mode='reflect')`, where
 *   scipy's 'reflect' repeats the edge sample (d c b a | a b c d), i.e. "symmetric" padding.
 * Both are differentiable (the median passes the gradient to the selected sample).
 */
import { ArgumentError } from '../errors.js';
import { cat, F, scope, tensor, type Tensor } from '../torch/index.js';
import { checkImageBatch, checkNumber } from './common.js';

export type Pair = number | readonly [number, number];

function pairOf(v: Pair): [number, number] {
  return typeof v === 'number' ? [v, v] : [v[0], v[1]];
}

/** The default kernel side for a σ: 2·⌈3σ⌉ + 1 (covers ±3σ, always odd). */
export function gaussianKernelSize(sigma: number): number {
  return 2 * Math.ceil(3 * sigma) + 1;
}

/** torchvision's 1-d Gaussian: exp(−x²/2σ²) at linspace(−(k−1)/2, (k−1)/2, k), summing to 1. */
export function gaussianKernel1d(size: number, sigma: number): number[] {
  const half = (size - 1) / 2;
  const pdf = Array.from({ length: size }, (_, i) => Math.exp(-0.5 * ((-half + i) / sigma) ** 2));
  const s = pdf.reduce((a, b) => a + b, 0);
  return pdf.map((p) => p / s);
}

export interface GaussianBlurOptions {
  /** Kernel side(s) [kx, ky], odd; default 2·⌈3σ⌉ + 1 per axis. */
  kernelSize?: Pair;
}

/** Gaussian blur with σ (or [σx, σy]) as torchvision's `gaussian_blur` (reflect padding). */
export function gaussianBlur(x: Tensor, sigma: Pair, o: GaussianBlurOptions = {}): Tensor {
  checkImageBatch(x, 'gaussianBlur');
  const [sx, sy] = pairOf(sigma);
  checkNumber('gaussianBlur', 'sigma', sx, { min: 0, minExclusive: true });
  checkNumber('gaussianBlur', 'sigma', sy, { min: 0, minExclusive: true });
  const [kx, ky] = o.kernelSize === undefined ? [gaussianKernelSize(sx), gaussianKernelSize(sy)] : pairOf(o.kernelSize);
  for (const k of [kx, ky]) {
    if (!Number.isSafeInteger(k) || k < 1 || k % 2 === 0)
      throw new ArgumentError(`gaussianBlur: expected kernelSize to be an odd positive integer but received ${k}`);
  }
  const [, c, h, w] = x.shape as [number, number, number, number];
  if (kx >> 1 >= w || ky >> 1 >= h)
    throw new ArgumentError(
      `gaussianBlur: a ${kx}×${ky} kernel needs reflect padding of ${kx >> 1}×${ky >> 1}, which must be smaller than the image (${w}×${h})`,
    );
  return scope(() => {
    const wx = tensor(gaussianKernel1d(kx, sx), [1, 1, 1, kx], { dtype: 'float64' })
      .to({ dtype: x.dtype, device: x.device })
      .expand(c, 1, 1, kx);
    const wy = tensor(gaussianKernel1d(ky, sy), [1, 1, ky, 1], { dtype: 'float64' })
      .to({ dtype: x.dtype, device: x.device })
      .expand(c, 1, ky, 1);
    const padded = F.pad(x, [kx >> 1, kx >> 1, ky >> 1, ky >> 1], 'reflect');
    return F.conv2d(F.conv2d(padded, wy, null, { groups: c }), wx, null, { groups: c });
  });
}

/**
 * Indices for scipy's 'reflect' boundary (half-sample symmetric, period 2n): positions
 * −before … n − 1 + after of an axis of length n.
 */
export function symmetricIndices(n: number, before: number, after: number): Int32Array {
  const out = new Int32Array(n + before + after);
  for (let i = 0; i < out.length; i++) {
    let m = (((i - before) % (2 * n)) + 2 * n) % (2 * n);
    if (m >= n) m = 2 * n - 1 - m;
    out[i] = m;
  }
  return out;
}

/** Pads H and W as scipy.ndimage's mode 'reflect' (any pad width). */
export function symmetricPad(x: Tensor, left: number, right: number, top: number, bottom: number): Tensor {
  return scope(() => {
    const [h, w] = [x.shape[2]!, x.shape[3]!];
    const iy = tensor(symmetricIndices(h, top, bottom), undefined, { dtype: 'int64', device: x.device });
    const ix = tensor(symmetricIndices(w, left, right), undefined, { dtype: 'int64', device: x.device });
    return x.indexSelect(2, iy).indexSelect(3, ix);
  });
}

export interface MedianBlurOptions {
  /** Rows of output computed at once (bounds memory: rows·W·k² values per image channel). Default: automatic. */
  bandRows?: number;
}

/**
 * Median filter over k×k windows per channel, as scipy.ndimage.median_filter(mode='reflect').
 * For even k the window and rank follow scipy (offsets −k/2 … k/2 − 1, the upper median).
 */
export function medianBlur(x: Tensor, size: number, o: MedianBlurOptions = {}): Tensor {
  checkImageBatch(x, 'medianBlur');
  checkNumber('medianBlur', 'size', size, { min: 1, integer: true });
  if (size === 1) return x.clone();
  const [n, c, h, w] = x.shape as [number, number, number, number];
  const before = size >> 1;
  const after = size - 1 - before;
  const k2 = size * size;
  const rank = (k2 >> 1) + 1; // scipy: rank = size // 2 (0-based) → kthvalue's 1-based k
  const band = o.bandRows ?? Math.max(1, Math.floor(16_000_000 / Math.max(1, n * c * w * k2)));
  return scope(() => {
    const padded = symmetricPad(x, before, after, before, after).reshape(n * c, 1, h + size - 1, w + size - 1);
    const rows: Tensor[] = [];
    for (let r0 = 0; r0 < h; r0 += band) {
      const rh = Math.min(band, h - r0);
      scope(() => {
        const slab = padded.narrow(2, r0, rh + size - 1);
        const cols = F.unfold(slab, size); // [n·c, k², rh·w]
        const [v] = cols.kthvalue(rank, 1);
        rows.push(v.reshape(n, c, rh, w));
        return rows[rows.length - 1]!;
      });
    }
    return rows.length === 1 ? rows[0]! : cat(rows, 2);
  });
}
