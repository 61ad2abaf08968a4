// Comparison helpers for conformance runners: tolerances from case.json, and failure messages
// that say where and by how much a result differs.
import assert from 'node:assert/strict';
import { noGrad, scope, type Tensor } from '../../src/torch/index.js';

export interface Tolerance {
  atol: number;
  rtol: number;
}

/** Finds the tolerance for `name`: a key equal to it, or a combined key like "a/b/c" or "mean / logvar". */
export function toleranceFor(
  tolerances: Record<string, Partial<Tolerance>> | undefined,
  name: string,
  fallback: Tolerance = { atol: 1e-5, rtol: 1e-4 },
): Tolerance {
  if (tolerances === undefined) return fallback;
  const hit =
    tolerances[name] ??
    Object.entries(tolerances).find(([k]) =>
      k
        .split('/')
        .map((s) => s.trim())
        .includes(name),
    )?.[1];
  if (hit === undefined) return fallback;
  return { atol: hit.atol ?? 0, rtol: hit.rtol ?? 0 };
}

export interface CloseReport {
  maxAbs: number;
  worstIndex: number;
  got: number;
  expected: number;
  ok: boolean;
}

/** |got - expected| <= atol + rtol·|expected| elementwise (numpy.allclose), with a report. */
export function closeness(got: Tensor, expected: Tensor, tol: Tolerance): CloseReport {
  return noGrad(() =>
    scope(() => {
      const g = got.detach().to('float64').reshape(-1);
      const e = expected.to('float64').reshape(-1);
      const diff = g.sub(e).abs();
      const excess = diff.sub(e.abs().mul(tol.rtol).add(tol.atol));
      const worst = excess.numel === 0 ? 0 : excess.argmax().item();
      const maxAbs = diff.numel === 0 ? 0 : diff.max().item();
      const nan = g.isnan().any().item() !== 0;
      const ok = !nan && (excess.numel === 0 || excess.max().item() <= 0);
      return {
        maxAbs: nan ? NaN : maxAbs,
        worstIndex: worst,
        got: g.numel ? g.select(0, worst).item() : 0,
        expected: e.numel ? e.select(0, worst).item() : 0,
        ok,
      };
    }),
  );
}

export function assertClose(got: Tensor, expected: Tensor, tol: Tolerance, label: string): CloseReport {
  assert.deepEqual(
    got.shape,
    expected.shape,
    `${label}: shape [${got.shape.join(', ')}] differs from the reference [${expected.shape.join(', ')}]`,
  );
  const r = closeness(got, expected, tol);
  assert.ok(
    r.ok,
    `${label}: max |diff| ${r.maxAbs.toExponential(3)} exceeds atol ${tol.atol} + rtol ${tol.rtol}·|ref|; worst at flat index ${r.worstIndex}: got ${r.got}, expected ${r.expected}`,
  );
  return r;
}
