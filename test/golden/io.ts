// A case's reference tensors, shared by the conformance runners: one loader that names the
// missing entry instead of letting an absent expectation pass unchecked.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
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

/**
 * The outputs case.json gives tolerances for ("a/b/c" names several): the ones a runner must
 * compare. Fails when there are none, or when one is not among the runner's `known` outputs, so
 * that a missing expectation cannot pass as zero assertions.
 */
export function declaredOutputs(spec: { tolerances?: Record<string, unknown> }, known: readonly string[]): Set<string> {
  const names = Object.keys(spec.tolerances ?? {}).flatMap((k) => k.split('/').map((s) => s.trim()));
  assert.ok(names.length > 0, 'case.json gives no tolerances, so names no outputs to compare');
  const unknown = names.filter((n) => !known.includes(n));
  assert.deepEqual(
    unknown,
    [],
    `case.json has tolerances for outputs this runner does not compare: ${unknown.join(', ')}`,
  );
  return new Set(names);
}

/**
 * Registers a check of the fixture against itself (io.safetensors or a folder against case.json).
 * No project code runs in it, so it is named a data check, not counted as conformance.
 */
export function dataCheck(t: TestContext, name: string, fn: () => void | Promise<void>): Promise<void> {
  return t.test(`data check (no project code): ${name}`, fn);
}
