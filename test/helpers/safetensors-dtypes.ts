// The libtorch dtype loadSafetensors (src/io/tensors.ts) should give for each safetensors dtype it
// supports: the tests' own statement of the mapping, shared by the io tests and the golden runner.
import type { SafetensorsDType } from '../../src/io/safetensors.js';
import type { DType } from '../../src/torch/index.js';

const PAIRS =
  'F32=float32 F16=float16 BF16=bfloat16 F64=float64 I64=int64 I32=int32 I16=int16 I8=int8 U8=uint8 BOOL=bool';

export const TORCH_DTYPE: Partial<Record<SafetensorsDType, DType>> = Object.fromEntries(
  PAIRS.split(' ').map((pair) => pair.split('=')),
);
