// The visibility target of PGD (src/attacks/visibility.ts): the budget shrinks during the attack
// when the score is below the target, and a final bisection along δ meets it exactly.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { pgd } from '../../src/attacks/pgd.js';
import { scaleBack, shrinkFactor } from '../../src/attacks/visibility.js';
import { ArgumentError } from '../../src/errors.js';
import { ssim } from '../../src/metrics/ssim.js';
import { Generator, noGrad, rand, scope, type Tensor } from '../../src/torch/index.js';

const seeded = (shape: number[], seed: number): Tensor =>
  noGrad(() => rand(shape, { generator: new Generator({ seed }) }));
const item = (f: () => Tensor): number => noGrad(() => scope(() => f().item()));
/** A generated photo: smooth gradients plus a little texture, [1, 3, 32, 32] in [0.2, 0.8]. */
function photo(): Tensor {
  return noGrad(() =>
    scope(() =>
      seeded([1, 3, 32, 32], 4)
        .mul(0.2)
        .add(seeded([1, 3, 1, 32], 5).mul(0.4))
        .add(0.2),
    ),
  );
}
/** Pushes every pixel towards a far random target: PGD spends its whole budget, the change is as visible as it may be. */
const pushTo = (c: Tensor) => (xa: Tensor) => xa.sub(c).square().sum();
const far = (): Tensor => noGrad(() => scope(() => seeded([1, 3, 32, 32], 9).gt(0.5).to('float32').mul(4).sub(2)));
const ssimTo = (x: Tensor) => (a: Tensor) => ssim(a, x);

describe('the visibility target', () => {
  test('shrinkFactor: 1 at or above the target; √((1 − min)/(1 − score)) with a 5% margin below it, never below ¼', () => {
    assert.equal(shrinkFactor(0.95, 0.9), 1);
    assert.equal(shrinkFactor(0.9, 0.9), 1);
    // 1 − SSIM twice the allowed: δ scaled by 0.95/√2.
    assert.ok(Math.abs(shrinkFactor(0.8, 0.9) - 0.95 / Math.SQRT2) < 1e-12);
    assert.equal(shrinkFactor(-0.5, 0.99), 0.25, 'never below a quarter in one go');
    assert.ok(shrinkFactor(0.8999, 0.9) < 0.95, 'just below the target: a shrink still shrinks');
  });

  test('PGD meets SSIM ≥ S where the same attack without a target falls below it', () => {
    const x = photo();
    const target = far();
    const o = { eps: 24 / 255, stepSize: 3 / 255, steps: 20, randomStart: true, seed: 1 };
    const free = pgd(x, pushTo(target), o);
    const freeSsim = ssim(free.adv, x);
    assert.ok(freeSsim < 0.9, `without a target the change is visible (SSIM ${freeSsim}): the test has teeth`);

    const r = pgd(x, pushTo(target), { ...o, visibility: { min: 0.9, measure: ssimTo(x), every: 5 } });
    const got = ssim(r.adv, x);
    assert.ok(got >= 0.9, `SSIM ${got} meets 0.9`);
    assert.equal(r.visibility!.score, got, 'the record holds the measured score');
    assert.ok(r.visibility!.shrinks >= 1 && r.visibility!.budgetScale < 1, 'the budget shrank during the attack');
    // Still a real change: the attack spent its steps inside the target rather than near zero.
    assert.ok(got < 0.97, `SSIM ${got}: the target was used, not overshot`);
    const linf = item(() => r.adv.sub(x).abs().max());
    assert.ok(linf <= (24 / 255) * r.visibility!.budgetScale + 1e-6, 'δ stays inside the shrunk budget');
  });

  test('the bisection fallback meets the target exactly when the attack never checked (every > steps)', () => {
    const x = photo();
    const r = pgd(x, pushTo(far()), {
      eps: 24 / 255,
      stepSize: 3 / 255,
      steps: 10,
      seed: 2,
      visibility: { min: 0.9, measure: ssimTo(x), every: 1000 },
    });
    const v = r.visibility!;
    assert.equal(v.shrinks, 0);
    assert.ok(v.scaledBack !== null && v.scaledBack > 0 && v.scaledBack < 1, `scaled back by ${v.scaledBack}`);
    const got = ssim(r.adv, x);
    assert.ok(got >= 0.9, `SSIM ${got} ≥ 0.9`);
    assert.ok(got < 0.9 + 2e-3, `SSIM ${got} is at the target, not far above it (the bisection is exact)`);
  });

  test('scaleBack stays on the segment from x to adv: the result is x + t·δ', () => {
    const x = photo();
    const adv = noGrad(() => scope(() => x.add(seeded([1, 3, 32, 32], 7).sub(0.5).mul(0.3)).clamp(0, 1)));
    const b = scaleBack(x, adv, { min: 0.95, measure: ssimTo(x) });
    const off = item(() => b.image.sub(x).sub(adv.sub(x).mul(b.t)).abs().max());
    assert.ok(off < 1e-6, `off the segment by ${off}`);
    assert.ok(b.score >= 0.95 && b.t > 0 && b.t < 1);
    b.image.dispose();
  });

  test('a bad target is refused before any step', () => {
    const x = photo();
    for (const bad of [
      { min: 1, measure: ssimTo(x) },
      { min: 0.9, measure: 'ssim' },
      { min: 0.9, measure: ssimTo(x), every: 0 },
    ])
      assert.throws(
        () => pgd(x, pushTo(far()), { eps: 0.1, stepSize: 0.01, steps: 1, visibility: bad as never }),
        (e) => e instanceof ArgumentError && /visibility/.test((e as Error).message),
      );
  });
});
