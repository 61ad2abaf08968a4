/**
 * safetensors <-> Tensor. Tensors are read straight from the file into native memory (one
 * pread per tensor), so a multi-gigabyte checkpoint never passes through the JS heap.
 */
import { native } from '../torch/native.js';
import { torchError } from '../torch/ops.js';
import { Tensor, type DType } from '../torch/index.js';
import { SafetensorsError, SafetensorsFile, writeSafetensors, type SafetensorsDType } from './safetensors.js';

const TO_DTYPE: Partial<Record<SafetensorsDType, DType>> = {
  F32: 'float32',
  F16: 'float16',
  BF16: 'bfloat16',
  F64: 'float64',
  I64: 'int64',
  I32: 'int32',
  I16: 'int16',
  I8: 'int8',
  U8: 'uint8',
  BOOL: 'bool',
};
const FROM_DTYPE: Partial<Record<DType, SafetensorsDType>> = Object.fromEntries(
  Object.entries(TO_DTYPE).map(([k, v]) => [v, k]),
);
const CODES: Record<string, number> = {
  float32: 6,
  float16: 5,
  bfloat16: 15,
  float64: 7,
  int64: 4,
  int32: 3,
  int16: 2,
  int8: 1,
  uint8: 0,
  bool: 11,
};

export interface LoadOptions {
  /** Only these tensors (default: all). */
  names?: readonly string[];
  /** Convert floating-point tensors to this dtype after reading (e.g. fp16 weights -> float32). */
  floatDType?: DType;
}

/** Reads one tensor by name from an open file. */
export function readTensor(file: SafetensorsFile, name: string): Tensor {
  const e = file.entry(name);
  const dtype = TO_DTYPE[e.dtype];
  if (dtype === undefined) throw new SafetensorsError(file.path, name, `dtype ${e.dtype} has no libtorch equivalent`);
  try {
    return new Tensor(native.fromFile(file.path, e.begin, e.end - e.begin, e.shape, CODES[dtype]!));
  } catch (err) {
    throw torchError(err);
  }
}

/** Loads tensors from a .safetensors file into a Map (insertion order = file order). */
export function loadSafetensors(path: string, opts: LoadOptions = {}): Map<string, Tensor> {
  using file = SafetensorsFile.open(path);
  const out = new Map<string, Tensor>();
  try {
    for (const name of opts.names ?? file.keys()) {
      let t = readTensor(file, name);
      if (
        opts.floatDType !== undefined &&
        t.dtype !== opts.floatDType &&
        ['float16', 'bfloat16', 'float32', 'float64'].includes(t.dtype)
      ) {
        const u = t.to(opts.floatDType);
        t.dispose();
        t = u;
      }
      out.set(name, t);
    }
  } catch (e) {
    for (const t of out.values()) t.dispose();
    throw e;
  }
  return out;
}

/** Writes tensors (moved to CPU, made contiguous) as a .safetensors file, atomically. */
export function saveSafetensors(
  path: string,
  tensors: ReadonlyMap<string, Tensor> | Record<string, Tensor>,
  metadata?: Record<string, string>,
): void {
  const entries = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
  const raw: Record<string, { dtype: SafetensorsDType; shape: number[]; data: Uint8Array }> = {};
  for (const [name, t] of entries) {
    const dtype = FROM_DTYPE[t.dtype as DType];
    if (dtype === undefined) throw new SafetensorsError(path, name, `cannot store a ${t.dtype} tensor in safetensors`);
    raw[name] = { dtype, shape: t.shape, data: t.toBytes() };
  }
  writeSafetensors(path, raw, metadata);
}
