/** Process-wide settings: threads, memory statistics, build information. */
import { availableParallelism } from 'node:os';
import { ArgumentError } from '../errors.js';
import { checkInt, isInt } from './check.js';
import { native } from './native.js';

/** Sets libtorch's intra-op thread count (at::set_num_threads). */
export function setNumThreads(n: number): void {
  native.setNumThreads(checkInt(n, 'threads', { min: 1, max: 2 ** 31 - 1 }));
}
export function getNumThreads(): number {
  return native.getNumThreads();
}

/** Native tensors alive now (handles not yet disposed or collected). */
export function liveTensors(): number {
  return native.liveTensors();
}

/** The process's peak resident memory so far, in MB (getrusage's maxrss; libtorch's buffers included). */
export function peakRssMB(): number {
  return Math.round(process.resourceUsage().maxRSS / 1024); // maxRSS is in KiB
}

export function torchInfo(): { torchVersion: string; parallelInfo: string; hasCuda: boolean; threads: number } {
  return { ...native.info(), threads: native.getNumThreads() };
}

/** Default thread count: $IMMUNIZE_NUM_THREADS, else every core (libtorch alone may pick fewer). */
export function defaultThreads(): number {
  const env = process.env['IMMUNIZE_NUM_THREADS'];
  if (env !== undefined && env !== '') {
    const n = Number(env);
    if (!isInt(n) || n < 1) throw new ArgumentError(`IMMUNIZE_NUM_THREADS must be a positive integer but is '${env}'`);
    return n;
  }
  return availableParallelism();
}

export type AllocatorPolicy = 'retain' | 'system';

/**
 * How freed tensor memory is handled: 'retain' (the default) keeps it in the process for the next
 * step instead of handing it back to the kernel and faulting it in again, which at large sizes cost
 * most of a step's time (docs/engine.md#memory); 'system' ($IMMUNIZE_ALLOCATOR=system) leaves the C
 * library's defaults, so resident memory shrinks after a peak. 'system' also where the C library
 * is not glibc.
 */
function applyAllocatorPolicy(): AllocatorPolicy {
  const env = process.env['IMMUNIZE_ALLOCATOR'];
  if (env !== undefined && env !== '' && env !== 'retain' && env !== 'system')
    throw new ArgumentError(`IMMUNIZE_ALLOCATOR must be retain or system but is '${env}'`);
  if (env === 'system') return 'system';
  return native.retainFreedMemory() ? 'retain' : 'system';
}

const allocator = applyAllocatorPolicy();

/** The allocator policy in force for this process (set once, when the engine loads). */
export function allocatorPolicy(): AllocatorPolicy {
  return allocator;
}

native.setNumThreads(defaultThreads());
