/**
 * Building blocks shared by the full-reference metrics, written to follow piq 0.8.0
 * (`piq/functional/*.py`, `piq/utils/common.py`) operation by operation, so that the same
 * libtorch kernels see the same operands in the same order and the results agree to rounding.
 *
 * Exports: input checks (`checkImagePair`, `reduce`), Python's rounding (`pyRound`), colour
 * conversions (`rgb2yiq`, `rgb2lmn`, `rgb2lhm`, `rgb2xyz`, `xyz2lab`, `rgb2lab`), filters
 * (`gaussianFilter`, `scharrFilter`, `prewittFilter`, `haarFilter`), `similarityMap`,
 * `gradientMap`, `ifftshift`, `getMeshgrid`, `powForComplex`, `FLOAT32_EPS`.
 */
import { ArgumentError, ImmunizeError, describe } from '../errors.js';
import {
  F,
  arange,
  isTensor,
  noGrad,
  scope,
  stack,
  tensor,
  zerosLike,
  type DType,
  type Device,
  type Tensor,
} from '../torch/index.js';

export type Reduction = 'none' | 'mean' | 'sum';

/** Options every full-reference metric takes. */
export interface MetricOptions {
  /** Maximum value of the images' range: 1 for [0, 1] (default), 255 for [0, 255]. */
  dataRange?: number;
  /** 'none': one value per image [N]; 'mean' (default, as piq) or 'sum' over the batch. */
  reduction?: Reduction;
}

/** torch.finfo(torch.float32).eps, which piq adds in several places. */
export const FLOAT32_EPS = 1.1920928955078125e-7;

/** Python 3's round(): halves go to the even neighbour (piq sizes its down-sampling with it). */
export function pyRound(v: number): number {
  const f = Math.floor(v);
  const d = v - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** The metric error for bad inputs: code E_SHAPE (shapes, channels, sizes) or E_RANGE (values). */
export class MetricInputError extends ImmunizeError {
  constructor(code: 'E_SHAPE' | 'E_RANGE', message: string) {
    super(code, message);
    this.name = 'MetricInputError';
  }
}

export interface PairCheck {
  /** Allowed channel counts (any when absent). */
  channels?: readonly number[];
  /** Smallest allowed height and width. */
  minSize?: number;
  /** Check that values lie in [0, dataRange] (piq's _validate_input); false for metrics that do not (DSS). */
  checkRange?: boolean;
}

/**
 * piq's `_validate_input` for a distorted/reference pair, with messages that name the metric and
 * the problem: tensors, 4-d NCHW, equal shapes and devices, floating point, channel count, size,
 * and values within [0, dataRange]. Returns the validated data range.
 */
export function checkImagePair(
  metric: string,
  x: Tensor,
  y: Tensor,
  dataRange: number | undefined,
  c: PairCheck = {},
): number {
  for (const [name, t] of [
    ['x', x],
    ['y', y],
  ] as const) {
    if (!isTensor(t))
      throw new ArgumentError(`${metric}: expected ${name} to be a Tensor (N, C, H, W) but received ${describe(t)}`);
  }
  const dr = dataRange ?? 1;
  if (typeof dr !== 'number' || !Number.isFinite(dr) || dr <= 0)
    throw new ArgumentError(
      `${metric}: expected dataRange to be a positive number but received ${describe(dataRange)}`,
    );
  const xs = x.shape;
  const ys = y.shape;
  if (xs.length !== 4)
    throw new MetricInputError(
      'E_SHAPE',
      `${metric}: expected 4-d image batches (N, C, H, W) but x has shape [${xs.join(', ')}]`,
    );
  if (xs.length !== ys.length || xs.some((d, i) => d !== ys[i])) {
    throw new MetricInputError(
      'E_SHAPE',
      `${metric}: x and y must have the same shape but received [${xs.join(', ')}] and [${ys.join(', ')}]`,
    );
  }
  if (xs[0] === 0) throw new MetricInputError('E_SHAPE', `${metric}: the batch is empty (shape [${xs.join(', ')}])`);
  if (x.device !== y.device)
    throw new MetricInputError(
      'E_SHAPE',
      `${metric}: x and y must be on the same device but x is on ${x.device} and y on ${y.device}`,
    );
  for (const [name, t] of [
    ['x', x],
    ['y', y],
  ] as const) {
    const dt = t.dtype;
    if (dt !== 'float32' && dt !== 'float64' && dt !== 'float16' && dt !== 'bfloat16') {
      throw new ArgumentError(
        `${metric}: expected floating-point images but ${name} is ${dt} (convert with .to('float32'))`,
      );
    }
  }
  const ch = xs[1]!;
  if (c.channels !== undefined && !c.channels.includes(ch)) {
    const names = c.channels.map((n) => (n === 1 ? '1 (greyscale)' : n === 3 ? '3 (RGB)' : String(n)));
    throw new MetricInputError(
      'E_SHAPE',
      `${metric}: expected ${names.join(' or ')} channels but received ${ch} (shape [${xs.join(', ')}])`,
    );
  }
  if (c.minSize !== undefined && (xs[2]! < c.minSize || xs[3]! < c.minSize)) {
    throw new MetricInputError(
      'E_SHAPE',
      `${metric}: images must be at least ${c.minSize}×${c.minSize} but are ${xs[2]}×${xs[3]}`,
    );
  }
  if (c.checkRange ?? true) {
    for (const [name, t] of [
      ['x', x],
      ['y', y],
    ] as const) {
      const [lo, hi] = noGrad(() => scope(() => [t.min().item(), t.max().item()]));
      if (!(lo! >= 0) || !(hi! <= dr)) {
        throw new MetricInputError(
          'E_RANGE',
          `${metric}: ${name} has values outside [0, ${dr}] (dataRange ${dr}): min ${lo}, max ${hi}`,
        );
      }
    }
  }
  return dr;
}

/** piq's `_reduce` over the batch dimension. */
export function reduce(metric: string, score: Tensor, reduction: Reduction | undefined): Tensor {
  switch (reduction ?? 'mean') {
    case 'none':
      return score;
    case 'mean':
      return score.mean(0);
    case 'sum':
      return score.sum(0);
    default:
      throw new ArgumentError(
        `${metric}: expected reduction to be 'none', 'mean' or 'sum' but received ${describe(reduction)}`,
      );
  }
}

/** Checks a reduction before any work is done. */
export function checkReduction(metric: string, reduction: unknown): void {
  if (reduction !== undefined && reduction !== 'none' && reduction !== 'mean' && reduction !== 'sum') {
    throw new ArgumentError(
      `${metric}: expected reduction to be 'none', 'mean' or 'sum' but received ${describe(reduction)}`,
    );
  }
}

/** A constant 2-d matrix in the dtype/device of `like`. */
function matrix(rows: readonly (readonly number[])[], like: Tensor): Tensor {
  return tensor(Float64Array.from(rows.flat()), [rows.length, rows[0]!.length], {
    dtype: like.dtype,
    device: like.device,
  });
}

/** x (N, 3, H, W) times a 3×3 colour matrix per pixel: torch.matmul(x.permute(0, 2, 3, 1), W.t()).permute(0, 3, 1, 2). */
function colourTransform(x: Tensor, w: readonly (readonly number[])[]): Tensor {
  return scope(() => x.permute(0, 2, 3, 1).matmul(matrix(w, x).transpose(0, 1)).permute(0, 3, 1, 2));
}

/** RGB → YIQ (piq rgb2yiq; Y = 0.299 R + 0.587 G + 0.114 B). */
export function rgb2yiq(x: Tensor): Tensor {
  return colourTransform(x, [
    [0.299, 0.587, 0.114],
    [0.5959, -0.2746, -0.3213],
    [0.2115, -0.5227, 0.3112],
  ]);
}

/** RGB → LMN (piq rgb2lmn, from VSI: Zhang, Shen & Li 2014). */
export function rgb2lmn(x: Tensor): Tensor {
  return colourTransform(x, [
    [0.06, 0.63, 0.27],
    [0.3, 0.04, -0.35],
    [0.34, -0.6, 0.17],
  ]);
}

/** RGB → LHM (piq rgb2lhm, from MDSI: Nafchi et al. 2016, arXiv:1608.07433). */
export function rgb2lhm(x: Tensor): Tensor {
  return colourTransform(x, [
    [0.2989, 0.587, 0.114],
    [0.3, 0.04, -0.35],
    [0.34, -0.6, 0.17],
  ]);
}

/** sRGB in [0, 1] → CIE XYZ (D65), as piq rgb2xyz. */
export function rgb2xyz(x: Tensor): Tensor {
  return scope(() => {
    const below = x.le(0.04045).to(x.dtype);
    const above = x.gt(0.04045).to(x.dtype);
    const tmp = x.div(12.92).mul(below).add(x.add(0.055).div(1.055).pow(2.4).mul(above));
    return colourTransform(tmp, [
      [0.4124564, 0.3575761, 0.1804375],
      [0.2126729, 0.7151522, 0.072175],
      [0.0193339, 0.119192, 0.9503041],
    ]);
  });
}

/** XYZ → CIE Lab with the D50 / 2° white point (piq xyz2lab defaults). */
export function xyz2lab(x: Tensor): Tensor {
  const epsilon = 0.008856;
  const kappa = 903.3;
  return scope(() => {
    const white = tensor(Float64Array.of(0.9642119944211994, 1, 0.8251882845188288), [1, 3, 1, 1], {
      dtype: x.dtype,
      device: x.device,
    });
    const tmp = x.div(white);
    const below = tmp.le(epsilon).to(x.dtype);
    const above = tmp.gt(epsilon).to(x.dtype);
    const f = tmp
      .pow(1 / 3)
      .mul(above)
      .add(tmp.mul(kappa).add(16).div(116).mul(below));
    const bias = tensor(Float64Array.of(-16, 0, 0), [1, 3, 1, 1], { dtype: x.dtype, device: x.device });
    return colourTransform(f, [
      [0, 116, 0],
      [500, -500, 0],
      [0, 200, -200],
    ]).add(bias);
  });
}

/** RGB in [0, dataRange] → Lab (piq rgb2lab). */
export function rgb2lab(x: Tensor, dataRange = 255): Tensor {
  return scope(() => xyz2lab(rgb2xyz(x.div(dataRange))));
}

/** 2-d Gaussian N(0, sigma²) of odd or even size, normalised to sum 1: shape (1, k, k) (piq gaussian_filter). */
export function gaussianFilter(kernelSize: number, sigma: number, dtype: DType, device: Device): Tensor {
  return scope(() => {
    const coords = arange(0, kernelSize, 1, { dtype, device }).sub((kernelSize - 1) / 2);
    const g = coords.pow(2);
    const e = g
      .unsqueeze(0)
      .add(g.unsqueeze(1))
      .neg()
      .div(2 * sigma ** 2)
      .exp();
    return e.div(e.sum()).unsqueeze(0);
  });
}

/** Normalised 3×3 Scharr kernel in x (1, 3, 3). */
export function scharrFilter(dtype: DType, device: Device): Tensor {
  return scope(() => tensor(Float64Array.of(-3, 0, 3, -10, 0, 10, -3, 0, 3), [1, 3, 3], { dtype, device }).div(16));
}

/** Normalised 3×3 Prewitt kernel in x (1, 3, 3). */
export function prewittFilter(dtype: DType, device: Device): Tensor {
  return scope(() => tensor(Float64Array.of(-1, 0, 1, -1, 0, 1, -1, 0, 1), [1, 3, 3], { dtype, device }).div(3));
}

/** Haar kernel (1, k, k): +1/k in the top half, −1/k in the bottom half. */
export function haarFilter(kernelSize: number, dtype: DType, device: Device): Tensor {
  const v = new Float64Array(kernelSize * kernelSize);
  const w = 1 / kernelSize;
  for (let i = 0; i < kernelSize; i++)
    for (let j = 0; j < kernelSize; j++) v[i * kernelSize + j] = i < Math.floor(kernelSize / 2) ? w : -w;
  return tensor(v, [1, kernelSize, kernelSize], { dtype, device });
}

/** The x kernel and its transpose stacked as conv weights (2, 1, k, k). */
export function xyKernels(k: Tensor): Tensor {
  return scope(() => stack([k, k.transpose(-1, -2)]));
}

/** Dice-like similarity (2ab − αab + c) / (a² + b² − αab + c) (piq similarity_map). */
export function similarityMap(a: Tensor, b: Tensor, constant: number, alpha = 0): Tensor {
  return scope(() => {
    const num = a.mul(2.0).mul(b).sub(a.mul(alpha).mul(b)).add(constant);
    const den = a.pow(2).add(b.pow(2)).sub(a.mul(alpha).mul(b)).add(constant);
    return num.div(den);
  });
}

/** Gradient magnitude √(Σ (x ⊛ k)²) over a stack of kernels, same padding (piq gradient_map). */
export function gradientMap(x: Tensor, kernels: Tensor): Tensor {
  return scope(() => {
    const padding = Math.floor(kernels.shape[kernels.ndim - 1]! / 2);
    const grads = F.conv2d(x, kernels, null, { padding });
    return grads.pow(2).sum(-3, true).sqrt();
  });
}

/** np.fft.ifftshift over every dimension (piq ifftshift). */
export function ifftshift(x: Tensor): Tensor {
  const shape = x.shape;
  return x.roll(
    shape.map((n) => -Math.floor(n / 2)),
    shape.map((_, i) => i),
  );
}

/** Centred coordinate grids in [-0.5, 0.5) ('ij' indexing), as piq get_meshgrid. */
export function getMeshgrid(size: readonly [number, number], dtype: DType, device: Device): [Tensor, Tensor] {
  return scope(() => {
    const axis = (n: number): Tensor =>
      n % 2 === 1
        ? arange(-(n - 1) / 2, n / 2, 1, { dtype, device }).div(n - 1)
        : arange(-n / 2, n / 2, 1, { dtype, device }).div(n);
    const [h, w] = size;
    const gx = axis(h).unsqueeze(1).expand(h, w);
    const gy = axis(w).unsqueeze(0).expand(h, w);
    return [gx, gy];
  });
}

/**
 * Power of a real 4-d tensor that may be negative, as a complex number (…, 2) = (re, im): r^e·(cos eφ, sin eφ)
 * with φ = atan2(0, base); or of a complex (…, 2) tensor (piq pow_for_complex).
 */
export function powForComplex(base: Tensor, exp: number): Tensor {
  return scope(() => {
    let r: Tensor;
    let phi: Tensor;
    if (base.ndim === 4) {
      r = base.abs();
      phi = zerosLike(base).atan2(base);
    } else {
      r = base.pow(2).sum(-1).sqrt();
      phi = base.select(-1, 1).atan2(base.select(-1, 0));
    }
    const rp = r.pow(exp);
    const pp = phi.mul(exp);
    return stack([rp.mul(pp.cos()), rp.mul(pp.sin())], -1);
  });
}
