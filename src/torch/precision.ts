/**
 * Mixed precision: `withPrecision('bf16', device, fn)` runs `fn` with an autocast-style policy
 * (docs/engine.md#mixed-precision):
 *   - convolutions and matrix products (conv2d, linear, matmul, bmm, addmm) in bf16 (CPU) or
 *     bf16/fp16 (CUDA): libtorch's own autocast casts them (its CPU list, checked for 1.13);
 *   - normalisations (group_norm, layer_norm, batch_norm), softmax and log-softmax in fp32: 1.13's
 *     CPU autocast lets these run in the input's dtype, and GroupNorm statistics in bf16 ruin the
 *     gradient at large sizes (issue 13: cosine −0.11 at 1024²), so src/torch casts their input
 *     back to fp32 (`needsFp32`); libtorch's autocast already runs its losses (mse_loss, …)
 *     in fp32;
 *   - 4-d convolution inputs in channels-last memory format, the layout oneDNN's bf16 kernels
 *     are fastest in (`wantsChannelsLast`).
 * Anything else (the attack's image, δ, projection and step; reductions of fp32 tensors) keeps the
 * dtype of its inputs, so state kept outside `fn`, or cast back to fp32 on the way out, stays fp32.
 * 'fp32' runs `fn` with autocast off, even inside a reduced region: measurements ask for it.
 */
import { readFileSync } from 'node:fs';
import { ArgumentError, describe } from '../errors.js';
import { dtypeCode, type DType } from './dtype.js';
import { native } from './native.js';

export const PRECISIONS = ['fp32', 'bf16', 'fp16'] as const;
export type Precision = (typeof PRECISIONS)[number];

const DTYPE_OF: Record<Exclude<Precision, 'fp32'>, DType> = { bf16: 'bfloat16', fp16: 'float16' };

/** The reduced dtype in force (null: fp32). Mirrors libtorch's thread-local autocast state. */
let active: DType | null = null;

/** The dtype convolutions and matrix products run in now, or null when everything is fp32. */
export function reducedPrecision(): DType | null {
  return active;
}

function deviceKind(device: string): 'cpu' | 'cuda' {
  if (device === 'cpu') return 'cpu';
  if (device === 'cuda' || device.startsWith('cuda:')) return 'cuda';
  throw new ArgumentError(`mixed precision runs on cpu or cuda, not ${describe(device)}`);
}

/** Refuses a precision the device cannot run: fp16 autocast exists for CUDA only in libtorch 1.13. */
export function checkPrecision(precision: unknown, device: string): Precision {
  if (!PRECISIONS.includes(precision as Precision))
    throw new ArgumentError(
      `Expected precision to be one of ${PRECISIONS.join(', ')} but received ${describe(precision)}`,
    );
  if (precision === 'fp16' && deviceKind(device) === 'cpu')
    throw new ArgumentError('fp16 runs on CUDA only (libtorch has no fp16 autocast on the CPU); use bf16 on the CPU');
  return precision as Precision;
}

/** Runs `fn` under `precision` on `device` (see the file comment); restores the previous state after. */
export function withPrecision<T>(precision: Precision, device: string, fn: () => T): T {
  const p = checkPrecision(precision, device);
  const kind = deviceKind(device);
  const dtype = p === 'fp32' ? null : DTYPE_OF[p];
  const before = active;
  const wasOn = native.autocastState()[kind];
  // The previous dtype is only needed to restore an enclosing reduced region.
  native.setAutocast(kind, dtype !== null, dtypeCode(dtype ?? before ?? 'bfloat16'));
  active = dtype;
  try {
    return fn();
  } finally {
    native.setAutocast(kind, wasOn, dtypeCode(before ?? 'bfloat16'));
    active = before;
  }
}

/** Whether an input of this dtype must be cast to fp32 before a normalisation or softmax. */
export function needsFp32(dtype: DType): boolean {
  return active !== null && (dtype === 'bfloat16' || dtype === 'float16');
}

/** Whether a conv input of `ndim` dimensions is made channels-last (4-d, under a reduced precision). */
export function wantsChannelsLast(ndim: number): boolean {
  return active !== null && ndim === 4;
}

/** The CPU flags under which oneDNN runs bf16 natively: AVX-512 BF16, or AMX's bf16 tiles. */
const NATIVE_BF16_FLAGS = ['avx512_bf16', 'amx_bf16'] as const;

let cpuinfoCache: string | null | undefined;
function readCpuinfo(): string | null {
  if (cpuinfoCache === undefined) {
    try {
      cpuinfoCache = readFileSync('/proc/cpuinfo', 'utf8');
    } catch {
      cpuinfoCache = null; // not Linux: no flags to read, so auto stays fp32
    }
  }
  return cpuinfoCache;
}

/** The first native-bf16 flag in a /proc/cpuinfo text (its `flags` lines), or null. */
export function nativeBf16Flag(cpuinfo: string | null): string | null {
  if (cpuinfo === null) return null;
  const flags = new Set(
    cpuinfo
      .split('\n')
      .filter((l) => /^flags\s*:/.test(l))
      .flatMap((l) =>
        l
          .slice(l.indexOf(':') + 1)
          .trim()
          .split(/\s+/),
      ),
  );
  return NATIVE_BF16_FLAGS.find((f) => flags.has(f)) ?? null;
}

/**
 * What `auto` means on `device`: bf16 on CUDA, or on a CPU with native bf16 (`cpuinfo`: the
 * text of /proc/cpuinfo, read once when not given); fp32 elsewhere, where bf16 is emulated and
 * slower. `reason` says why, for the user.
 */
export function autoPrecision(
  device: string,
  cpuinfo: string | null = readCpuinfo(),
): { precision: 'fp32' | 'bf16'; reason: string } {
  if (deviceKind(device) === 'cuda') return { precision: 'bf16', reason: 'CUDA' };
  const flag = nativeBf16Flag(cpuinfo);
  return flag === null
    ? { precision: 'fp32', reason: 'this CPU has no native bf16 (avx512_bf16 or amx_bf16)' }
    : { precision: 'bf16', reason: `this CPU has ${flag}` };
}
