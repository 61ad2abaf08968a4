// Expectation over transforms in the PGD engine (robust immunization): the step's loss and
// gradient are the mean over the drawn transforms, draws are reproducible, nothing leaks, and
// optimising through a transform makes the perturbation hold up after it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pgd, type PgdOptions } from '../../src/attacks/pgd.js';
import { ArgumentError } from '../../src/errors.js';
import { seededImage } from '../torch/helpers.js';
import { F, Generator, keep, liveTensors, noGrad, rand, scope, type Tensor } from '../../src/torch/index.js';

const gc = (globalThis as { gc?: () => void }).gc;

function image(seed: number, shape = [1, 3, 16, 16]): Tensor {
  return seededImage(seed, shape);
}

/** 3×3 box blur with edge replication: a linear, differentiable stand-in for a purification. */
const blur = (x: Tensor): Tensor => scope(() => F.avgPool2d(F.pad(x, [1, 1, 1, 1], 'replicate'), 3, { stride: 1 }));

const base: PgdOptions = { eps: 8 / 255, stepSize: 1 / 255, steps: 30, seed: 3 };

test('an identity transform leaves PGD unchanged, bit for bit (mean of equal gradients)', () => {
  const x = image(1),
    c = image(2);
  const loss = (y: Tensor): Tensor => y.sub(c).square().sum();
  const plain = pgd(x, loss, base);
  const eot = pgd(x, loss, { ...base, eot: { transform: (y) => y.alias(), samples: 2 } });
  assert.deepEqual(eot.losses, plain.losses);
  assert.ok(noGrad(() => scope(() => eot.adv.eq(plain.adv).all().item())));
  for (const t of [x, c, plain.adv, eot.adv]) t.dispose();
});

test('the recorded loss is the mean over the identity and the draws', () => {
  const x = image(1);
  const loss = (y: Tensor): Tensor => y.sum();
  // Deterministic transform ×3: mean of (s, 3s) = 2s with the identity, 3s without.
  const s = noGrad(() => x.sum().item());
  const withId = pgd(x, loss, { ...base, steps: 1, eot: { transform: (y) => y.mul(3) } });
  const without = pgd(x, loss, {
    ...base,
    steps: 1,
    eot: { transform: (y) => y.mul(3), includeIdentity: false, samples: 3 },
  });
  assert.ok(Math.abs(withId.losses[0]! - 2 * s) < 1e-3 * s, `${withId.losses[0]} vs ${2 * s}`);
  assert.ok(Math.abs(without.losses[0]! - 3 * s) < 1e-3 * s, `${without.losses[0]} vs ${3 * s}`);
  for (const t of [x, withId.adv, without.adv]) t.dispose();
});

test('random transforms draw from their own generator: same seed, same result; another seed differs; the random start is unchanged', () => {
  const x = image(4),
    c = image(5);
  const loss = (y: Tensor): Tensor => y.sub(c).square().sum();
  // Adds noise drawn from the transform generator.
  const noisy = (y: Tensor, g: Generator): Tensor =>
    scope(() => y.add(rand(y.shape, { generator: g }).sub(0.5).mul(0.2)));
  const o: PgdOptions = { ...base, steps: 5, randomStart: true, eot: { transform: noisy, samples: 2 } };
  const a = pgd(x, loss, o),
    b = pgd(x, loss, o),
    d = pgd(x, loss, { ...o, eot: { ...o.eot!, seed: 99 } });
  assert.deepEqual(a.losses, b.losses);
  assert.notDeepEqual(a.losses, d.losses);
  // The random start comes from the attack's seed, not the transforms': the identity draw of step 0
  // hands the loss the start point itself.
  const startOf = (eotSeed: number | undefined, seed = 3): Tensor => {
    let first: Tensor | null = null;
    const recording = (y: Tensor): Tensor => {
      first ??= noGrad(() => keep(y.detach().clone()));
      return loss(y);
    };
    pgd(x, recording, { ...o, steps: 1, seed, eot: { ...o.eot!, seed: eotSeed } }).adv.dispose();
    return first!;
  };
  const s0 = startOf(undefined),
    s99 = startOf(99),
    other = startOf(undefined, 4);
  const same = (p: Tensor, q: Tensor): boolean => noGrad(() => scope(() => p.eq(q).all().item() !== 0));
  assert.ok(same(s0, s99), 'another transform seed left the random start unchanged');
  assert.ok(!same(s0, x) && !same(s0, other), 'the start is random, and drawn from the attack seed');
  for (const t of [s0, s99, other]) t.dispose();
  for (const t of [x, c, a.adv, b.adv, d.adv]) t.dispose();
});

test('optimising through the blur makes the perturbation work after the blur', () => {
  const x = image(6),
    c = image(7);
  const loss = (y: Tensor): Tensor => y.sub(c).square().sum();
  const after = (adv: Tensor): number => noGrad(() => scope(() => loss(blur(adv)).item()));
  const plain = pgd(x, loss, base);
  const robust = pgd(x, loss, { ...base, eot: { transform: blur, includeIdentity: false } });
  // What each attack gains after the blur, from the clean image's loss there.
  const clean = after(x),
    gPlain = clean - after(plain.adv),
    gRobust = clean - after(robust.adv);
  assert.ok(
    gPlain > 0 && gRobust > 1.2 * gPlain,
    `gain after blur: robust ${gRobust.toFixed(3)}, plain ${gPlain.toFixed(3)}`,
  );
  for (const t of [x, c, plain.adv, robust.adv]) t.dispose();
});

test('no tensors leak across EOT steps, and bad samples are refused', () => {
  const x = image(8),
    c = image(9);
  const loss = (y: Tensor): Tensor => y.sub(c).square().sum();
  const o: PgdOptions = {
    ...base,
    steps: 3,
    eot: { transform: (y, g) => scope(() => blur(y).add(rand(y.shape, { generator: g }).mul(0.01))), samples: 3 },
  };
  pgd(x, loss, o).adv.dispose();
  gc?.();
  const before = liveTensors();
  for (let i = 0; i < 3; i++) pgd(x, loss, o).adv.dispose();
  gc?.();
  assert.equal(liveTensors(), before);
  assert.throws(
    () => pgd(x, loss, { ...base, eot: { transform: blur, samples: 0 } }),
    (e: unknown) => e instanceof ArgumentError && /eot\.samples/.test((e as Error).message),
  );
  x.dispose();
  c.dispose();
});
