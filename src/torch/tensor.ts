/**
 * Tensor: one JS object owning one native at::Tensor reference. Method names follow PyTorch,
 * camelCased; every op goes through the ATen dispatcher, so values, type promotion and autograd
 * are PyTorch's own. Free memory with `dispose()`, `using`, or `scope()`.
 */
import { inspect } from 'node:util';
import { ArgumentError, ImmunizeError, describe } from '../errors.js';
import { checkDevice, type Device } from './device.js';
import { dtypeCode, dtypeFromCode, isComplex, type DType } from './dtype.js';
import { checkInt, checkInts, checkOptInt } from './check.js';
import { native, type Handle } from './native.js';
import { needsFp32 } from './precision.js';

/** c10::MemoryFormat::ChannelsLast. */
const CHANNELS_LAST = 2;
import { op, torchError } from './ops.js';
import { registerTensorClass, track } from './scope.js';

export type Shape = readonly number[];
export type Scalar = number | boolean;
export type Dims = number | readonly number[];

const O = {
  addT: op('aten::add', 'Tensor'),
  addS: op('aten::add', 'Scalar'),
  addT_: op('aten::add_', 'Tensor'),
  addS_: op('aten::add_', 'Scalar'),
  subT: op('aten::sub', 'Tensor'),
  subS: op('aten::sub', 'Scalar'),
  subT_: op('aten::sub_', 'Tensor'),
  subS_: op('aten::sub_', 'Scalar'),
  mulT: op('aten::mul', 'Tensor'),
  mulS: op('aten::mul', 'Scalar'),
  mulT_: op('aten::mul_', 'Tensor'),
  mulS_: op('aten::mul_', 'Scalar'),
  divT: op('aten::div', 'Tensor'),
  divS: op('aten::div', 'Scalar'),
  divT_: op('aten::div_', 'Tensor'),
  divS_: op('aten::div_', 'Scalar'),
  divTMode: op('aten::div', 'Tensor_mode'),
  divSMode: op('aten::div', 'Scalar_mode'),
  alias: op('aten::alias'),
  rsubS: op('aten::rsub', 'Scalar'),
  powT: op('aten::pow', 'Tensor_Tensor'),
  powS: op('aten::pow', 'Tensor_Scalar'),
  powSelfS: op('aten::pow', 'Scalar'),
  remainderS: op('aten::remainder', 'Scalar'),
  remainderT: op('aten::remainder', 'Tensor'),
  neg: op('aten::neg'),
  exp: op('aten::exp'),
  log: op('aten::log'),
  log2: op('aten::log2'),
  log10: op('aten::log10'),
  log1p: op('aten::log1p'),
  expm1: op('aten::expm1'),
  sqrt: op('aten::sqrt'),
  rsqrt: op('aten::rsqrt'),
  abs: op('aten::abs'),
  sign: op('aten::sign'),
  square: op('aten::square'),
  reciprocal: op('aten::reciprocal'),
  floor: op('aten::floor'),
  ceil: op('aten::ceil'),
  round: op('aten::round'),
  roundDec: op('aten::round', 'decimals'),
  trunc: op('aten::trunc'),
  frac: op('aten::frac'),
  sin: op('aten::sin'),
  cos: op('aten::cos'),
  tan: op('aten::tan'),
  atan: op('aten::atan'),
  atan2: op('aten::atan2'),
  asin: op('aten::asin'),
  acos: op('aten::acos'),
  sigmoid: op('aten::sigmoid'),
  tanh: op('aten::tanh'),
  relu: op('aten::relu'),
  silu: op('aten::silu'),
  gelu: op('aten::gelu'),
  erf: op('aten::erf'),
  clamp: op('aten::clamp'),
  clampT: op('aten::clamp', 'Tensor'),
  clamp_: op('aten::clamp_'),
  clampT_: op('aten::clamp_', 'Tensor'),
  minimum: op('aten::minimum'),
  maximum: op('aten::maximum'),
  whereSelf: op('aten::where', 'self'),
  whereScalarOther: op('aten::where', 'ScalarOther'),
  whereScalarSelf: op('aten::where', 'ScalarSelf'),
  whereScalar: op('aten::where', 'Scalar'),
  eqT: op('aten::eq', 'Tensor'),
  eqS: op('aten::eq', 'Scalar'),
  neT: op('aten::ne', 'Tensor'),
  neS: op('aten::ne', 'Scalar'),
  ltT: op('aten::lt', 'Tensor'),
  ltS: op('aten::lt', 'Scalar'),
  leT: op('aten::le', 'Tensor'),
  leS: op('aten::le', 'Scalar'),
  gtT: op('aten::gt', 'Tensor'),
  gtS: op('aten::gt', 'Scalar'),
  geT: op('aten::ge', 'Tensor'),
  geS: op('aten::ge', 'Scalar'),
  logicalAnd: op('aten::logical_and'),
  logicalOr: op('aten::logical_or'),
  logicalNot: op('aten::logical_not'),
  logicalXor: op('aten::logical_xor'),
  isnan: op('aten::isnan'),
  isfinite: op('aten::isfinite'),
  isinf: op('aten::isinf'),
  nanToNum: op('aten::nan_to_num'),
  allclose: op('aten::allclose'),
  equal: op('aten::equal'),
  lerpS: op('aten::lerp', 'Scalar'),
  lerpT: op('aten::lerp', 'Tensor'),
  sumAll: op('aten::sum'),
  sumDim: op('aten::sum', 'dim_IntList'),
  meanAll: op('aten::mean'),
  meanDim: op('aten::mean', 'dim'),
  prodAll: op('aten::prod'),
  prodDim: op('aten::prod', 'dim_int'),
  varCorr: op('aten::var', 'correction'),
  stdCorr: op('aten::std', 'correction'),
  maxAll: op('aten::max'),
  minAll: op('aten::min'),
  maxDim: op('aten::max', 'dim'),
  minDim: op('aten::min', 'dim'),
  amax: op('aten::amax'),
  amin: op('aten::amin'),
  argmax: op('aten::argmax'),
  argmin: op('aten::argmin'),
  vectorNorm: op('aten::linalg_vector_norm'),
  logsumexp: op('aten::logsumexp'),
  all: op('aten::all'),
  allDim: op('aten::all', 'dim'),
  any: op('aten::any'),
  anyDim: op('aten::any', 'dim'),
  cumsum: op('aten::cumsum'),
  cumprod: op('aten::cumprod'),
  sort: op('aten::sort'),
  sortStable: op('aten::sort', 'stable'),
  argsort: op('aten::argsort'),
  topk: op('aten::topk'),
  kthvalue: op('aten::kthvalue'),
  median: op('aten::median'),
  medianDim: op('aten::median', 'dim'),
  quantile: op('aten::quantile'),
  quantileS: op('aten::quantile', 'scalar'),
  matmul: op('aten::matmul'),
  mm: op('aten::mm'),
  bmm: op('aten::bmm'),
  baddbmm: op('aten::baddbmm'),
  addmm: op('aten::addmm'),
  outer: op('aten::outer'),
  dot: op('aten::dot'),
  reshape: op('aten::reshape'),
  view: op('aten::view'),
  viewDtype: op('aten::view', 'dtype'),
  permute: op('aten::permute'),
  transpose: op('aten::transpose', 'int'),
  narrow: op('aten::narrow'),
  slice: op('aten::slice', 'Tensor'),
  select: op('aten::select', 'int'),
  index: op('aten::index', 'Tensor'),
  indexSelect: op('aten::index_select'),
  indexPut_: op('aten::index_put_'),
  gather: op('aten::gather'),
  scatter: op('aten::scatter', 'src'),
  maskedFillS: op('aten::masked_fill', 'Scalar'),
  maskedFillT: op('aten::masked_fill', 'Tensor'),
  maskedSelect: op('aten::masked_select'),
  chunk: op('aten::chunk'),
  splitSize: op('aten::split', 'Tensor'),
  splitSizes: op('aten::split_with_sizes'),
  expand: op('aten::expand'),
  expandAs: op('aten::expand_as'),
  repeat: op('aten::repeat'),
  repeatInterleave: op('aten::repeat_interleave', 'self_int'),
  flatten: op('aten::flatten', 'using_ints'),
  unflatten: op('aten::unflatten', 'int'),
  contiguous: op('aten::contiguous'),
  squeezeAll: op('aten::squeeze'),
  squeezeDim: op('aten::squeeze', 'dim'),
  unsqueeze: op('aten::unsqueeze'),
  flip: op('aten::flip'),
  roll: op('aten::roll'),
  tril: op('aten::tril'),
  triu: op('aten::triu'),
  clone: op('aten::clone'),
  detach: op('aten::detach'),
  requiresGrad_: op('aten::requires_grad_'),
  toDtype: op('aten::to', 'dtype'),
  toDevice: op('aten::to', 'device'),
  copy_: op('aten::copy_'),
  zero_: op('aten::zero_'),
  fillS_: op('aten::fill_', 'Scalar'),
  uniform_: op('aten::uniform_'),
  normal_: op('aten::normal_'),
  item: op('aten::item'),
  real: op('aten::real'),
  imag: op('aten::imag'),
  angle: op('aten::angle'),
  viewAsReal: op('aten::view_as_real'),
  viewAsComplex: op('aten::view_as_complex'),
  complex: op('aten::complex'),
  conj: op('aten::conj_physical'),
  softmax: op('aten::softmax', 'int'),
  logSoftmax: op('aten::log_softmax', 'int'),
};

function isTensor(v: unknown): v is Tensor {
  return v instanceof Tensor;
}

/** A dim argument, checked (see check.ts). */
function checkDim(d: unknown, what = 'dim'): number {
  return checkInt(d, what);
}

/** One dim or a list of them, as the int[] that reductions take; undefined stays undefined. */
function dimList(dims: Dims | undefined, what = 'dims'): number[] | undefined {
  if (dims === undefined) return undefined;
  return typeof dims === 'number' ? [checkDim(dims, what)] : checkInts(dims, what);
}

function optDtype(dtype: DType | undefined): number | undefined {
  return dtype === undefined ? undefined : dtypeCode(dtype);
}

function wrapResult(r: unknown): Tensor {
  if (r === null || typeof r !== 'object')
    throw new ImmunizeError('E_INTERNAL', `expected a tensor from libtorch but received ${describe(r)}`);
  return new Tensor(r as Handle);
}

function wrapList(r: unknown): Tensor[] {
  return (r as Handle[]).map((h) => new Tensor(h));
}

function wrapPair(r: unknown): [Tensor, Tensor] {
  const [a, b] = r as [Handle, Handle];
  return [new Tensor(a), new Tensor(b)];
}

/** Disposed-tensor error: says what the tensor was, so the stale reference can be found. */
export class TensorDisposedError extends ImmunizeError {
  constructor(what: string) {
    super(
      'E_DISPOSED',
      `${what} was disposed and can no longer be used (was it created inside a scope() that has ended, or used after \`using\`?)`,
    );
    this.name = 'TensorDisposedError';
  }
}

export class Tensor implements Disposable {
  #h: Handle;
  #disposed = false;
  #shape: number[] | undefined;
  #desc = '';

  /** Wraps a native handle; library code only. Use tensor(), zeros(), ... to create tensors. */
  constructor(handle: Handle) {
    this.#h = handle;
    track(this);
  }

  /** The native handle; throws if disposed. */
  get handle(): Handle {
    if (this.#disposed) throw new TensorDisposedError(this.#desc);
    return this.#h;
  }

  // ---- metadata ---------------------------------------------------------------------------
  get shape(): number[] {
    if (this.#shape === undefined) this.#shape = native.shape(this.handle);
    return this.#shape.slice();
  }
  get ndim(): number {
    return this.shape.length;
  }
  dim(): number {
    return this.ndim;
  }
  size(d?: number): number | number[] {
    const s = this.shape;
    if (d === undefined) return s;
    const k = checkDim(d);
    const i = k < 0 ? k + s.length : k;
    if (i < 0 || i >= s.length)
      throw new ArgumentError(`size(${d}): dimension out of range for a ${s.length}-d tensor`);
    return s[i]!;
  }
  get numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }
  get strides(): number[] {
    return native.strides(this.handle);
  }
  get dtype(): DType {
    return dtypeFromCode(native.dtype(this.handle));
  }
  get device(): Device {
    return native.device(this.handle) as Device;
  }
  get requiresGrad(): boolean {
    return native.requiresGrad(this.handle);
  }
  get isLeaf(): boolean {
    return native.isLeaf(this.handle);
  }
  /** Name of the autograd node that made this tensor (e.g. 'ConvolutionBackward0'), or null. */
  get gradFn(): string | null {
    return native.gradFn(this.handle);
  }
  get isDisposed(): boolean {
    return this.#disposed;
  }

  /** The accumulated gradient (a new handle on the same storage), or null. */
  get grad(): Tensor | null {
    const g = native.getGrad(this.handle);
    return g === null ? null : new Tensor(g);
  }
  set grad(g: Tensor | null) {
    try {
      native.setGrad(this.handle, g === null ? null : g.handle);
    } catch (e) {
      throw torchError(e);
    }
  }

  // ---- lifetime ---------------------------------------------------------------------------
  /** Frees this handle's reference to the native tensor. Idempotent. */
  dispose(): void {
    if (this.#disposed) return;
    this.#desc = this.#describeForError();
    this.#disposed = true;
    native.dispose(this.#h);
  }
  [Symbol.dispose](): void {
    this.dispose();
  }

  #describeForError(): string {
    try {
      return `Tensor(${this.dtype}, [${native.shape(this.#h).join(', ')}], ${this.device})`;
    } catch {
      return 'Tensor';
    }
  }

  // ---- data out ---------------------------------------------------------------------------
  /**
   * Copies the values out (contiguous, CPU). float16/bfloat16 come back as Float32Array,
   * complex as interleaved (re, im) Float32Array/Float64Array, bool as Uint8Array.
   */
  toTypedArray(): Float32Array | Float64Array | Int32Array | Int16Array | Int8Array | Uint8Array | BigInt64Array {
    const dt = this.dtype;
    if (dt === 'float16' || dt === 'bfloat16') {
      using f = this.to('float32');
      return f.toTypedArray();
    }
    const buf = native.toBytes(this.handle);
    switch (dt) {
      case 'float32':
      case 'complex64':
        return new Float32Array(buf);
      case 'float64':
      case 'complex128':
        return new Float64Array(buf);
      case 'int64':
        return new BigInt64Array(buf);
      case 'int32':
        return new Int32Array(buf);
      case 'int16':
        return new Int16Array(buf);
      case 'int8':
        return new Int8Array(buf);
      default:
        return new Uint8Array(buf);
    }
  }
  /** The values as plain numbers (int64 converted with Number()). */
  toArray(): number[] {
    const a = this.toTypedArray();
    return a instanceof BigInt64Array ? Array.from(a, Number) : Array.from(a as ArrayLike<number>);
  }
  /** Raw little-endian bytes of the contiguous values (for safetensors and image I/O). */
  toBytes(): Uint8Array {
    return new Uint8Array(native.toBytes(this.handle));
  }
  /** The single value of a one-element tensor. */
  item(): number {
    if (this.numel !== 1)
      throw new ArgumentError(
        `item() needs a tensor with one element but this one has shape [${this.shape.join(', ')}]`,
      );
    const v = O.item(this.handle);
    return typeof v === 'boolean' ? Number(v) : (v as number);
  }

  // ---- conversion -------------------------------------------------------------------------
  /** Converts to a dtype, a device, or both ({dtype, device}); returns a new handle either way. */
  to(target: DType | Device | { dtype?: DType; device?: Device }): Tensor {
    if (typeof target === 'object') {
      const device = target.device === undefined ? this.device : checkDevice(target.device);
      return wrapResult(O.toDevice(this.handle, device, dtypeCode(target.dtype ?? this.dtype)));
    }
    if (target === 'cpu' || target.startsWith('cuda')) {
      return wrapResult(O.toDevice(this.handle, checkDevice(target), dtypeCode(this.dtype)));
    }
    return wrapResult(O.toDtype(this.handle, dtypeCode(target as DType)));
  }
  float(): Tensor {
    return this.to('float32');
  }
  double(): Tensor {
    return this.to('float64');
  }
  half(): Tensor {
    return this.to('float16');
  }
  long(): Tensor {
    return this.to('int64');
  }
  cpu(): Tensor {
    return this.to('cpu');
  }
  cuda(index = 0): Tensor {
    return this.to(`cuda:${checkInt(index, 'index', { min: 0 })}`);
  }
  /** Another handle on the same tensor (same storage, same autograd history). */
  alias(): Tensor {
    return wrapResult(O.alias(this.handle));
  }
  clone(): Tensor {
    return wrapResult(O.clone(this.handle));
  }
  detach(): Tensor {
    return wrapResult(O.detach(this.handle));
  }
  /** A contiguous copy (or this tensor's storage when already so), in NCHW or channels-last (NHWC in memory) order. */
  contiguous(memoryFormat: 'contiguous' | 'channels-last' = 'contiguous'): Tensor {
    return wrapResult(O.contiguous(this.handle, memoryFormat === 'channels-last' ? CHANNELS_LAST : 0));
  }
  requiresGrad_(on = true): this {
    this.#inplace(O.requiresGrad_(this.handle, on));
    return this;
  }

  #inplace(r: unknown): void {
    native.dispose(r as Handle);
    this.#shape = undefined;
  }

  // ---- elementwise ------------------------------------------------------------------------
  add(other: Tensor | Scalar, alpha: number = 1): Tensor {
    return wrapResult(isTensor(other) ? O.addT(this.handle, other.handle, alpha) : O.addS(this.handle, other, alpha));
  }
  sub(other: Tensor | Scalar, alpha: number = 1): Tensor {
    return wrapResult(isTensor(other) ? O.subT(this.handle, other.handle, alpha) : O.subS(this.handle, other, alpha));
  }
  /** other - this (Python's `s - x`). */
  rsub(other: Scalar): Tensor {
    return wrapResult(O.rsubS(this.handle, other));
  }
  mul(other: Tensor | Scalar): Tensor {
    return wrapResult(isTensor(other) ? O.mulT(this.handle, other.handle) : O.mulS(this.handle, other));
  }
  div(other: Tensor | Scalar, roundingMode?: 'trunc' | 'floor'): Tensor {
    if (roundingMode !== undefined) {
      return wrapResult(
        isTensor(other)
          ? O.divTMode(this.handle, other.handle, roundingMode)
          : O.divSMode(this.handle, other, roundingMode),
      );
    }
    return wrapResult(isTensor(other) ? O.divT(this.handle, other.handle) : O.divS(this.handle, other));
  }
  pow(exponent: Tensor | number): Tensor {
    return wrapResult(isTensor(exponent) ? O.powT(this.handle, exponent.handle) : O.powS(this.handle, exponent));
  }
  remainder(other: Tensor | number): Tensor {
    return wrapResult(isTensor(other) ? O.remainderT(this.handle, other.handle) : O.remainderS(this.handle, other));
  }
  add_(other: Tensor | Scalar, alpha: number = 1): this {
    this.#inplace(isTensor(other) ? O.addT_(this.handle, other.handle, alpha) : O.addS_(this.handle, other, alpha));
    return this;
  }
  sub_(other: Tensor | Scalar, alpha: number = 1): this {
    this.#inplace(isTensor(other) ? O.subT_(this.handle, other.handle, alpha) : O.subS_(this.handle, other, alpha));
    return this;
  }
  mul_(other: Tensor | Scalar): this {
    this.#inplace(isTensor(other) ? O.mulT_(this.handle, other.handle) : O.mulS_(this.handle, other));
    return this;
  }
  div_(other: Tensor | Scalar): this {
    this.#inplace(isTensor(other) ? O.divT_(this.handle, other.handle) : O.divS_(this.handle, other));
    return this;
  }
  neg(): Tensor {
    return wrapResult(O.neg(this.handle));
  }
  exp(): Tensor {
    return wrapResult(O.exp(this.handle));
  }
  log(): Tensor {
    return wrapResult(O.log(this.handle));
  }
  log2(): Tensor {
    return wrapResult(O.log2(this.handle));
  }
  log10(): Tensor {
    return wrapResult(O.log10(this.handle));
  }
  log1p(): Tensor {
    return wrapResult(O.log1p(this.handle));
  }
  expm1(): Tensor {
    return wrapResult(O.expm1(this.handle));
  }
  sqrt(): Tensor {
    return wrapResult(O.sqrt(this.handle));
  }
  rsqrt(): Tensor {
    return wrapResult(O.rsqrt(this.handle));
  }
  abs(): Tensor {
    return wrapResult(O.abs(this.handle));
  }
  sign(): Tensor {
    return wrapResult(O.sign(this.handle));
  }
  square(): Tensor {
    return wrapResult(O.square(this.handle));
  }
  reciprocal(): Tensor {
    return wrapResult(O.reciprocal(this.handle));
  }
  floor(): Tensor {
    return wrapResult(O.floor(this.handle));
  }
  ceil(): Tensor {
    return wrapResult(O.ceil(this.handle));
  }
  /** Round half to even, as torch.round; `decimals` as torch.round(x, decimals=n). */
  round(decimals?: number): Tensor {
    return wrapResult(
      decimals === undefined ? O.round(this.handle) : O.roundDec(this.handle, checkInt(decimals, 'decimals')),
    );
  }
  trunc(): Tensor {
    return wrapResult(O.trunc(this.handle));
  }
  frac(): Tensor {
    return wrapResult(O.frac(this.handle));
  }
  sin(): Tensor {
    return wrapResult(O.sin(this.handle));
  }
  cos(): Tensor {
    return wrapResult(O.cos(this.handle));
  }
  tan(): Tensor {
    return wrapResult(O.tan(this.handle));
  }
  asin(): Tensor {
    return wrapResult(O.asin(this.handle));
  }
  acos(): Tensor {
    return wrapResult(O.acos(this.handle));
  }
  atan(): Tensor {
    return wrapResult(O.atan(this.handle));
  }
  atan2(other: Tensor): Tensor {
    return wrapResult(O.atan2(this.handle, other.handle));
  }
  erf(): Tensor {
    return wrapResult(O.erf(this.handle));
  }
  sigmoid(): Tensor {
    return wrapResult(O.sigmoid(this.handle));
  }
  tanh(): Tensor {
    return wrapResult(O.tanh(this.handle));
  }
  relu(): Tensor {
    return wrapResult(O.relu(this.handle));
  }
  silu(): Tensor {
    return wrapResult(O.silu(this.handle));
  }
  /** approximate: 'none' (exact erf form) or 'tanh', as torch.nn.functional.gelu. */
  gelu(approximate: 'none' | 'tanh' = 'none'): Tensor {
    return wrapResult(O.gelu(this.handle, approximate));
  }
  /** Under a reduced precision (precision.ts) a bf16/fp16 input is computed in fp32 unless `dtype` says otherwise. */
  softmax(dim: number, dtype?: DType): Tensor {
    return wrapResult(O.softmax(this.handle, checkDim(dim), optDtype(dtype ?? this.#fp32IfReduced())));
  }
  logSoftmax(dim: number, dtype?: DType): Tensor {
    return wrapResult(O.logSoftmax(this.handle, checkDim(dim), optDtype(dtype ?? this.#fp32IfReduced())));
  }
  #fp32IfReduced(): DType | undefined {
    return needsFp32(this.dtype) ? 'float32' : undefined;
  }
  clamp(min?: number | Tensor | null, max?: number | Tensor | null): Tensor {
    if (isTensor(min) || isTensor(max)) {
      return wrapResult(O.clampT(this.handle, handleOrNull(min), handleOrNull(max)));
    }
    if (min == null && max == null) throw new ArgumentError('clamp() needs at least one of min and max');
    return wrapResult(O.clamp(this.handle, min ?? null, max ?? null));
  }
  clamp_(min?: number | Tensor | null, max?: number | Tensor | null): this {
    if (isTensor(min) || isTensor(max)) this.#inplace(O.clampT_(this.handle, handleOrNull(min), handleOrNull(max)));
    else {
      if (min == null && max == null) throw new ArgumentError('clamp_() needs at least one of min and max');
      this.#inplace(O.clamp_(this.handle, min ?? null, max ?? null));
    }
    return this;
  }
  clampMin(min: number): Tensor {
    return this.clamp(min, null);
  }
  clampMax(max: number): Tensor {
    return this.clamp(null, max);
  }
  minimum(other: Tensor): Tensor {
    return wrapResult(O.minimum(this.handle, other.handle));
  }
  maximum(other: Tensor): Tensor {
    return wrapResult(O.maximum(this.handle, other.handle));
  }
  lerp(end: Tensor, weight: number | Tensor): Tensor {
    return wrapResult(
      isTensor(weight) ? O.lerpT(this.handle, end.handle, weight.handle) : O.lerpS(this.handle, end.handle, weight),
    );
  }
  /** where(cond, this, other): this where cond is true, else other. */
  where(condition: Tensor, other: Tensor | Scalar): Tensor {
    return where(condition, this, other);
  }
  maskedFill(mask: Tensor, value: Scalar | Tensor): Tensor {
    return wrapResult(
      isTensor(value)
        ? O.maskedFillT(this.handle, mask.handle, value.handle)
        : O.maskedFillS(this.handle, mask.handle, value),
    );
  }
  maskedSelect(mask: Tensor): Tensor {
    return wrapResult(O.maskedSelect(this.handle, mask.handle));
  }
  eq(o: Tensor | Scalar): Tensor {
    return wrapResult(isTensor(o) ? O.eqT(this.handle, o.handle) : O.eqS(this.handle, o));
  }
  ne(o: Tensor | Scalar): Tensor {
    return wrapResult(isTensor(o) ? O.neT(this.handle, o.handle) : O.neS(this.handle, o));
  }
  lt(o: Tensor | Scalar): Tensor {
    return wrapResult(isTensor(o) ? O.ltT(this.handle, o.handle) : O.ltS(this.handle, o));
  }
  le(o: Tensor | Scalar): Tensor {
    return wrapResult(isTensor(o) ? O.leT(this.handle, o.handle) : O.leS(this.handle, o));
  }
  gt(o: Tensor | Scalar): Tensor {
    return wrapResult(isTensor(o) ? O.gtT(this.handle, o.handle) : O.gtS(this.handle, o));
  }
  ge(o: Tensor | Scalar): Tensor {
    return wrapResult(isTensor(o) ? O.geT(this.handle, o.handle) : O.geS(this.handle, o));
  }
  logicalAnd(o: Tensor): Tensor {
    return wrapResult(O.logicalAnd(this.handle, o.handle));
  }
  logicalOr(o: Tensor): Tensor {
    return wrapResult(O.logicalOr(this.handle, o.handle));
  }
  logicalXor(o: Tensor): Tensor {
    return wrapResult(O.logicalXor(this.handle, o.handle));
  }
  logicalNot(): Tensor {
    return wrapResult(O.logicalNot(this.handle));
  }
  isnan(): Tensor {
    return wrapResult(O.isnan(this.handle));
  }
  isinf(): Tensor {
    return wrapResult(O.isinf(this.handle));
  }
  isfinite(): Tensor {
    return wrapResult(O.isfinite(this.handle));
  }
  nanToNum(nan = 0, posinf?: number, neginf?: number): Tensor {
    return wrapResult(O.nanToNum(this.handle, nan, posinf, neginf));
  }
  allclose(other: Tensor, rtol = 1e-5, atol = 1e-8, equalNan = false): boolean {
    return O.allclose(this.handle, other.handle, rtol, atol, equalNan) as boolean;
  }
  /** Same shape and exactly the same values. */
  equal(other: Tensor): boolean {
    return O.equal(this.handle, other.handle) as boolean;
  }

  // ---- in-place fills ---------------------------------------------------------------------
  copy_(src: Tensor): this {
    this.#inplace(O.copy_(this.handle, src.handle));
    return this;
  }
  zero_(): this {
    this.#inplace(O.zero_(this.handle));
    return this;
  }
  fill_(value: Scalar): this {
    this.#inplace(O.fillS_(this.handle, value));
    return this;
  }
  uniform_(from = 0, to = 1, generator?: { handle: unknown }): this {
    this.#inplace(O.uniform_(this.handle, from, to, generator?.handle));
    return this;
  }
  normal_(mean = 0, std = 1, generator?: { handle: unknown }): this {
    this.#inplace(O.normal_(this.handle, mean, std, generator?.handle));
    return this;
  }

  // ---- reductions -------------------------------------------------------------------------
  sum(dims?: Dims, keepdim = false, dtype?: DType): Tensor {
    const dt = optDtype(dtype);
    return wrapResult(
      dims === undefined ? O.sumAll(this.handle, dt) : O.sumDim(this.handle, dimList(dims), keepdim, dt),
    );
  }
  mean(dims?: Dims, keepdim = false, dtype?: DType): Tensor {
    const dt = optDtype(dtype);
    return wrapResult(
      dims === undefined ? O.meanAll(this.handle, dt) : O.meanDim(this.handle, dimList(dims), keepdim, dt),
    );
  }
  prod(dim?: number, keepdim = false): Tensor {
    return wrapResult(dim === undefined ? O.prodAll(this.handle) : O.prodDim(this.handle, checkDim(dim), keepdim));
  }
  /** Variance with Bessel's correction by default (correction=1), as torch.var. */
  var(dims?: Dims, { correction = 1, keepdim = false }: { correction?: number; keepdim?: boolean } = {}): Tensor {
    return wrapResult(O.varCorr(this.handle, dimList(dims) ?? null, correction, keepdim));
  }
  std(dims?: Dims, { correction = 1, keepdim = false }: { correction?: number; keepdim?: boolean } = {}): Tensor {
    return wrapResult(O.stdCorr(this.handle, dimList(dims) ?? null, correction, keepdim));
  }
  /** Without `dim`: the global max. With `dim`: [values, indices]. */
  max(): Tensor;
  max(dim: number, keepdim?: boolean): [Tensor, Tensor];
  max(dim?: number, keepdim = false): Tensor | [Tensor, Tensor] {
    return dim === undefined
      ? wrapResult(O.maxAll(this.handle))
      : wrapPair(O.maxDim(this.handle, checkDim(dim), keepdim));
  }
  min(): Tensor;
  min(dim: number, keepdim?: boolean): [Tensor, Tensor];
  min(dim?: number, keepdim = false): Tensor | [Tensor, Tensor] {
    return dim === undefined
      ? wrapResult(O.minAll(this.handle))
      : wrapPair(O.minDim(this.handle, checkDim(dim), keepdim));
  }
  amax(dims: Dims = [], keepdim = false): Tensor {
    return wrapResult(O.amax(this.handle, dimList(dims), keepdim));
  }
  amin(dims: Dims = [], keepdim = false): Tensor {
    return wrapResult(O.amin(this.handle, dimList(dims), keepdim));
  }
  argmax(dim?: number, keepdim = false): Tensor {
    return wrapResult(O.argmax(this.handle, checkOptInt(dim, 'dim'), keepdim));
  }
  argmin(dim?: number, keepdim = false): Tensor {
    return wrapResult(O.argmin(this.handle, checkOptInt(dim, 'dim'), keepdim));
  }
  /** Vector p-norm over dims (all by default), as torch.linalg.vector_norm / Tensor.norm. */
  norm(p: number = 2, dims?: Dims, keepdim = false): Tensor {
    return wrapResult(O.vectorNorm(this.handle, p, dimList(dims) ?? null, keepdim));
  }
  logsumexp(dims: Dims, keepdim = false): Tensor {
    return wrapResult(O.logsumexp(this.handle, dimList(dims), keepdim));
  }
  all(dim?: number, keepdim = false): Tensor {
    return wrapResult(dim === undefined ? O.all(this.handle) : O.allDim(this.handle, checkDim(dim), keepdim));
  }
  any(dim?: number, keepdim = false): Tensor {
    return wrapResult(dim === undefined ? O.any(this.handle) : O.anyDim(this.handle, checkDim(dim), keepdim));
  }
  cumsum(dim: number, dtype?: DType): Tensor {
    return wrapResult(O.cumsum(this.handle, checkDim(dim), optDtype(dtype)));
  }
  cumprod(dim: number): Tensor {
    return wrapResult(O.cumprod(this.handle, checkDim(dim)));
  }
  /** [values, indices]; `stable` keeps the order of equal elements. */
  sort(dim = -1, descending = false, stable = false): [Tensor, Tensor] {
    return wrapPair(
      stable
        ? O.sortStable(this.handle, true, checkDim(dim), descending)
        : O.sort(this.handle, checkDim(dim), descending),
    );
  }
  argsort(dim = -1, descending = false): Tensor {
    return wrapResult(O.argsort(this.handle, checkDim(dim), descending));
  }
  topk(k: number, dim = -1, largest = true, sorted = true): [Tensor, Tensor] {
    return wrapPair(O.topk(this.handle, checkInt(k, 'k'), checkDim(dim), largest, sorted));
  }
  kthvalue(k: number, dim = -1, keepdim = false): [Tensor, Tensor] {
    return wrapPair(O.kthvalue(this.handle, checkInt(k, 'k'), checkDim(dim), keepdim));
  }
  median(): Tensor;
  median(dim: number, keepdim?: boolean): [Tensor, Tensor];
  median(dim?: number, keepdim = false): Tensor | [Tensor, Tensor] {
    return dim === undefined
      ? wrapResult(O.median(this.handle))
      : wrapPair(O.medianDim(this.handle, checkDim(dim), keepdim));
  }
  quantile(
    q: number | Tensor,
    dim?: number,
    keepdim = false,
    interpolation: 'linear' | 'lower' | 'higher' | 'midpoint' | 'nearest' = 'linear',
  ): Tensor {
    const d = checkOptInt(dim, 'dim');
    return wrapResult(
      isTensor(q)
        ? O.quantile(this.handle, q.handle, d, keepdim, interpolation)
        : O.quantileS(this.handle, q, d, keepdim, interpolation),
    );
  }

  // ---- linear algebra ---------------------------------------------------------------------
  matmul(other: Tensor): Tensor {
    return wrapResult(O.matmul(this.handle, other.handle));
  }
  mm(other: Tensor): Tensor {
    return wrapResult(O.mm(this.handle, other.handle));
  }
  bmm(other: Tensor): Tensor {
    return wrapResult(O.bmm(this.handle, other.handle));
  }
  outer(other: Tensor): Tensor {
    return wrapResult(O.outer(this.handle, other.handle));
  }
  dot(other: Tensor): Tensor {
    return wrapResult(O.dot(this.handle, other.handle));
  }
  /**
   * beta * this + alpha * (b1 @ b2). With beta = 0 `this` is ignored entirely: libtorch 1.13's
   * baddbmm reads its uninitialised output when beta = 0 and leaks NaN (DESIGN §7), so that case
   * is computed as alpha * bmm(b1, b2) instead.
   */
  baddbmm(batch1: Tensor, batch2: Tensor, { beta = 1, alpha = 1 }: { beta?: number; alpha?: number } = {}): Tensor {
    if (beta === 0) return scaled(wrapResult(O.bmm(batch1.handle, batch2.handle)), alpha);
    return wrapResult(O.baddbmm(this.handle, batch1.handle, batch2.handle, beta, alpha));
  }
  /** beta * this + alpha * (m1 @ m2), with the same beta = 0 guard as baddbmm. */
  addmm(m1: Tensor, m2: Tensor, { beta = 1, alpha = 1 }: { beta?: number; alpha?: number } = {}): Tensor {
    if (beta === 0) return scaled(wrapResult(O.mm(m1.handle, m2.handle)), alpha);
    return wrapResult(O.addmm(this.handle, m1.handle, m2.handle, beta, alpha));
  }

  // ---- shape and views --------------------------------------------------------------------
  reshape(...shape: number[] | [Shape]): Tensor {
    return wrapResult(O.reshape(this.handle, shapeArgs(shape, 'shape')));
  }
  view(...shape: number[] | [Shape]): Tensor {
    return wrapResult(O.view(this.handle, shapeArgs(shape, 'shape')));
  }
  /** Reinterprets the bytes as another dtype of the same size (Tensor.view(dtype)). */
  viewAs(dtype: DType): Tensor {
    return wrapResult(O.viewDtype(this.handle, dtypeCode(dtype)));
  }
  permute(...dims: number[] | [Shape]): Tensor {
    return wrapResult(O.permute(this.handle, shapeArgs(dims, 'dims')));
  }
  transpose(dim0: number, dim1: number): Tensor {
    return wrapResult(O.transpose(this.handle, checkDim(dim0, 'dim0'), checkDim(dim1, 'dim1')));
  }
  /** Transpose of the last two dims (`x.mT`). */
  get mT(): Tensor {
    return this.transpose(-2, -1);
  }
  narrow(dim: number, start: number, length: number): Tensor {
    return wrapResult(O.narrow(this.handle, checkDim(dim), checkInt(start, 'start'), checkInt(length, 'length')));
  }
  /** x[..., start:end:step, ...] along `dim`; end defaults to the end, negatives count from it. */
  slice(dim: number, start?: number | null, end?: number | null, step = 1): Tensor {
    return wrapResult(
      O.slice(this.handle, checkDim(dim), checkOptInt(start, 'start'), checkOptInt(end, 'end'), checkInt(step, 'step')),
    );
  }
  select(dim: number, index: number): Tensor {
    return wrapResult(O.select(this.handle, checkDim(dim), checkInt(index, 'index')));
  }
  /** Advanced indexing x[i0, i1, ...] with index tensors (null keeps a dim whole). */
  index(indices: readonly (Tensor | null)[]): Tensor {
    return wrapResult(
      O.index(
        this.handle,
        indices.map((t) => (t === null ? null : t.handle)),
      ),
    );
  }
  /** x[indices] = values (in place). */
  indexPut_(indices: readonly (Tensor | null)[], values: Tensor, accumulate = false): this {
    this.#inplace(
      O.indexPut_(
        this.handle,
        indices.map((t) => (t === null ? null : t.handle)),
        values.handle,
        accumulate,
      ),
    );
    return this;
  }
  indexSelect(dim: number, index: Tensor): Tensor {
    return wrapResult(O.indexSelect(this.handle, checkDim(dim), index.handle));
  }
  gather(dim: number, index: Tensor): Tensor {
    return wrapResult(O.gather(this.handle, checkDim(dim), index.handle));
  }
  scatter(dim: number, index: Tensor, src: Tensor): Tensor {
    return wrapResult(O.scatter(this.handle, checkDim(dim), index.handle, src.handle));
  }
  chunk(chunks: number, dim = 0): Tensor[] {
    return wrapList(O.chunk(this.handle, checkInt(chunks, 'chunks'), checkDim(dim)));
  }
  /** Python's split: an int is a chunk size, an array lists the sizes. */
  split(sizes: number | readonly number[], dim = 0): Tensor[] {
    const d = checkDim(dim);
    return wrapList(
      typeof sizes === 'number'
        ? O.splitSize(this.handle, checkInt(sizes, 'sizes'), d)
        : O.splitSizes(this.handle, checkInts(sizes, 'sizes'), d),
    );
  }
  expand(...shape: number[] | [Shape]): Tensor {
    return wrapResult(O.expand(this.handle, shapeArgs(shape, 'shape')));
  }
  expandAs(other: Tensor): Tensor {
    return wrapResult(O.expandAs(this.handle, other.handle));
  }
  repeat(...repeats: number[] | [Shape]): Tensor {
    return wrapResult(O.repeat(this.handle, shapeArgs(repeats, 'repeats')));
  }
  repeatInterleave(repeats: number, dim?: number): Tensor {
    return wrapResult(O.repeatInterleave(this.handle, checkInt(repeats, 'repeats'), checkOptInt(dim, 'dim')));
  }
  flatten(startDim = 0, endDim = -1): Tensor {
    return wrapResult(O.flatten(this.handle, checkDim(startDim, 'startDim'), checkDim(endDim, 'endDim')));
  }
  unflatten(dim: number, sizes: Shape): Tensor {
    return wrapResult(O.unflatten(this.handle, checkDim(dim), checkInts(sizes, 'sizes')));
  }
  squeeze(dim?: number): Tensor {
    return wrapResult(dim === undefined ? O.squeezeAll(this.handle) : O.squeezeDim(this.handle, checkDim(dim)));
  }
  unsqueeze(dim: number): Tensor {
    return wrapResult(O.unsqueeze(this.handle, checkDim(dim)));
  }
  flip(dims: Dims): Tensor {
    return wrapResult(O.flip(this.handle, dimList(dims)));
  }
  roll(shifts: number | readonly number[], dims: Dims): Tensor {
    return wrapResult(O.roll(this.handle, dimList(shifts, 'shifts'), dimList(dims)));
  }
  tril(diagonal = 0): Tensor {
    return wrapResult(O.tril(this.handle, checkInt(diagonal, 'diagonal')));
  }
  triu(diagonal = 0): Tensor {
    return wrapResult(O.triu(this.handle, checkInt(diagonal, 'diagonal')));
  }

  // ---- complex ----------------------------------------------------------------------------
  real(): Tensor {
    return wrapResult(O.real(this.handle));
  }
  imag(): Tensor {
    return wrapResult(O.imag(this.handle));
  }
  angle(): Tensor {
    return wrapResult(O.angle(this.handle));
  }
  conj(): Tensor {
    return wrapResult(O.conj(this.handle));
  }
  /** complex [..] -> real [.., 2] view. */
  viewAsReal(): Tensor {
    return wrapResult(O.viewAsReal(this.handle));
  }
  viewAsComplex(): Tensor {
    return wrapResult(O.viewAsComplex(this.handle));
  }

  // ---- autograd ---------------------------------------------------------------------------
  /** Accumulates d(this)/d(leaves) into the leaves' .grad, as Tensor.backward. */
  backward(
    gradient?: Tensor,
    { retainGraph, createGraph = false }: { retainGraph?: boolean; createGraph?: boolean } = {},
  ): void {
    try {
      native.backward([this.handle], [gradient === undefined ? null : gradient.handle], retainGraph, createGraph);
    } catch (e) {
      throw torchError(e);
    }
  }

  // ---- printing ---------------------------------------------------------------------------
  toString(): string {
    if (this.#disposed) return `Tensor(disposed: ${this.#desc})`;
    const shape = this.shape;
    const parts = [`shape=[${shape.join(', ')}]`, `dtype=${this.dtype}`, `device=${this.device}`];
    if (this.requiresGrad) parts.push('requiresGrad');
    if (this.numel <= 8 && !isComplex(this.dtype))
      parts.unshift(
        `[${this.toArray()
          .map((v) => +v.toPrecision(6))
          .join(', ')}]`,
      );
    return `Tensor(${parts.join(', ')})`;
  }
  [inspect.custom](): string {
    return this.toString();
  }
}

registerTensorClass((v) => v instanceof Tensor);

/** alpha * p, consuming p (the beta = 0 path of baddbmm/addmm). */
function scaled(p: Tensor, alpha: number): Tensor {
  if (alpha === 1) return p;
  using _p = p;
  return p.mul(alpha);
}

function handleOrNull(v: number | Tensor | null | undefined): Handle | null {
  if (v === null || v === undefined) return null;
  if (isTensor(v)) return v.handle;
  throw new ArgumentError('clamp: mix of tensor and number bounds; pass both as tensors');
}

/** `f(2, 3)` or `f([2, 3])`, checked as integers. */
function shapeArgs(args: readonly (number | Shape)[], what: string): number[] {
  return checkInts(args.length === 1 && Array.isArray(args[0]) ? args[0] : args, what);
}

// ---- free functions that combine tensors -------------------------------------------------
const catOp = op('aten::cat');
const stackOp = op('aten::stack');

/** Handles of a tensor list, with a clear error naming the first element that is not a Tensor. */
function handlesOf(tensors: readonly Tensor[], fn: string): Handle[] {
  if (!Array.isArray(tensors))
    throw new ArgumentError(`${fn}: expected an array of tensors but received ${describe(tensors)}`);
  return tensors.map((t, i) => {
    if (!(t instanceof Tensor))
      throw new ArgumentError(`${fn}: expected tensors[${i}] to be a Tensor but received ${describe(t)}`);
    return t.handle;
  });
}
export function cat(tensors: readonly Tensor[], dim = 0): Tensor {
  return wrapResult(catOp(handlesOf(tensors, 'cat'), checkDim(dim)));
}
export function stack(tensors: readonly Tensor[], dim = 0): Tensor {
  return wrapResult(stackOp(handlesOf(tensors, 'stack'), checkDim(dim)));
}
/** where(condition, x, y): x where condition is true, else y (either may be a number). */
export function where(condition: Tensor, x: Tensor | Scalar, y: Tensor | Scalar): Tensor {
  if (isTensor(x) && isTensor(y)) return wrapResult(O.whereSelf(condition.handle, x.handle, y.handle));
  if (isTensor(x)) return wrapResult(O.whereScalarOther(condition.handle, x.handle, y as Scalar));
  if (isTensor(y)) return wrapResult(O.whereScalarSelf(condition.handle, x, y.handle));
  return wrapResult(O.whereScalar(condition.handle, x, y));
}

/** Library helpers for other modules of src/torch. */
export const internal = { wrapResult, wrapList, wrapPair, isTensor, optDtype };
export { isTensor };
