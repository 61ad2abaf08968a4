/** Tensor element types, named as PyTorch names them, with libtorch's ScalarType codes. */
import { ArgumentError, describe } from '../errors.js';

export type DType =
  | 'uint8'
  | 'int8'
  | 'int16'
  | 'int32'
  | 'int64'
  | 'float16'
  | 'bfloat16'
  | 'float32'
  | 'float64'
  | 'complex64'
  | 'complex128'
  | 'bool';

// c10::ScalarType enum values; stable across libtorch 1.x and 2.x.
const CODES: Record<DType, number> = {
  uint8: 0,
  int8: 1,
  int16: 2,
  int32: 3,
  int64: 4,
  float16: 5,
  float32: 6,
  float64: 7,
  complex64: 9,
  complex128: 10,
  bool: 11,
  bfloat16: 15,
};
const BY_CODE = new Map<number, DType>(Object.entries(CODES).map(([k, v]) => [v, k as DType]));

export const DTYPES: readonly DType[] = Object.keys(CODES) as DType[];

export const ITEM_SIZE: Record<DType, number> = {
  uint8: 1,
  int8: 1,
  int16: 2,
  int32: 4,
  int64: 8,
  float16: 2,
  float32: 4,
  float64: 8,
  complex64: 8,
  complex128: 16,
  bool: 1,
  bfloat16: 2,
};

export function dtypeCode(dtype: DType): number {
  const code = CODES[dtype];
  if (code === undefined)
    throw new ArgumentError(`Expected dtype to be one of ${DTYPES.join(', ')} but received ${describe(dtype)}`);
  return code;
}

export function dtypeFromCode(code: number): DType {
  const d = BY_CODE.get(code);
  if (d === undefined) throw new ArgumentError(`libtorch returned a tensor of unsupported ScalarType ${code}`);
  return d;
}

export function isFloatingPoint(dtype: DType): boolean {
  return dtype === 'float16' || dtype === 'bfloat16' || dtype === 'float32' || dtype === 'float64';
}

export function isComplex(dtype: DType): boolean {
  return dtype === 'complex64' || dtype === 'complex128';
}

/** The typed array that holds a dtype's values (half types and complex types: see docs/engine.md). */
export type TypedArrayFor<D extends DType> = D extends 'float32' | 'float16' | 'bfloat16' | 'complex64'
  ? Float32Array
  : D extends 'float64' | 'complex128'
    ? Float64Array
    : D extends 'int64'
      ? BigInt64Array
      : D extends 'int32'
        ? Int32Array
        : D extends 'int16'
          ? Int16Array
          : D extends 'int8'
            ? Int8Array
            : Uint8Array;

export type AnyTypedArray =
  | Float32Array
  | Float64Array
  | Int32Array
  | Int16Array
  | Int8Array
  | Uint8Array
  | Uint16Array
  | BigInt64Array
  | Uint8ClampedArray;

/** The dtype a typed array's contents are (Uint16Array is raw float16 bits unless bfloat16 is asked). */
export function dtypeOfArray(data: AnyTypedArray): DType {
  if (data instanceof Float32Array) return 'float32';
  if (data instanceof Float64Array) return 'float64';
  if (data instanceof Int32Array) return 'int32';
  if (data instanceof Int16Array) return 'int16';
  if (data instanceof Int8Array) return 'int8';
  if (data instanceof Uint8Array || data instanceof Uint8ClampedArray) return 'uint8';
  if (data instanceof BigInt64Array) return 'int64';
  if (data instanceof Uint16Array) return 'float16';
  throw new ArgumentError(`Expected a typed array but received ${describe(data)}`);
}
