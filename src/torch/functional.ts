/**
 * Neural-network functions (torch.nn.functional), on ATen operators. Options objects carry
 * PyTorch's defaults; validation happens here so native code gets only well-formed calls.
 */
import { ArgumentError, describe } from '../errors.js';
import { checkInt, checkInts, checkOptInt, isInt } from './check.js';
import { dtypeCode, type DType } from './dtype.js';
import { hasOp, op, schemaOf } from './ops.js';
import { needsFp32, wantsChannelsLast } from './precision.js';
import { Tensor, internal } from './tensor.js';

const { wrapResult } = internal;
type Pair = number | readonly [number, number];

const O = {
  conv2d: op('aten::conv2d'),
  conv2dPad: op('aten::conv2d', 'padding'),
  convT2d: op('aten::conv_transpose2d', 'input'),
  linear: op('aten::linear'),
  groupNorm: op('aten::group_norm'),
  layerNorm: op('aten::layer_norm'),
  batchNorm: op('aten::batch_norm'),
  upNearest: op('aten::upsample_nearest2d', 'vec'),
  upNearestExact: op('aten::_upsample_nearest_exact2d', 'vec'),
  upBilinear: op('aten::upsample_bilinear2d', 'vec'),
  upBilinearAA: op('aten::_upsample_bilinear2d_aa', 'vec'),
  upBicubic: op('aten::upsample_bicubic2d', 'vec'),
  upBicubicAA: op('aten::_upsample_bicubic2d_aa', 'vec'),
  constantPad: op('aten::constant_pad_nd'),
  reflect1d: op('aten::reflection_pad1d'),
  reflect2d: op('aten::reflection_pad2d'),
  replicate1d: op('aten::replication_pad1d'),
  replicate2d: op('aten::replication_pad2d'),
  avgPool2d: op('aten::avg_pool2d'),
  maxPool2d: op('aten::max_pool2d'),
  adaptiveAvgPool2d: op('aten::adaptive_avg_pool2d'),
  pixelShuffle: op('aten::pixel_shuffle'),
  pixelUnshuffle: op('aten::pixel_unshuffle'),
  mseLoss: op('aten::mse_loss'),
  l1Loss: op('aten::l1_loss'),
  dropout: op('aten::dropout'),
  unfold: op('aten::im2col'),
  cosineSimilarity: op('aten::cosine_similarity'),
};

function pair(v: Pair, what: string): [number, number] {
  const p: readonly number[] = typeof v === 'number' ? [v, v] : v;
  if (p.length !== 2 || !p.every(isInt))
    throw new ArgumentError(`Expected an integer or a pair of integers for ${what} but received ${describe(v)}`);
  return [p[0]!, p[1]!];
}

function need4d(x: Tensor, fn: string): void {
  if (x.ndim !== 4)
    throw new ArgumentError(`${fn}: expected a 4-d NCHW tensor but received shape [${x.shape.join(', ')}]`);
}

export interface Conv2dOptions {
  stride?: Pair;
  padding?: Pair | 'same' | 'valid';
  dilation?: Pair;
  groups?: number;
}
export function conv2d(x: Tensor, weight: Tensor, bias: Tensor | null = null, o: Conv2dOptions = {}): Tensor {
  const stride = pair(o.stride ?? 1, 'stride');
  const dilation = pair(o.dilation ?? 1, 'dilation');
  const groups = checkInt(o.groups ?? 1, 'groups', { min: 1 });
  const b = bias?.handle ?? null;
  using xl = wantsChannelsLast(x.ndim) ? x.contiguous('channels-last') : null;
  const input = (xl ?? x).handle;
  if (typeof o.padding === 'string')
    return wrapResult(O.conv2dPad(input, weight.handle, b, stride, o.padding, dilation, groups));
  return wrapResult(O.conv2d(input, weight.handle, b, stride, pair(o.padding ?? 0, 'padding'), dilation, groups));
}

/** Under a reduced precision, normalisations see fp32 (their statistics in bf16 spoil gradients). */
function normInput(x: Tensor): Tensor | null {
  return needsFp32(x.dtype) ? x.float() : null;
}

export interface ConvTranspose2dOptions {
  stride?: Pair;
  padding?: Pair;
  outputPadding?: Pair;
  groups?: number;
  dilation?: Pair;
}
export function convTranspose2d(
  x: Tensor,
  weight: Tensor,
  bias: Tensor | null = null,
  o: ConvTranspose2dOptions = {},
): Tensor {
  return wrapResult(
    O.convT2d(
      x.handle,
      weight.handle,
      bias?.handle ?? null,
      pair(o.stride ?? 1, 'stride'),
      pair(o.padding ?? 0, 'padding'),
      pair(o.outputPadding ?? 0, 'outputPadding'),
      checkInt(o.groups ?? 1, 'groups', { min: 1 }),
      pair(o.dilation ?? 1, 'dilation'),
    ),
  );
}

export function linear(x: Tensor, weight: Tensor, bias: Tensor | null = null): Tensor {
  return wrapResult(O.linear(x.handle, weight.handle, bias?.handle ?? null));
}

export function groupNorm(
  x: Tensor,
  numGroups: number,
  weight: Tensor | null = null,
  bias: Tensor | null = null,
  eps = 1e-5,
): Tensor {
  const c = x.shape[1];
  if (c === undefined || !isInt(numGroups) || numGroups < 1 || c % numGroups !== 0) {
    throw new ArgumentError(`groupNorm: ${c ?? 'no'} channels cannot be split into ${describe(numGroups)} groups`);
  }
  using x32 = normInput(x);
  return wrapResult(O.groupNorm((x32 ?? x).handle, numGroups, weight?.handle ?? null, bias?.handle ?? null, eps, true));
}

export function layerNorm(
  x: Tensor,
  normalizedShape: readonly number[],
  weight: Tensor | null = null,
  bias: Tensor | null = null,
  eps = 1e-5,
): Tensor {
  using x32 = normInput(x);
  return wrapResult(
    O.layerNorm(
      (x32 ?? x).handle,
      checkInts(normalizedShape, 'normalizedShape'),
      weight?.handle ?? null,
      bias?.handle ?? null,
      eps,
      true,
    ),
  );
}

export interface BatchNormOptions {
  weight?: Tensor | null;
  bias?: Tensor | null;
  training?: boolean;
  momentum?: number;
  eps?: number;
}
export function batchNorm(
  x: Tensor,
  runningMean: Tensor | null,
  runningVar: Tensor | null,
  o: BatchNormOptions = {},
): Tensor {
  using x32 = normInput(x);
  return wrapResult(
    O.batchNorm(
      (x32 ?? x).handle,
      o.weight?.handle ?? null,
      o.bias?.handle ?? null,
      runningMean?.handle ?? null,
      runningVar?.handle ?? null,
      o.training ?? false,
      o.momentum ?? 0.1,
      o.eps ?? 1e-5,
      true,
    ),
  );
}

export const relu = (x: Tensor): Tensor => x.relu();
export const silu = (x: Tensor): Tensor => x.silu();
export const sigmoid = (x: Tensor): Tensor => x.sigmoid();
export const tanh = (x: Tensor): Tensor => x.tanh();
export const gelu = (x: Tensor, approximate: 'none' | 'tanh' = 'none'): Tensor => x.gelu(approximate);
export const softmax = (x: Tensor, dim: number, dtype?: DType): Tensor => x.softmax(dim, dtype);
export const logSoftmax = (x: Tensor, dim: number, dtype?: DType): Tensor => x.logSoftmax(dim, dtype);

export type InterpolateMode = 'nearest' | 'nearest-exact' | 'bilinear' | 'bicubic' | 'area';
export interface InterpolateOptions {
  size?: Pair;
  scaleFactor?: number | readonly [number, number];
  mode?: InterpolateMode;
  alignCorners?: boolean;
  /** Anti-aliased down-sampling (bilinear/bicubic), as F.interpolate(antialias=True) and PIL. */
  antialias?: boolean;
}
/** F.interpolate for NCHW tensors, with PyTorch's semantics for size vs scale factor. */
export function interpolate(x: Tensor, o: InterpolateOptions): Tensor {
  need4d(x, 'interpolate');
  const mode = o.mode ?? 'nearest';
  if ((o.size === undefined) === (o.scaleFactor === undefined))
    throw new ArgumentError('interpolate: give exactly one of size and scaleFactor');
  const size = o.size === undefined ? null : pair(o.size, 'size');
  const scales =
    o.scaleFactor === undefined
      ? null
      : typeof o.scaleFactor === 'number'
        ? [o.scaleFactor, o.scaleFactor]
        : [...o.scaleFactor];
  if (scales !== null && !scales.every((s) => Number.isFinite(s) && s > 0))
    throw new ArgumentError(`interpolate: scaleFactor must be positive but received ${describe(o.scaleFactor)}`);
  const linearish = mode === 'bilinear' || mode === 'bicubic';
  if (o.alignCorners !== undefined && !linearish)
    throw new ArgumentError(`interpolate: alignCorners only applies to bilinear and bicubic, not '${mode}'`);
  if (o.antialias && !linearish)
    throw new ArgumentError(`interpolate: antialias only applies to bilinear and bicubic, not '${mode}'`);
  const ac = o.alignCorners ?? false;
  switch (mode) {
    case 'nearest':
      return wrapResult(O.upNearest(x.handle, size, scales));
    case 'nearest-exact':
      return wrapResult(O.upNearestExact(x.handle, size, scales));
    case 'bilinear':
      return wrapResult((o.antialias ? O.upBilinearAA : O.upBilinear)(x.handle, size, ac, scales));
    case 'bicubic':
      return wrapResult((o.antialias ? O.upBicubicAA : O.upBicubic)(x.handle, size, ac, scales));
    case 'area': {
      const [h, w] = [x.shape[2]!, x.shape[3]!];
      const out = size ?? [Math.floor(h * scales![0]!), Math.floor(w * scales![1]!)];
      return wrapResult(O.adaptiveAvgPool2d(x.handle, out));
    }
    default:
      throw new ArgumentError(
        `interpolate: unknown mode ${describe(mode)}; expected nearest, nearest-exact, bilinear, bicubic or area`,
      );
  }
}

export type PadMode = 'constant' | 'reflect' | 'replicate';
/** F.pad: `pads` lists (left, right, top, bottom, ...) from the last dim backwards. */
export function pad(x: Tensor, pads: readonly number[], mode: PadMode = 'constant', value = 0): Tensor {
  if (pads.length % 2 !== 0 || !pads.every(isInt))
    throw new ArgumentError(`pad: expected an even number of integers but received [${pads.join(', ')}]`);
  if (mode === 'constant') return wrapResult(O.constantPad(x.handle, [...pads], value));
  if (value !== 0) throw new ArgumentError(`pad: value only applies to mode 'constant', not '${mode}'`);
  const nd = x.ndim;
  if (pads.length === 4 && (nd === 3 || nd === 4))
    return wrapResult((mode === 'reflect' ? O.reflect2d : O.replicate2d)(x.handle, [...pads]));
  if (pads.length === 2 && (nd === 2 || nd === 3))
    return wrapResult((mode === 'reflect' ? O.reflect1d : O.replicate1d)(x.handle, [...pads]));
  throw new ArgumentError(
    `pad: mode '${mode}' supports 4 pads on 3-d/4-d or 2 pads on 2-d/3-d tensors; received ${pads.length} pads on a ${nd}-d tensor`,
  );
}

export interface Pool2dOptions {
  stride?: Pair;
  padding?: Pair;
  ceilMode?: boolean;
}
/** A 2-d pooling's kernel, stride (the kernel's unless given) and padding, checked. */
function poolWindow(kernel: Pair, o: Pool2dOptions): [[number, number], [number, number], [number, number]] {
  const k = pair(kernel, 'kernel');
  return [k, pair(o.stride ?? k, 'stride'), pair(o.padding ?? 0, 'padding')];
}
export function avgPool2d(
  x: Tensor,
  kernel: Pair,
  o: Pool2dOptions & { countIncludePad?: boolean; divisorOverride?: number } = {},
): Tensor {
  return wrapResult(
    O.avgPool2d(
      x.handle,
      ...poolWindow(kernel, o),
      o.ceilMode ?? false,
      o.countIncludePad ?? true,
      checkOptInt(o.divisorOverride, 'divisorOverride'),
    ),
  );
}
export function maxPool2d(x: Tensor, kernel: Pair, o: Pool2dOptions & { dilation?: Pair } = {}): Tensor {
  return wrapResult(
    O.maxPool2d(x.handle, ...poolWindow(kernel, o), pair(o.dilation ?? 1, 'dilation'), o.ceilMode ?? false),
  );
}
export function adaptiveAvgPool2d(x: Tensor, outputSize: Pair): Tensor {
  return wrapResult(O.adaptiveAvgPool2d(x.handle, pair(outputSize, 'outputSize')));
}
export function pixelShuffle(x: Tensor, factor: number): Tensor {
  return wrapResult(O.pixelShuffle(x.handle, checkInt(factor, 'factor', { min: 1 })));
}
export function pixelUnshuffle(x: Tensor, factor: number): Tensor {
  return wrapResult(O.pixelUnshuffle(x.handle, checkInt(factor, 'factor', { min: 1 })));
}
/** im2col (F.unfold): [N, C*kh*kw, L]. */
export function unfold(x: Tensor, kernel: Pair, o: { dilation?: Pair; padding?: Pair; stride?: Pair } = {}): Tensor {
  return wrapResult(
    O.unfold(
      x.handle,
      pair(kernel, 'kernel'),
      pair(o.dilation ?? 1, 'dilation'),
      pair(o.padding ?? 0, 'padding'),
      pair(o.stride ?? 1, 'stride'),
    ),
  );
}

const REDUCTION = { none: 0, mean: 1, sum: 2 } as const;
export type Reduction = keyof typeof REDUCTION;
export function mseLoss(input: Tensor, target: Tensor, reduction: Reduction = 'mean'): Tensor {
  return wrapResult(O.mseLoss(input.handle, target.handle, REDUCTION[reduction]));
}
export function l1Loss(input: Tensor, target: Tensor, reduction: Reduction = 'mean'): Tensor {
  return wrapResult(O.l1Loss(input.handle, target.handle, REDUCTION[reduction]));
}
export function cosineSimilarity(a: Tensor, b: Tensor, dim = 1, eps = 1e-8): Tensor {
  return wrapResult(O.cosineSimilarity(a.handle, b.handle, checkInt(dim, 'dim'), eps));
}
export function dropout(x: Tensor, p: number, training: boolean): Tensor {
  return wrapResult(O.dropout(x.handle, p, training));
}

const sdpaNative = op('aten::scaled_dot_product_attention');
let sdpaAvailable: boolean | undefined;

export interface AttentionOptions {
  /** Additive float mask, or boolean mask where true means "may attend". */
  attnMask?: Tensor | null;
  isCausal?: boolean;
  /** Defaults to 1/sqrt(head dim). */
  scale?: number;
  /** Use the composed formula even where libtorch has a fused kernel (for exact comparisons). */
  composed?: boolean;
}
/**
 * softmax(q kᵀ · scale + mask) v over the last two dims. libtorch >= 2.0 has a fused kernel;
 * 1.13 does not, so it is composed from matmul + softmax — never from baddbmm(beta=0) (DESIGN §7).
 */
export function scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, o: AttentionOptions = {}): Tensor {
  const d = q.shape[q.ndim - 1]!;
  const scale = o.scale ?? 1 / Math.sqrt(d);
  sdpaAvailable ??= hasOp('aten::scaled_dot_product_attention');
  if (sdpaAvailable && !o.composed && (o.scale === undefined || hasScaleArg())) {
    return wrapResult(
      sdpaNative(
        q.handle,
        k.handle,
        v.handle,
        o.attnMask?.handle ?? null,
        0,
        o.isCausal ?? false,
        ...(o.scale === undefined ? [] : [scale]),
      ),
    );
  }
  using kt = k.transpose(-2, -1);
  using raw = q.matmul(kt);
  let scores = raw.mul(scale);
  const L = q.shape[q.ndim - 2]!;
  const S = k.shape[k.ndim - 2]!;
  if (o.isCausal) {
    using ones_ = zerosBool(L, S, q);
    using causal = ones_.logicalNot().tril();
    const masked = scores.maskedFill(causal.logicalNot(), -Infinity);
    scores.dispose();
    scores = masked;
  }
  if (o.attnMask) {
    const next =
      o.attnMask.dtype === 'bool' ? scores.maskedFill(o.attnMask.logicalNot(), -Infinity) : scores.add(o.attnMask);
    scores.dispose();
    scores = next;
  }
  using probs = scores.softmax(-1);
  scores.dispose();
  return probs.matmul(v);
}

let scaleArg: boolean | undefined;
function hasScaleArg(): boolean {
  // `scale` was added to the schema in libtorch 2.1.
  scaleArg ??= (() => {
    try {
      return /\bscale\b/.test(schemaText());
    } catch {
      return false;
    }
  })();
  return scaleArg;
}
function schemaText(): string {
  return schemaOf('aten::scaled_dot_product_attention');
}
const zerosOp = op('aten::zeros');
function zerosBool(l: number, s: number, like: Tensor): Tensor {
  return wrapResult(zerosOp([l, s], dtypeCode('bool'), undefined, like.device));
}
