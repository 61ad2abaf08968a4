// kind "iqa_metrics": piq's full-reference metrics. `metrics` lists piq function names; each is
// called as `call` says (data_range, reduction parsed from it; per-metric `kwargs` in snake_case
// when the case gives them) on io.safetensors' x (distorted) and y (reference), and must match
// the tensor of the same name. `first_values` (when present) must agree with io.safetensors.
import assert from 'node:assert/strict';
import { FULL_REFERENCE_METRICS } from '../../../src/metrics/index.js';
import type { MetricOptions, Reduction } from '../../../src/metrics/functional.js';
import { noGrad, scope } from '../../../src/torch/index.js';
import { assertClose, toleranceFor, type Tolerance } from '../compare.js';
import { caseTensors, dataCheck } from '../io.js';
import type { CaseRunner } from './types.js';

const camel = (k: string) => k.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());

function callOptions(call: unknown): MetricOptions {
  const s = String(call ?? '');
  const dr = /data_range\s*=\s*([0-9.eE+-]+)/.exec(s)?.[1];
  const red = /reduction\s*=\s*['"](\w+)['"]/.exec(s)?.[1];
  return { dataRange: dr === undefined ? 1 : Number(dr), reduction: (red ?? 'none') as Reduction };
}

const run: CaseRunner = async ({ dir, spec }, t) => {
  using io = caseTensors(dir, spec.io);
  const { ref } = io;
  const fallback = spec.tolerances?.default as Tolerance | undefined;
  const tol = (k: string) =>
    toleranceFor(spec.tolerances, k, fallback ? { atol: fallback.atol ?? 0, rtol: fallback.rtol ?? 0 } : undefined);
  const base = callOptions(spec.call);
  const metrics =
    (spec.metrics as string[] | undefined) ?? [...io.all.keys()].filter((k) => k in FULL_REFERENCE_METRICS);
  const x = ref(String(spec.inputs?.x ?? 'x'));
  const y = ref(String(spec.inputs?.y ?? 'y'));
  for (const name of metrics) {
    await t.test(name, () => {
      const info = FULL_REFERENCE_METRICS[name];
      assert.ok(
        info,
        `no implementation registered for piq metric '${name}' (known: ${Object.keys(FULL_REFERENCE_METRICS).join(', ')})`,
      );
      const kwargs = Object.fromEntries(
        Object.entries((spec.kwargs?.[name] ?? {}) as Record<string, unknown>).map(([k, v]) => [camel(k), v]),
      );
      noGrad(() =>
        scope(() => {
          const want = ref(name);
          let got = info.fn(x, y, { ...base, ...kwargs });
          if (got.numel === want.numel && got.shape.join() !== want.shape.join()) got = got.reshape(want.shape);
          const r = assertClose(got, want, tol(name), name);
          t.diagnostic(`${name}: max |diff| ${r.maxAbs.toExponential(3)}`);
        }),
      );
    });
  }
  if (spec.first_values !== undefined) {
    await dataCheck(t, 'first_values agree with io.safetensors', () => {
      for (const [name, values] of Object.entries(spec.first_values as Record<string, number[]>)) {
        const stored = ref(name).toArray().slice(0, values.length);
        values.forEach((v, i) =>
          assert.ok(
            Math.abs(stored[i]! - v) <= 1e-6 + 1e-5 * Math.abs(v),
            `${name}[${i}]: case.json says ${v}, io.safetensors ${stored[i]}`,
          ),
        );
      }
    });
  }
};
export default run;
