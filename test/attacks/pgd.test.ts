// The PGD engine (src/attacks/pgd.ts): every option it offers, on tiny problems so the suite
// stays fast — a convex loss in closed form, or a one-conv "encoder".
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ArgumentError } from '../../src/errors.js';
import {
  checkPgdOptions,
  pgd,
  pgdWithGradient,
  stepSizeAt,
  type PgdOptions,
  type PgdStep,
} from '../../src/attacks/pgd.js';
import {
  F,
  Generator,
  cat,
  liveTensors,
  noGrad,
  ones,
  rand,
  randn,
  scope,
  tensor,
  zeros,
  type Tensor,
} from '../../src/torch/index.js';

const gc = (globalThis as { gc?: () => void }).gc;

/** An image with pixels exactly at 0 and 1 as well as inside, so the [0, 1] clamp bites. */
function image(seed = 7, shape = [1, 3, 8, 8]): Tensor {
  return noGrad(() =>
    scope(() => {
      const g = new Generator({ seed });
      const x = rand(shape, { generator: g });
      // A third of the pixels pinned to the range's ends.
      const r = rand(shape, { generator: g });
      return x.where(r.gt(0.33), r.gt(0.16).to('float32'));
    }),
  );
}

/** ‖x − c‖² with c far outside the budget: every pixel wants to move by more than ε. */
function pushOut(c: Tensor): (xa: Tensor) => Tensor {
  return (xa) => xa.sub(c).square().sum();
}

function values(t: Tensor): Float32Array {
  return t.toTypedArray() as Float32Array;
}

function maxAbsDiff(a: Tensor, b: Tensor): number {
  return noGrad(() => scope(() => a.sub(b).abs().max().item()));
}

function l2(a: Tensor, b: Tensor): number {
  return noGrad(() => scope(() => a.sub(b).norm().item()));
}

describe('budgets', () => {
  test('L∞: every pixel within ε of the original and inside [0, 1], also where the clamp bites', () => {
    const x = image();
    // Alternate targets at −1 and 2: half the pixels are pushed below 0, half above 1.
    const c = noGrad(() =>
      scope(() =>
        rand(x.shape, { generator: new Generator({ seed: 3 }) })
          .gt(0.5)
          .to('float32')
          .mul(3)
          .sub(1),
      ),
    );
    const eps = 8 / 255;
    const r = pgd(x, pushOut(c), { eps, stepSize: 2 / 255, steps: 20, randomStart: true, seed: 1 });
    const d = maxAbsDiff(r.adv, x);
    assert.ok(d <= eps + 1e-6, `L∞ ${d} > ε ${eps}`);
    assert.ok(d >= eps - 1e-6, `the attack should use the budget (L∞ ${d})`);
    assert.ok(r.adv.min().item() >= 0 && r.adv.max().item() <= 1, 'inside [0, 1]');
    // Pixels at 0 pushed down stay exactly 0 (clamped), not ε below.
    const a = values(r.adv),
      xs = values(x),
      cs = values(c);
    let pinned = 0;
    for (let i = 0; i < a.length; i++)
      if (xs[i] === 0 && cs[i]! < 0) {
        assert.equal(a[i], 0, `pixel ${i}`);
        pinned++;
      }
    assert.ok(pinned > 0, 'the test image has pixels where the clamp bites');
    for (const t of [x, c, r.adv]) t.dispose();
  });

  test('L2: per-sample ‖δ‖₂ ≤ ε after the clamp, and the budget is used', () => {
    const x = image(5, [2, 3, 8, 8]);
    const c = noGrad(() => scope(() => x.mul(-1).add(1).mul(4).sub(1.5))); // far away, pushes both ways
    const eps = 0.5;
    const r = pgd(x, pushOut(c), { eps, stepSize: 0.1, steps: 25, norm: 'l2', randomStart: true, seed: 2 });
    for (let n = 0; n < 2; n++) {
      const d = l2(r.adv.select(0, n), x.select(0, n));
      assert.ok(d <= eps * (1 + 1e-5), `sample ${n}: ‖δ‖₂ ${d} > ε ${eps}`);
      assert.ok(d > 0.9 * eps, `sample ${n}: ‖δ‖₂ ${d} should reach the budget ${eps}`);
    }
    assert.ok(r.adv.min().item() >= 0 && r.adv.max().item() <= 1, 'inside [0, 1]');
    for (const t of [x, c, r.adv]) t.dispose();
  });

  test("a custom range is respected ([-1, 1], as photoguard's notebooks)", () => {
    const x = noGrad(() => image().mul(2).sub(1));
    const c = noGrad(() => scope(() => x.sign().mul(5)));
    const r = pgd(x, pushOut(c), { eps: 0.06, stepSize: 0.02, steps: 10, range: [-1, 1] });
    assert.ok(r.adv.min().item() >= -1 && r.adv.max().item() <= 1);
    assert.ok(maxAbsDiff(r.adv, x) <= 0.06 + 1e-6);
    assert.ok(r.adv.min().item() === -1, 'pixels pushed past −1 sit at −1');
    for (const t of [x, c, r.adv]) t.dispose();
  });
});

describe('step sizes', () => {
  test('constant: every step uses stepSize', () => {
    const x = image();
    const r = pgd(x, (xa) => xa.sum(), { eps: 0.1, stepSize: 0.01, steps: 6 });
    assert.deepEqual(r.stepSizes, [0.01, 0.01, 0.01, 0.01, 0.01, 0.01]);
    r.adv.dispose();
    x.dispose();
  });

  test("linear-decay: photoguard's step − (step − step/100)·i/iters, from step to about step/100", () => {
    const x = image();
    const s = 0.02,
      n = 10;
    const r = pgd(x, (xa) => xa.sum(), { eps: 0.1, stepSize: s, steps: n, schedule: 'linear-decay' });
    assert.equal(r.stepSizes.length, n);
    r.stepSizes.forEach((v, i) => assert.ok(Math.abs(v - (s - ((s - s / 100) * i) / n)) < 1e-15, `step ${i}: ${v}`));
    assert.equal(r.stepSizes[0], s);
    for (let i = 1; i < n; i++) assert.ok(r.stepSizes[i]! < r.stepSizes[i - 1]!, 'strictly decreasing');
    assert.ok(
      Math.abs(stepSizeAt({ stepSize: s, steps: n, schedule: 'linear-decay' }, n) - s / 100) < 1e-15,
      'reaches step/100 at i = iters',
    );
    r.adv.dispose();
    x.dispose();
  });

  test('a sign step moves each pixel by exactly the step size (away from the clamp)', () => {
    const x = noGrad(() => ones([1, 3, 4, 4]).mul(0.5));
    const r = pgd(x, (xa) => xa.sum(), { eps: 0.1, stepSize: 0.01, steps: 3 });
    const a = values(r.adv);
    for (const v of a) assert.ok(Math.abs(v - 0.47) < 1e-6, `pixel ${v}, expected 0.5 − 3·0.01`);
    r.adv.dispose();
    x.dispose();
  });
});

describe('random start', () => {
  test('uniform in the L∞ ball, projected into the range and the mask, seeded', () => {
    const x = noGrad(() => ones([1, 3, 32, 32]).mul(0.5));
    const eps = 0.1;
    const r = pgd(x, (xa) => xa.sum(), { eps, stepSize: 0.01, steps: 0, randomStart: true, seed: 11 });
    assert.equal(r.stepsTaken, 0);
    const d = values(noGrad(() => r.adv.sub(x)));
    let sum = 0,
      sumAbs = 0,
      max = 0;
    for (const v of d) {
      sum += v;
      sumAbs += Math.abs(v);
      max = Math.max(max, Math.abs(v));
    }
    assert.ok(max <= eps + 1e-6 && max > 0.95 * eps, `max |δ| ${max}`);
    assert.ok(Math.abs(sum / d.length) < 0.01, `mean δ ${sum / d.length} ≈ 0`);
    assert.ok(Math.abs(sumAbs / d.length - eps / 2) < 0.005, `mean |δ| ${sumAbs / d.length} ≈ ε/2 (uniform)`);
    r.adv.dispose();
    x.dispose();
  });

  test('L2: the start is projected into the L2 ball', () => {
    const x = noGrad(() => ones([1, 3, 16, 16]).mul(0.5));
    const r = pgd(x, (xa) => xa.sum(), { eps: 0.3, stepSize: 0.01, steps: 0, norm: 'l2', randomStart: true, seed: 4 });
    const d = l2(r.adv, x);
    assert.ok(d <= 0.3 * (1 + 1e-5) && d > 0.29, `‖δ‖₂ ${d}`);
    r.adv.dispose();
    x.dispose();
  });

  test("without randomStart the first loss is the clean image's", () => {
    const x = image();
    const c = noGrad(() => zeros(x.shape));
    const clean = noGrad(() => scope(() => pushOut(c)(x).item()));
    const r = pgd(x, pushOut(c), { eps: 0.05, stepSize: 0.01, steps: 3 });
    assert.equal(r.losses[0], clean);
    for (const t of [x, c, r.adv]) t.dispose();
  });
});

describe('mask', () => {
  test('perturbation only where mask = 1; bit-identical pixels elsewhere (random start included)', () => {
    const x = image(9, [1, 3, 16, 16]);
    // Left half may change, right half must not.
    const mask = noGrad(() => scope(() => cat([ones([1, 1, 16, 8]), zeros([1, 1, 16, 8])], 3)));
    const c = noGrad(() => scope(() => x.mul(-1).add(1)));
    for (const optimizer of ['sign', 'momentum', 'adam'] as const) {
      const r = pgd(x, pushOut(c), {
        eps: 0.05,
        stepSize: 0.01,
        steps: 5,
        randomStart: true,
        seed: 3,
        mask,
        optimizer,
      });
      const a = values(r.adv),
        xs = values(x);
      let changed = 0;
      for (let ch = 0; ch < 3; ch++) {
        for (let yy = 0; yy < 16; yy++) {
          for (let xx = 0; xx < 16; xx++) {
            const i = ch * 256 + yy * 16 + xx;
            if (xx >= 8)
              assert.equal(a[i], xs[i], `${optimizer}: pixel (${ch}, ${yy}, ${xx}) outside the mask changed`);
            else if (a[i] !== xs[i]) changed++;
          }
        }
      }
      assert.ok(changed > 300, `${optimizer}: inside the mask most pixels change (${changed} of 384)`);
      r.adv.dispose();
    }
    for (const t of [x, c, mask]) t.dispose();
  });
});

describe('optimisers', () => {
  // A convex bowl whose minimum c = x + 0.6·ε·s lies inside the budget: each optimiser must get close.
  for (const optimizer of ['sign', 'momentum', 'adam'] as const) {
    test(`${optimizer} lowers a convex loss towards its minimum`, () => {
      const x = noGrad(() => ones([1, 3, 8, 8]).mul(0.5));
      const eps = 0.1;
      const c = noGrad(() =>
        scope(() =>
          x.add(
            randn(x.shape, { generator: new Generator({ seed: 1 }) })
              .sign()
              .mul(0.6 * eps),
          ),
        ),
      );
      const stepSize = optimizer === 'adam' ? 0.01 : 0.01;
      const r = pgd(x, pushOut(c), { eps, stepSize, steps: 40, optimizer, schedule: 'linear-decay' });
      const first = r.losses[0]!;
      const final = noGrad(() => scope(() => pushOut(c)(r.adv).item()));
      assert.ok(final < first / 20, `${optimizer}: loss ${first} → ${final}`);
      assert.ok(
        maxAbsDiff(r.adv, c) < 0.02,
        `${optimizer}: ends near the minimum (max |adv − c| ${maxAbsDiff(r.adv, c)})`,
      );
      for (const t of [x, c, r.adv]) t.dispose();
    });
  }

  test('the optimisers take different paths', () => {
    // The target sits inside the budget, 1.5 steps away: sign-PGD overshoots and turns back at
    // step 2, momentum's accumulated velocity carries it on, Adam's steps shrink.
    const x = noGrad(() => ones([1, 3, 8, 8]).mul(0.5));
    const c = noGrad(() => x.add(0.015));
    const runs = (['sign', 'momentum', 'adam'] as const).map(
      (optimizer) => pgd(x, (xa) => xa.sub(c).square().sum(), { eps: 0.1, stepSize: 0.01, steps: 4, optimizer }).adv,
    );
    assert.ok(maxAbsDiff(runs[0]!, runs[1]!) > 1e-4, 'sign vs momentum');
    assert.ok(maxAbsDiff(runs[0]!, runs[2]!) > 1e-4, 'sign vs adam');
    assert.ok(maxAbsDiff(runs[1]!, runs[2]!) > 1e-4, 'momentum vs adam');
    for (const t of [x, c, ...runs]) t.dispose();
  });
});

describe('stopping and progress', () => {
  test('early stop at targetLoss: stops before the update, records the loss that met it', () => {
    const x = noGrad(() => ones([1, 3, 8, 8]).mul(0.5));
    const c = noGrad(() => zeros(x.shape));
    // loss = Σ (x − 0)², starts at 192·0.25 = 48 and drops every step; stop at 40.
    const r = pgd(x, pushOut(c), { eps: 0.2, stepSize: 0.01, steps: 100, targetLoss: 40 });
    assert.equal(r.stoppedBy, 'target');
    assert.ok(r.stepsTaken < 100 && r.stepsTaken > 0, `steps taken ${r.stepsTaken}`);
    assert.equal(r.losses.length, r.stepsTaken + 1, 'the stopping loss is recorded');
    assert.ok(r.losses.at(-1)! <= 40 && r.losses.at(-2)! > 40);
    assert.ok(
      Math.abs(noGrad(() => scope(() => pushOut(c)(r.adv).item())) - r.losses.at(-1)!) < 1e-3,
      'adv is the point that met the target',
    );
    for (const t of [x, c, r.adv]) t.dispose();
  });

  test('losses are recorded before each update and decrease for a descent problem', () => {
    const x = noGrad(() => ones([1, 3, 8, 8]).mul(0.5));
    const c = noGrad(() => zeros(x.shape));
    const r = pgd(x, pushOut(c), { eps: 0.2, stepSize: 0.01, steps: 5 });
    assert.equal(r.losses.length, 5);
    assert.equal(r.stoppedBy, 'steps');
    for (let i = 0; i < 5; i++)
      assert.ok(Math.abs(r.losses[i]! - 192 * (0.5 - 0.01 * i) ** 2) < 1e-3, `loss ${i}: ${r.losses[i]}`);
    for (const t of [x, c, r.adv]) t.dispose();
  });

  test('onStep reports every step with loss and time; returning false cancels', () => {
    const x = image();
    const seen: PgdStep[] = [];
    const r = pgd(x, (xa) => xa.sum(), {
      eps: 0.1,
      stepSize: 0.01,
      steps: 10,
      onStep: (s) => {
        seen.push(s);
        return s.step < 3;
      },
    });
    assert.equal(r.stoppedBy, 'callback');
    assert.equal(r.stepsTaken, 3);
    assert.equal(r.losses.length, 3);
    assert.deepEqual(
      seen.map((s) => s.step),
      [1, 2, 3],
    );
    assert.ok(seen.every((s) => s.steps === 10 && s.stepSize === 0.01));
    assert.deepEqual(
      seen.map((s) => s.loss),
      r.losses,
    );
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i]!.elapsedMs >= seen[i - 1]!.elapsedMs);
    // Three updates happened: the sum dropped by 3·0.01 per unclamped pixel.
    const moved = noGrad(() => scope(() => x.sub(r.adv).max().item()));
    assert.ok(Math.abs(moved - 0.03) < 1e-6, `moved ${moved}`);
    r.adv.dispose();
    x.dispose();
  });

  test('an exception in the loss propagates and leaks nothing', () => {
    gc?.();
    const x = image();
    const before = liveTensors();
    let n = 0;
    assert.throws(
      () =>
        pgd(
          x,
          (xa) => {
            if (++n === 3) throw new Error('boom');
            return xa.sum();
          },
          { eps: 0.1, stepSize: 0.01, steps: 5, optimizer: 'adam', randomStart: true, seed: 1 },
        ),
      /boom/,
    );
    assert.equal(liveTensors(), before);
    x.dispose();
  });

  test('a non-finite loss is an error naming the step', () => {
    const x = image();
    assert.throws(
      () => pgd(x, (xa) => xa.sum().div(0), { eps: 0.1, stepSize: 0.01, steps: 3 }),
      /became Infinity at step 0/,
    );
    x.dispose();
  });
});

describe('determinism', () => {
  const run = (seed: number, o: Partial<PgdOptions> = {}): Float32Array => {
    const x = image();
    const c = noGrad(() => scope(() => x.mul(-1).add(1)));
    const r = pgd(x, (xa) => xa.sub(c).pow(4).sum(), {
      eps: 0.05,
      stepSize: 0.01,
      steps: 5,
      randomStart: true,
      seed,
      optimizer: 'momentum',
      ...o,
    });
    const out = values(r.adv);
    for (const t of [x, c, r.adv]) t.dispose();
    return out;
  };

  test('the same seed gives bit-identical results', () => {
    assert.deepEqual(run(123), run(123));
    assert.deepEqual(
      run(123, { norm: 'l2', eps: 0.5, optimizer: 'adam' }),
      run(123, { norm: 'l2', eps: 0.5, optimizer: 'adam' }),
    );
  });

  test('different seeds give different results', () => {
    const a = run(1),
      b = run(2);
    let diff = 0;
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) diff++;
    assert.ok(diff > a.length / 2, `only ${diff} of ${a.length} values differ`);
  });

  test('a generator works like a seed, and does not touch the global generator', () => {
    const x = image();
    const a = pgd(x, (xa) => xa.sum(), { eps: 0.05, stepSize: 0.01, steps: 0, randomStart: true, seed: 5 });
    const b = pgd(x, (xa) => xa.sum(), {
      eps: 0.05,
      stepSize: 0.01,
      steps: 0,
      randomStart: true,
      generator: new Generator({ seed: 5 }),
    });
    assert.deepEqual(values(a.adv), values(b.adv));
    for (const t of [x, a.adv, b.adv]) t.dispose();
  });
});

describe('bad options', () => {
  const x = image();
  const ok: PgdOptions = { eps: 0.1, stepSize: 0.01, steps: 3 };
  const cases: [string, Partial<PgdOptions> | Record<string, unknown>, RegExp][] = [
    ['eps negative', { eps: -1 }, /eps.*-1 of type number/],
    ['eps NaN', { eps: NaN }, /eps/],
    ['eps missing', { eps: undefined }, /eps.*undefined/],
    ['stepSize infinite', { stepSize: Infinity }, /stepSize/],
    ['steps fractional', { steps: 1.5 }, /steps.*1\.5/],
    ['steps negative', { steps: -2 }, /steps/],
    ['norm', { norm: 'l3' }, /norm.*'linf' or 'l2'.*l3/],
    ['schedule', { schedule: 'cosine' }, /schedule.*cosine/],
    ['optimizer', { optimizer: 'sgd' }, /optimizer.*sgd/],
    ['range', { range: [1, 0] }, /range/],
    ['momentum', { momentum: -0.5 }, /momentum/],
    ['adam.beta1', { adam: { beta1: 1 } }, /adam\.beta1/],
    ['adam.eps', { adam: { eps: 0 } }, /adam\.eps/],
    ['targetLoss', { targetLoss: NaN }, /targetLoss/],
    ['seed', { seed: -1 }, /seed/],
    ['onStep', { onStep: 'yes' }, /onStep/],
  ];
  for (const [name, patch, re] of cases) {
    test(`${name} → ArgumentError naming the option`, () => {
      const o = { ...ok, ...patch } as PgdOptions;
      assert.throws(
        () => checkPgdOptions(o),
        (e: unknown) => e instanceof ArgumentError && e.code === 'E_ARGUMENT' && re.test(e.message),
      );
      assert.throws(() => pgd(x, (xa) => xa.sum(), o), ArgumentError);
    });
  }

  test('a mask that does not broadcast to the image, and a start noise of another shape', () => {
    using mask = zeros([1, 1, 4, 4]);
    assert.throws(
      () => pgd(x, (xa) => xa.sum(), { ...ok, mask }),
      (e: unknown) => e instanceof ArgumentError && /mask.*\[1, 3, 8, 8\].*\[1, 1, 4, 4\]/.test(e.message),
    );
    using noise = zeros([1, 3, 8, 9]);
    assert.throws(() => pgd(x, (xa) => xa.sum(), { ...ok, startNoise: noise }), /startNoise/);
  });

  test('a non-scalar loss is a clear error', () => {
    assert.throws(() => pgd(x, (xa) => xa.mul(2), ok), /must be a scalar but has shape \[1, 3, 8, 8\]/);
  });
});

describe('memory', () => {
  test('no tensor leaks across 50 steps (every optimiser, L∞ and L2, mask, random start)', () => {
    const x = image(3, [1, 3, 16, 16]);
    const mask = noGrad(() => ones([1, 1, 16, 16]));
    const w = noGrad(() => randn([4, 3, 4, 4], { generator: new Generator({ seed: 2 }) }));
    const enc = (xa: Tensor): Tensor => F.conv2d(xa, w, null, { stride: 4 }).square().mean();
    // Warm-up: lazily created native state (autograd engine threads, op handles) is not a leak.
    pgd(x, enc, { eps: 0.1, stepSize: 0.01, steps: 2 }).adv.dispose();
    gc?.();
    const before = liveTensors();
    for (const optimizer of ['sign', 'momentum', 'adam'] as const) {
      for (const norm of ['linf', 'l2'] as const) {
        const r = pgd(x, enc, {
          eps: 0.1,
          stepSize: 0.01,
          steps: 50,
          optimizer,
          norm,
          mask,
          randomStart: true,
          seed: 1,
          targetLoss: -1,
        });
        assert.equal(r.stepsTaken, 50);
        assert.equal(liveTensors(), before + 1, `${optimizer}/${norm}: only the result is alive`);
        r.adv.dispose();
      }
    }
    assert.equal(liveTensors(), before);
    for (const t of [x, mask, w]) t.dispose();
  });

  test('pgdWithGradient: the caller-owned gradient is freed every step', () => {
    const x = image();
    gc?.();
    const before = liveTensors();
    const r = pgdWithGradient(x, (xa) => ({ loss: 1, grad: noGrad(() => xa.mul(0).add(1)) }), {
      eps: 0.1,
      stepSize: 0.01,
      steps: 50,
      optimizer: 'momentum',
    });
    assert.equal(r.stepsTaken, 50);
    assert.equal(liveTensors(), before + 1);
    r.adv.dispose();
    x.dispose();
  });
});

test('tensor() input of float64 keeps its dtype through the attack', () => {
  const x = tensor(
    Float64Array.from({ length: 12 }, (_, i) => i / 12),
    [1, 3, 2, 2],
  );
  const r = pgd(x, (xa) => xa.sum(), { eps: 0.1, stepSize: 0.01, steps: 2 });
  assert.equal(r.adv.dtype, 'float64');
  r.adv.dispose();
  x.dispose();
});
