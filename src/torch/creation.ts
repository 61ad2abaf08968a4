/** Tensor creation: from typed arrays and numbers, constants, ranges and random draws. */
import { ArgumentError } from '../errors.js';
import { checkInt, checkInts, isInt } from './check.js';
import { checkDevice, type Device } from './device.js';
import { dtypeCode, dtypeOfArray, ITEM_SIZE, type AnyTypedArray, type DType } from './dtype.js';
import { native } from './native.js';
import { op, type OpCaller } from './ops.js';
import type { Generator } from './random.js';
import { Tensor, internal, type Shape } from './tensor.js';

const { wrapResult } = internal;

export interface CreateOptions {
  dtype?: DType;
  device?: Device;
  requiresGrad?: boolean;
}
export interface RandomOptions extends CreateOptions {
  /** Draw from this generator instead of the default one. */
  generator?: Generator;
}

const O = {
  zeros: op('aten::zeros'),
  ones: op('aten::ones'),
  full: op('aten::full'),
  empty: op('aten::empty', 'memory_format'),
  randn: op('aten::randn'),
  randnGen: op('aten::randn', 'generator'),
  rand: op('aten::rand'),
  randGen: op('aten::rand', 'generator'),
  randint: op('aten::randint', 'low'),
  randintGen: op('aten::randint', 'low_generator'),
  arange: op('aten::arange', 'start_step'),
  linspace: op('aten::linspace'),
  eye: op('aten::eye'),
  zerosLike: op('aten::zeros_like'),
  onesLike: op('aten::ones_like'),
  fullLike: op('aten::full_like'),
  randnLike: op('aten::randn_like'),
  randLike: op('aten::rand_like'),
  scalarTensor: op('aten::scalar_tensor'),
  requiresGrad_: op('aten::requires_grad_'),
};

/** A shape: non-negative integers (see check.ts). */
export function checkShape(shape: unknown, what = 'shape'): number[] {
  return checkInts(shape, what, { min: 0 });
}

function finish(t: Tensor, opts: CreateOptions): Tensor {
  if (opts.requiresGrad) native.dispose(O.requiresGrad_(t.handle, true) as never);
  return t;
}

function dev(opts: CreateOptions): string | undefined {
  return opts.device === undefined ? undefined : checkDevice(opts.device);
}
function dt(opts: CreateOptions): number | undefined {
  return opts.dtype === undefined ? undefined : dtypeCode(opts.dtype);
}

/**
 * A tensor holding a copy of `data`. The typed array's type gives the source dtype; number[]
 * is float32. `opts.dtype` converts (except Uint16Array + 'bfloat16', read as raw bfloat16 bits).
 */
export function tensor(
  data: AnyTypedArray | readonly number[] | number,
  shape?: Shape,
  opts: CreateOptions = {},
): Tensor {
  let arr: AnyTypedArray;
  if (typeof data === 'number') {
    arr = new Float32Array([data]);
    shape ??= [];
  } else if (Array.isArray(data)) {
    arr = opts.dtype === 'float64' ? new Float64Array(data) : new Float32Array(data);
  } else {
    arr = data as AnyTypedArray;
  }
  const s = checkShape(shape === undefined ? [arr.length] : [...shape]);
  let src = dtypeOfArray(arr);
  if (arr instanceof Uint16Array && opts.dtype === 'bfloat16') src = 'bfloat16';
  const numel = s.reduce((a, b) => a * b, 1);
  if (numel * ITEM_SIZE[src] !== arr.byteLength) {
    throw new ArgumentError(`tensor(): data has ${arr.length} elements but shape [${s.join(', ')}] needs ${numel}`);
  }
  let t = new Tensor(native.fromBytes(arr, s, dtypeCode(src)));
  const want = opts.dtype ?? src;
  if (want !== src || (opts.device !== undefined && opts.device !== 'cpu')) {
    const u = t.to({ dtype: want, device: opts.device ?? 'cpu' });
    t.dispose();
    t = u;
  }
  return finish(t, opts);
}

export function zeros(shape: Shape, opts: CreateOptions = {}): Tensor {
  return finish(wrapResult(O.zeros(checkShape([...shape]), dt(opts), undefined, dev(opts))), opts);
}
export function ones(shape: Shape, opts: CreateOptions = {}): Tensor {
  return finish(wrapResult(O.ones(checkShape([...shape]), dt(opts), undefined, dev(opts))), opts);
}
export function full(shape: Shape, value: number | boolean, opts: CreateOptions = {}): Tensor {
  // Python's torch.full infers float32 for a float fill; JS numbers are all "floats" here.
  return finish(
    wrapResult(O.full(checkShape([...shape]), value, dt({ dtype: 'float32', ...opts }), undefined, dev(opts))),
    opts,
  );
}
/** Uninitialised memory: only for outputs that will be fully overwritten. */
export function empty(shape: Shape, opts: CreateOptions = {}): Tensor {
  return finish(wrapResult(O.empty(checkShape([...shape]), dt(opts), undefined, dev(opts))), opts);
}
export function scalarTensor(value: number, opts: CreateOptions = {}): Tensor {
  return finish(wrapResult(O.scalarTensor(value, dt(opts), undefined, dev(opts))), opts);
}
export function zerosLike(t: Tensor, opts: CreateOptions = {}): Tensor {
  return finish(wrapResult(O.zerosLike(t.handle, dt(opts), undefined, dev(opts))), opts);
}
export function onesLike(t: Tensor, opts: CreateOptions = {}): Tensor {
  return finish(wrapResult(O.onesLike(t.handle, dt(opts), undefined, dev(opts))), opts);
}
export function fullLike(t: Tensor, value: number, opts: CreateOptions = {}): Tensor {
  return finish(wrapResult(O.fullLike(t.handle, value, dt(opts), undefined, dev(opts))), opts);
}

/** Samples of `shape` from the global generator (`global`) or from opts.generator (`seeded`). */
function sample(global: OpCaller, seeded: OpCaller, shape: Shape, opts: RandomOptions): Tensor {
  const s = checkShape([...shape]);
  const r =
    opts.generator === undefined
      ? global(s, dt(opts), undefined, dev(opts))
      : seeded(s, opts.generator.handle, dt(opts), undefined, dev(opts));
  return finish(wrapResult(r), opts);
}
/** Standard normal samples (torch.randn). */
export function randn(shape: Shape, opts: RandomOptions = {}): Tensor {
  return sample(O.randn, O.randnGen, shape, opts);
}
/** Uniform samples on [0, 1) (torch.rand). */
export function rand(shape: Shape, opts: RandomOptions = {}): Tensor {
  return sample(O.rand, O.randGen, shape, opts);
}
/** Integers uniform on [low, high) (torch.randint(low, high, size)); int64 unless dtype says. */
export function randint(low: number, high: number, shape: Shape, opts: RandomOptions = {}): Tensor {
  checkInt(low, 'low');
  checkInt(high, 'high');
  if (high <= low) throw new ArgumentError(`randint(): expected low < high but received low=${low}, high=${high}`);
  const s = checkShape([...shape]);
  const d = dt({ dtype: 'int64', ...opts });
  const r =
    opts.generator === undefined
      ? O.randint(low, high, s, d, undefined, dev(opts))
      : O.randintGen(low, high, s, opts.generator.handle, d, undefined, dev(opts));
  return finish(wrapResult(r), opts);
}
export function randnLike(t: Tensor, opts: CreateOptions = {}): Tensor {
  return finish(wrapResult(O.randnLike(t.handle, dt(opts), undefined, dev(opts))), opts);
}
export function randLike(t: Tensor, opts: CreateOptions = {}): Tensor {
  return finish(wrapResult(O.randLike(t.handle, dt(opts), undefined, dev(opts))), opts);
}

/** Values start, start+step, ... below end (torch.arange). Integer arguments give int64. */
export function arange(start: number, end?: number, step = 1, opts: CreateOptions = {}): Tensor {
  if (end === undefined) {
    end = start;
    start = 0;
  }
  if (step === 0) throw new ArgumentError('arange(): step must be non-zero');
  const allInt = isInt(start) && isInt(end) && isInt(step);
  const d = opts.dtype ?? (allInt ? 'int64' : 'float32');
  return finish(wrapResult(O.arange(start, end, step, dtypeCode(d), undefined, dev(opts))), opts);
}
export function linspace(start: number, end: number, steps: number, opts: CreateOptions = {}): Tensor {
  return finish(
    wrapResult(O.linspace(start, end, checkInt(steps, 'steps', { min: 0 }), dt(opts), undefined, dev(opts))),
    opts,
  );
}
export function eye(n: number, opts: CreateOptions = {}): Tensor {
  return finish(wrapResult(O.eye(checkInt(n, 'n', { min: 0 }), dt(opts), undefined, dev(opts))), opts);
}
