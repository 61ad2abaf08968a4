import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { assertStateShapes } from '../helpers/state-shapes.js';
import { saveSafetensors } from '../../src/io/tensors.js';
import {
  activationStatistics,
  fid,
  fidFromFeatures,
  frechetDistance,
  inceptionFeatures,
} from '../../src/metrics/fid.js';
import { precisionRecall } from '../../src/metrics/precision-recall.js';
import { FIDInceptionV3, inceptionKeyRename, loadFIDInception } from '../../src/models/inception.js';
import { randomInceptionWeights } from '../helpers/inception.js';
import { manualSeed, noGrad, rand, randn, scope, tensor, type Tensor } from '../../src/torch/index.js';

const f64 = (rows: number[][]) =>
  tensor(Float64Array.from(rows.flat()), [rows.length, rows[0]!.length], { dtype: 'float64' });
/** The diagonal matrix with `d` on its diagonal. */
const diag = (...d: number[]) => f64(d.map((x, i) => d.map((_, j) => (i === j ? x : 0))));

/** A random orthogonal D×D matrix (Gram–Schmidt on seeded Gaussian columns), as rows. */
function orthogonal(d: number, seed: number): number[][] {
  manualSeed(seed);
  const g = noGrad(() => randn([d, d], { dtype: 'float64' }).toArray());
  const cols: number[][] = [];
  for (let j = 0; j < d; j++) {
    let v = Array.from({ length: d }, (_, i) => g[i * d + j]!);
    for (const u of cols) {
      const dot = v.reduce((s, x, i) => s + x * u[i]!, 0);
      v = v.map((x, i) => x - dot * u[i]!);
    }
    const n = Math.hypot(...v);
    cols.push(v.map((x) => x / n));
  }
  return Array.from({ length: d }, (_, i) => cols.map((c) => c[i]!));
}

/** Q diag(l) Qᵀ. */
function withEigen(q: number[][], l: number[]): number[][] {
  const d = l.length;
  return Array.from({ length: d }, (_, i) =>
    Array.from({ length: d }, (_, j) => l.reduce((s, lk, k) => s + q[i]![k]! * lk * q[j]![k]!, 0)),
  );
}

test('activationStatistics: mean over rows and np.cov(rowvar=False) (unbiased), in float64', () => {
  scope(() => {
    const rows = [
      [1, 2],
      [3, 5],
      [4, 4],
      [0, 1],
    ];
    const { mu, sigma } = activationStatistics(f64(rows).to('float32'));
    assert.equal(mu.dtype, 'float64');
    assert.deepEqual(mu.toArray(), [2, 3]);
    // Hand-computed: deviations (−1,−1), (1,2), (2,1), (−2,−2); sums of products / 3.
    const want = [10 / 3, 9 / 3, 9 / 3, 10 / 3];
    sigma.toArray().forEach((v, i) => assert.ok(Math.abs(v - want[i]!) < 1e-12, `sigma[${i}] ${v}`));
    assert.throws(() => activationStatistics(f64([[1, 2]])), /fid: at least 2 feature vectors/);
    assert.throws(() => activationStatistics(f64([[1, 2]]).reshape(2)), /fid: expected features of shape \[N, D\]/);
  });
});

test('frechetDistance: closed forms (commuting covariances; any 2×2) and symmetry', () => {
  scope(() => {
    const d = 6;
    const q = orthogonal(d, 1);
    const a = [3, 1, 0.5, 2, 0.1, 4];
    const b = [1, 2, 0.2, 2, 0.3, 0.5];
    const mu1 = [0.1, -0.2, 0.3, 0, 1, 2];
    const mu2 = [0, 0, 0.5, 0, 1.5, 2];
    // Same eigenvectors: tr sqrt(σ1σ2) = Σ √(a_i b_i).
    const want =
      mu1.reduce((s, v, i) => s + (v - mu2[i]!) ** 2, 0) +
      a.reduce((s, ai, i) => s + ai + b[i]! - 2 * Math.sqrt(ai * b[i]!), 0);
    const v = (x: number[]) => tensor(Float64Array.from(x), [x.length], { dtype: 'float64' });
    const got = frechetDistance(v(mu1), f64(withEigen(q, a)), v(mu2), f64(withEigen(q, b)));
    assert.ok(Math.abs(got - want) < 1e-10 * want, `${got} vs ${want}`);
    // 2×2: tr √M = √(tr M + 2√det M) for M with non-negative eigenvalues.
    const s1 = [
      [2, 0.7],
      [0.7, 1],
    ];
    const s2 = [
      [0.5, -0.2],
      [-0.2, 1.5],
    ];
    const m = [
      [s1[0]![0]! * s2[0]![0]! + s1[0]![1]! * s2[1]![0]!, s1[0]![0]! * s2[0]![1]! + s1[0]![1]! * s2[1]![1]!],
      [s1[1]![0]! * s2[0]![0]! + s1[1]![1]! * s2[1]![0]!, s1[1]![0]! * s2[0]![1]! + s1[1]![1]! * s2[1]![1]!],
    ];
    const trRoot = Math.sqrt(m[0]![0]! + m[1]![1]! + 2 * Math.sqrt(m[0]![0]! * m[1]![1]! - m[0]![1]! * m[1]![0]!));
    const want2 = 3 + 2 - 2 * trRoot;
    const zero = v([0, 0]);
    const got2 = frechetDistance(zero, f64(s1), zero, f64(s2));
    assert.ok(Math.abs(got2 - want2) < 1e-12, `${got2} vs ${want2}`);
    assert.ok(Math.abs(frechetDistance(zero, f64(s2), zero, f64(s1)) - got2) < 1e-12, 'symmetric');
    assert.ok(Math.abs(frechetDistance(zero, f64(s1), zero, f64(s1))) < 1e-12, 'zero for identical statistics');
  });
});

test('fidFromFeatures: 0 for the same features, grows with a shift; rank-deficient covariances stay finite', () => {
  scope(() => {
    manualSeed(2);
    const a = randn([40, 8]);
    assert.ok(Math.abs(fidFromFeatures(a, a)) < 1e-9);
    const shifted = fidFromFeatures(a, a.add(1));
    assert.ok(Math.abs(shifted - 8) < 1e-6, `a shift by 1 in 8 dims adds 8: ${shifted}`);
    // Fewer samples than dimensions (singular covariances), as pytorch-fid/scipy: a finite value.
    const few = fidFromFeatures(randn([10, 32]), randn([10, 32]));
    assert.ok(Number.isFinite(few) && few > 0, String(few));
  });
});

test('frechetDistance: pytorch-fid checks — shapes, imaginary component, non-finite input (after the eps warning)', () => {
  scope(() => {
    const v = (x: number[]) => tensor(Float64Array.from(x), [x.length], { dtype: 'float64' });
    const eye2 = diag(1, 1);
    assert.throws(
      () => frechetDistance(v([0, 0]), eye2, v([0, 0, 0]), eye2),
      /fid: the mean vectors have different lengths \(2 and 3\)/,
    );
    assert.throws(
      () => frechetDistance(v([0, 0]), eye2, v([0, 0]), diag(1, 1, 1)),
      /fid: the covariances have different dimensions/,
    );
    // σ2 with a negative eigenvalue: sqrtm has an imaginary diagonal of 1 (> 1e-3).
    assert.throws(
      () => frechetDistance(v([0, 0]), eye2, v([0, 0]), diag(1, -1)),
      (e: Error & { code?: string }) => e.code === 'E_FID_COMPLEX' && /Imaginary component 1/.test(e.message),
    );
    const warnings: string[] = [];
    assert.throws(
      () => frechetDistance(v([0, 0]), diag(NaN, 1), v([0, 0]), eye2, { onWarning: (m) => warnings.push(m) }),
      (e: Error & { code?: string }) => e.code === 'E_FID_NONFINITE',
    );
    assert.deepEqual(warnings, [
      'fid calculation produces singular product; adding 1e-06 to diagonal of cov estimates',
    ]);
  });
});

test('precisionRecall (piq PR): identical sets 1/1, far-apart sets 0/0, half covered 0.5; argument checks', () => {
  scope(() => {
    manualSeed(3);
    const real = randn([30, 4]);
    assert.deepEqual(precisionRecall(real, real.clone(), { nearestK: 3 }), { precision: 1, recall: 1 });
    assert.deepEqual(precisionRecall(real, real.add(100), { nearestK: 3 }), { precision: 0, recall: 0 });
    const half = precisionRecall(
      real,
      real.add(
        tensor(
          Float32Array.from({ length: 30 }, (_, i) => (i % 2) * 100),
          [30, 1],
        ),
      ),
      { nearestK: 3 },
    );
    assert.equal(half.precision, 0.5);
    // Chunked cdist gives the same answer.
    assert.deepEqual(
      precisionRecall(real, real.mul(1.3), { nearestK: 3, chunkSize: 7 }),
      precisionRecall(real, real.mul(1.3), { nearestK: 3 }),
    );
    assert.throws(
      () => precisionRecall(real, randn([30, 5])),
      /precision_recall: real and fake features have different dimensions \(4 and 5\)/,
    );
    assert.throws(
      () => precisionRecall(real.narrow(0, 0, 3), real, { nearestK: 3 }),
      /realFeatures has 3 rows; k = 3 nearest neighbours need at least 4/,
    );
    assert.throws(() => precisionRecall(real.reshape(-1), real), /expected realFeatures of shape \[N, D\]/);
  });
});

// ---- the FID Inception (pytorch-fid's key names and architecture; random weights) -------------

function randomInception(): FIDInceptionV3 {
  const m = new FIDInceptionV3();
  const sd = randomInceptionWeights();
  m.loadStateDict(sd);
  for (const t of sd.values()) t.dispose();
  return m;
}

test('FIDInceptionV3: the checkpoint keys and shapes of pt_inception-2015-12-05 (torchvision Inception3, no aux, no fc)', () => {
  const m = new FIDInceptionV3();
  const shapes = m.stateShapes();
  assert.equal(
    shapes.size,
    94 * 5,
    '94 BasicConv2d × (conv.weight, bn.weight, bn.bias, bn.running_mean, bn.running_var)',
  );
  assert.equal(m.parameterCount(), 21_785_568);
  assertStateShapes(shapes, 'fid-inception');
  assert.equal(inceptionKeyRename('blocks.2.4.branch7x7_2.conv.weight'), 'Mixed_6b.branch7x7_2.conv.weight');
  assert.equal(inceptionKeyRename('blocks.0.0.bn.running_mean'), 'Conv2d_1a_3x3.bn.running_mean');
  assert.equal(inceptionKeyRename('fc.weight'), null);
  assert.equal(inceptionKeyRename('Mixed_5b.branch1x1.bn.num_batches_tracked'), null);
});

test('FIDInceptionV3: block shapes (64@73², 192@35², 768@17², 2048@1²), features, FID from images', () => {
  const m = randomInception();
  try {
    scope(() => {
      manualSeed(5);
      const imgs = rand([2, 3, 40, 56]);
      const outs = noGrad(() => m.forward(imgs.narrow(0, 0, 1), { outputBlocks: [3, 0, 2, 1] }));
      assert.deepEqual(
        outs.map((o) => o.shape),
        [
          [1, 64, 73, 73],
          [1, 192, 35, 35],
          [1, 768, 17, 17],
          [1, 2048, 1, 1],
        ],
      );
      const f = noGrad(() => m.features(imgs));
      assert.deepEqual(f.shape, [2, 2048]);
      assert.ok(f.isfinite().all().item() === 1);
      const f64d = inceptionFeatures(m, imgs, { dims: 64, batchSize: 1 });
      assert.deepEqual(f64d.shape, [2, 64]);
      // Batching does not change the features.
      const together = noGrad(() => m.features(imgs, 64));
      assert.ok(f64d.allclose(together, 1e-4, 1e-5));
      const more = rand([6, 3, 40, 56]);
      assert.ok(Math.abs(fid(m, more, more, { dims: 64 })) < 1e-6);
      assert.ok(fid(m, more, more.mul(0.3), { dims: 64 }) > 0);
      assert.throws(() => m.forward(rand([1, 1, 40, 40])), /FIDInceptionV3: expected RGB images/);
      assert.throws(() => m.forward(imgs, { outputBlocks: [4] }), /outputBlocks must be block indices 0–3/);
      assert.throws(() => m.features(imgs, 100), /dims must be one of 64, 192, 768, 2048/);
    });
  } finally {
    m.dispose();
  }
});

test('loadFIDInception: reads the converted .pth keys (fc and num_batches_tracked ignored), refuses pickles, explains a missing file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'immunize-inception-'));
  const m = new FIDInceptionV3().initZeros();
  try {
    const sd = new Map(m.stateDict());
    const extra = new Map<string, Tensor>([
      ['fc.weight', tensor(new Float32Array(1008 * 2048), [1008, 2048])],
      ['fc.bias', tensor(new Float32Array(1008), [1008])],
      ['Mixed_5b.branch1x1.bn.num_batches_tracked', tensor(BigInt64Array.of(0n), [])],
    ]);
    const file = join(dir, 'pt_inception-2015-12-05.safetensors');
    saveSafetensors(file, new Map([...sd, ...extra]));
    const loaded = loadFIDInception(file);
    assert.equal(loaded.stateDict().size, 470);
    loaded.dispose();
    for (const t of extra.values()) t.dispose();
    writeFileSync(join(dir, 'x.pth'), 'not really');
    assert.throws(
      () => loadFIDInception(join(dir, 'x.pth')),
      (e: Error & { code?: string }) => e.code === 'E_PICKLE_REFUSED',
    );
    assert.throws(
      () => loadFIDInception(join(dir, 'missing.safetensors')),
      /does not exist\. FID needs pytorch-fid's Inception weights.*docs\/metrics\.md/,
    );
  } finally {
    m.dispose();
  }
});
