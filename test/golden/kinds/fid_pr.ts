// kind "fid_pr": pytorch-fid's statistics and Fréchet distance, piq's improved precision/recall.
// io.safetensors may hold features_a/_b (→ mu_*/sigma_* and frechet_distance from them),
// mu_*/sigma_* (→ frechet_distance from the stored statistics), and pr_features_x (real) /
// pr_features_y (fake) with precision and recall (k from `PR(nearest_k=K)` in case.json).
import assert from 'node:assert/strict';
import { activationStatistics, frechetDistance } from '../../../src/metrics/fid.js';
import { precisionRecall } from '../../../src/metrics/precision-recall.js';
import { noGrad, scope, tensor, type Tensor } from '../../../src/torch/index.js';
import { assertClose, toleranceFor, type Tolerance } from '../compare.js';
import { caseTensors, dataCheck } from '../io.js';
import type { CaseRunner } from './types.js';

const run: CaseRunner = async ({ dir, spec }, t) => {
  using io = caseTensors(dir, spec.io);
  const { ref } = io;
  const tol = (k: string): Tolerance =>
    spec.tolerances?.[k] === 'exact'
      ? { atol: 0, rtol: 0 }
      : toleranceFor(spec.tolerances, k, { atol: 1e-9, rtol: 1e-7 });
  const scalar = (v: number, like: Tensor) =>
    tensor(Float64Array.of(v), [1], { dtype: like.dtype }).reshape(like.shape);
  const checkFd = (got: number, label: string) => {
    const want = ref('frechet_distance');
    const r = assertClose(scalar(got, want), want, tol('frechet_distance'), label);
    t.diagnostic(`${label}: ${got} vs ${want.item()} (|diff| ${r.maxAbs.toExponential(3)})`);
  };
  if (io.has('features_a') && io.has('features_b')) {
    await t.test('statistics (mu, np.cov) and Fréchet distance from the features', () =>
      noGrad(() =>
        scope(() => {
          const a = activationStatistics(ref('features_a'));
          const b = activationStatistics(ref('features_b'));
          for (const [k, v] of [
            ['mu_a', a.mu],
            ['sigma_a', a.sigma],
            ['mu_b', b.mu],
            ['sigma_b', b.sigma],
          ] as const) {
            if (io.has(k)) assertClose(v, ref(k), tol(k), k);
          }
          if (io.has('frechet_distance'))
            checkFd(frechetDistance(a.mu, a.sigma, b.mu, b.sigma), 'frechet_distance (features)');
        }),
      ),
    );
  }
  if (io.has('mu_a') && io.has('sigma_a') && io.has('frechet_distance')) {
    await t.test('Fréchet distance from the stored statistics', () => {
      checkFd(
        frechetDistance(ref('mu_a'), ref('sigma_a'), ref('mu_b'), ref('sigma_b')),
        'frechet_distance (statistics)',
      );
    });
  }
  if (io.has('pr_features_x') && io.has('pr_features_y')) {
    await t.test('improved precision / recall', () => {
      const k = Number(/nearest_k\s*=\s*(\d+)/.exec(String(spec.pr ?? spec.reference ?? ''))?.[1] ?? 5);
      const { precision, recall } = precisionRecall(ref('pr_features_x'), ref('pr_features_y'), { nearestK: k });
      for (const [name, got] of [
        ['precision', precision],
        ['recall', recall],
      ] as const) {
        if (!io.has(name)) continue;
        const want = ref(name);
        assertClose(scalar(got, want).to(want.dtype), want, tol(name), name);
        t.diagnostic(`${name} (k=${k}): ${got} vs ${want.item()}`);
      }
    });
  }
  if (spec.values !== undefined) {
    await dataCheck(t, 'case.json values agree with io.safetensors', () => {
      for (const [k, v] of Object.entries(spec.values as Record<string, number>)) {
        assert.ok(
          Math.abs(ref(k).item() - v) <= 1e-12 + 1e-7 * Math.abs(v),
          `${k}: case.json ${v}, io.safetensors ${ref(k).item()}`,
        );
      }
    });
  }
};
export default run;
