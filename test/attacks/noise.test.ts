// The random-noise baseline (src/attacks/noise.ts): within ε, uniform, seeded, mask respected.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ArgumentError } from '../../src/errors.js';
import { randomNoise } from '../../src/attacks/noise.js';
import { Generator, cat, full, noGrad, ones, rand, scope, zeros, type Tensor } from '../../src/torch/index.js';

function gray(shape = [1, 3, 64, 64]): Tensor {
  return full(shape, 0.5);
}

test('within ε of the original and inside [0, 1], also where the clamp bites', () => {
  const x = noGrad(() => scope(() => cat([zeros([1, 3, 8, 8]), ones([1, 3, 8, 8]), rand([1, 3, 8, 8])], 3)));
  const eps = 16 / 255;
  const y = randomNoise(x, { eps, seed: 1 });
  noGrad(() =>
    scope(() => {
      assert.ok(y.sub(x).abs().max().item() <= eps + 1e-6);
      assert.ok(y.min().item() >= 0 && y.max().item() <= 1);
    }),
  );
  x.dispose();
  y.dispose();
});

test('uniform on [−ε, ε]: mean 0, variance ε²/3, flat histogram', () => {
  const x = gray();
  const eps = 0.1;
  const y = randomNoise(x, { eps, seed: 3 });
  const d = noGrad(() => y.sub(x)).toTypedArray() as Float32Array;
  let s = 0,
    s2 = 0;
  const bins = [0, 0, 0, 0];
  for (const v of d) {
    s += v;
    s2 += v * v;
    bins[Math.min(3, Math.floor(((v + eps) / (2 * eps)) * 4))]!++;
  }
  const n = d.length;
  assert.ok(Math.abs(s / n) < 0.003, `mean ${s / n}`);
  assert.ok(Math.abs(s2 / n - eps ** 2 / 3) < (0.1 * eps ** 2) / 3, `variance ${s2 / n}, expected ${eps ** 2 / 3}`);
  for (const b of bins) assert.ok(Math.abs(b - n / 4) < (0.05 * n) / 4, `histogram ${bins.join(' ')}`);
  x.dispose();
  y.dispose();
});

test('seeded: same seed bit-identical, other seed different, a generator equals its seed', () => {
  const x = gray([1, 3, 16, 16]);
  const a = randomNoise(x, { eps: 0.05, seed: 7 });
  const b = randomNoise(x, { eps: 0.05, seed: 7 });
  const c = randomNoise(x, { eps: 0.05, seed: 8 });
  const g = randomNoise(x, { eps: 0.05, generator: new Generator({ seed: 7 }) });
  assert.deepEqual(a.toTypedArray(), b.toTypedArray());
  assert.deepEqual(a.toTypedArray(), g.toTypedArray());
  assert.notDeepEqual(a.toTypedArray(), c.toTypedArray());
  for (const t of [x, a, b, c, g]) t.dispose();
});

test('mask: noise only where the mask is 1, the original bit for bit elsewhere', () => {
  const x = noGrad(() => rand([1, 3, 16, 16], { generator: new Generator({ seed: 1 }) }));
  const mask = noGrad(() => scope(() => cat([ones([1, 1, 8, 16]), zeros([1, 1, 8, 16])], 2)));
  const y = randomNoise(x, { eps: 0.05, seed: 2, mask });
  noGrad(() =>
    scope(() => {
      assert.deepEqual(y.narrow(2, 8, 8).toTypedArray(), x.narrow(2, 8, 8).toTypedArray(), 'bottom half untouched');
      assert.ok(
        y
          .narrow(2, 0, 8)
          .sub(x.narrow(2, 0, 8))
          .abs()
          .mean()
          .item() > 0.01,
        'top half noised',
      );
    }),
  );
  for (const t of [x, mask, y]) t.dispose();
});

test('bad options name the option', () => {
  const x = gray([1, 3, 4, 4]);
  assert.throws(
    () => randomNoise(x, { eps: -0.1 }),
    (e: unknown) => e instanceof ArgumentError && /eps/.test(e.message),
  );
  assert.throws(() => randomNoise(x, { eps: 0.1, seed: 1.5 }), /seed/);
  using m = zeros([1, 1, 3, 3]);
  assert.throws(() => randomNoise(x, { eps: 0.1, mask: m }), /mask/);
  x.dispose();
});
