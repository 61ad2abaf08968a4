/**
 * Loads the libtorch addon (build/Release/immunize_torch.node) and types its surface.
 * Handles are opaque native objects; only src/torch touches them. Every function throws a JS
 * Error (code E_TORCH, `op` naming the function or operator) for any failure, wrong argument
 * types included; integers are refused unless they are integral numbers within int64.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { ImmunizeError } from '../errors.js';
import { repoRoot } from './root.js';

/** An opaque native handle (a tagged napi External). */
export type Handle = object & { readonly __handle: unique symbol };
export type GeneratorHandle = object & { readonly __generator: unique symbol };

export interface NativeTorch {
  // tensors
  dispose(h: Handle): void;
  shape(h: Handle): number[];
  strides(h: Handle): number[];
  dtype(h: Handle): number;
  device(h: Handle): string;
  requiresGrad(h: Handle): boolean;
  isLeaf(h: Handle): boolean;
  isDisposed(h: Handle): boolean;
  sameTensor(a: Handle, b: Handle): boolean;
  fromBytes(data: ArrayBufferView | ArrayBuffer, shape: readonly number[], dtype: number): Handle;
  toBytes(h: Handle): ArrayBuffer;
  fromFile(path: string, offset: number, byteLength: number, shape: readonly number[], dtype: number): Handle;
  liveTensors(): number;
  // operators
  /** The operator's id; the same schema always gets the same id. */
  op(name: string, overload: string): number;
  /** How many distinct operators have been looked up. */
  opCount(): number;
  call(id: number, ...args: unknown[]): unknown;
  schema(id: number): string;
  // autograd
  grad(
    outputs: Handle[],
    inputs: Handle[],
    gradOutputs: (Handle | null)[],
    retainGraph: boolean | undefined,
    createGraph: boolean,
    allowUnused: boolean,
  ): (Handle | null)[];
  backward(tensors: Handle[], grads: (Handle | null)[], retainGraph: boolean | undefined, createGraph: boolean): void;
  getGrad(h: Handle): Handle | null;
  setGrad(h: Handle, g: Handle | null): void;
  gradFn(h: Handle): string | null;
  isGradEnabled(): boolean;
  setGradEnabled(on: boolean): void;
  // runtime
  manualSeed(seed: number | bigint): void;
  newGenerator(seed: number | bigint | undefined, device: string): GeneratorHandle;
  defaultGenerator(): GeneratorHandle;
  generatorSeed(g: GeneratorHandle): bigint;
  generatorManualSeed(g: GeneratorHandle, seed: number | bigint): void;
  generatorGetState(g: GeneratorHandle): Handle;
  generatorSetState(g: GeneratorHandle, state: Handle): void;
  setNumThreads(n: number): void;
  getNumThreads(): number;
  cudaDeviceCount(): number;
  info(): { torchVersion: string; parallelInfo: string; hasCuda: boolean };
  /** libtorch's autocast for one device (thread-local); dtype is a ScalarType code. */
  setAutocast(device: 'cpu' | 'cuda', enabled: boolean, dtype: number): void;
  autocastState(): { cpu: boolean; cuda: boolean };
  /** glibc keeps freed memory for reuse (no mmap'd blocks, no trimming); false if not glibc. */
  retainFreedMemory(): boolean;
}

function load(): NativeTorch {
  const path = process.env['IMMUNIZE_NATIVE'] ?? join(repoRoot, 'build', 'Release', 'immunize_torch.node');
  if (!existsSync(path)) {
    throw new ImmunizeError(
      'E_NATIVE_MISSING',
      `the native tensor engine is not built (${path} is missing). ` +
        'Run `npm install` (it builds against libtorch; on Debian first `sudo apt-get install -y libtorch-dev`).',
    );
  }
  try {
    return createRequire(import.meta.url)(path) as NativeTorch;
  } catch (e) {
    throw new ImmunizeError(
      'E_NATIVE_LOAD',
      `cannot load ${path}: ${(e as Error).message}. ` +
        'If libtorch moved or was upgraded, rebuild with `npm run build`.',
      { cause: e },
    );
  }
}

export const native: NativeTorch = load();
