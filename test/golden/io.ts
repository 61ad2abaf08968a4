// A case's reference tensors, shared by the conformance runners: one loader that names the
// missing entry instead of letting an absent expectation pass unchecked.
import { join } from 'node:path';
import { loadSafetensors } from '../../src/io/tensors.js';
import type { Tensor } from '../../src/torch/index.js';

export interface CaseTensors extends Disposable {
  /** Every stored tensor by name. */
  readonly all: Map<string, Tensor>;
  /** The stored tensor `k`; throws (failing the test) when the file has no such entry. */
  ref(k: string): Tensor;
  has(k: string): boolean;
}

/** Opens `file` (default io.safetensors) in a case folder; `using` disposes every tensor. */
export function caseTensors(dir: string, file: unknown = 'io.safetensors'): CaseTensors {
  const name = String(file ?? 'io.safetensors');
  const all = loadSafetensors(join(dir, name));
  return {
    all,
    ref(k) {
      const v = all.get(k);
      if (v === undefined) throw new Error(`${name} has no '${k}'`);
      return v;
    },
    has: (k) => all.has(k),
    [Symbol.dispose]() {
      for (const v of all.values()) v.dispose();
    },
  };
}
