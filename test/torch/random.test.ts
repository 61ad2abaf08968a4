// Randomness: seeding, explicit generators, state save/replay, and the ranges of rand/randint.
// (Bit-exact parity with PyTorch is the golden `rng` case's job, not this file's.)
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ImmunizeError } from '../../src/errors.js';
import {
  Generator,
  manualSeed,
  rand,
  randint,
  randn,
  randLike,
  randnLike,
  zeros,
  type Tensor,
} from '../../src/torch/index.js';

const values = (t: Tensor): number[] => t.toArray();

function firstDifference(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) if (!Object.is(a[i], b[i])) return i;
  return -1;
}

function assertSame(a: readonly number[], b: readonly number[], what: string): void {
  const i = firstDifference(a, b);
  if (i >= 0) assert.fail(`${what}: differ at index ${i}: ${a[i]} vs ${b[i]}`);
}

describe('manualSeed', () => {
  test('the same seed gives the same values, for randn, rand and randint', () => {
    manualSeed(123);
    const a = [values(randn([50])), values(rand([7, 3])), values(randint(0, 1000, [20]))];
    manualSeed(123);
    const b = [values(randn([50])), values(rand([7, 3])), values(randint(0, 1000, [20]))];
    assertSame(a[0]!, b[0]!, 'randn after the same seed');
    assertSame(a[1]!, b[1]!, 'rand after the same seed');
    assertSame(a[2]!, b[2]!, 'randint after the same seed');
  });

  test('different seeds give different values; consecutive draws differ', () => {
    manualSeed(1);
    const a = values(randn([32]));
    const a2 = values(randn([32]));
    manualSeed(2);
    const b = values(randn([32]));
    assert.ok(firstDifference(a, b) >= 0, 'seeds 1 and 2 gave identical randn values');
    assert.ok(a.filter((v, i) => v === b[i]).length < 2, 'seeds 1 and 2 should share (almost) no values');
    assert.ok(firstDifference(a, a2) >= 0, 'two consecutive draws must differ');
  });

  test('bigint seeds and large seeds; bad seeds are ArgumentErrors', () => {
    manualSeed(2n ** 63n + 5n);
    const a = values(randn([8]));
    manualSeed(2n ** 63n + 5n);
    assertSame(a, values(randn([8])), 'bigint seed');
    manualSeed(Number.MAX_SAFE_INTEGER);
    const c = values(randn([8]));
    manualSeed(BigInt(Number.MAX_SAFE_INTEGER));
    assertSame(c, values(randn([8])), 'number and bigint forms of the same seed agree');
    for (const bad of [1.5, NaN, '3', -0.5, Number.MAX_SAFE_INTEGER + 2]) {
      assert.throws(
        () => manualSeed(bad as number),
        (e: unknown) => e instanceof ImmunizeError && e.code === 'E_ARGUMENT' && /seed/.test(e.message),
        `seed ${String(bad)}`,
      );
    }
  });

  test('randnLike / randLike follow the global generator and keep shape and dtype', () => {
    const like = zeros([3, 4], { dtype: 'float64' });
    manualSeed(5);
    const a = randnLike(like);
    const r = randLike(like);
    assert.deepEqual(a.shape, [3, 4]);
    assert.equal(a.dtype, 'float64');
    assert.equal(r.dtype, 'float64');
    manualSeed(5);
    assertSame(values(a), values(randn([3, 4], { dtype: 'float64' })), 'randnLike equals randn of the same shape');
  });
});

describe('Generator', () => {
  test('Generator({seed}) draws the same stream as manualSeed(seed) does globally', () => {
    const g = new Generator({ seed: 77 });
    assert.equal(g.device, 'cpu');
    assert.equal(g.initialSeed(), 77n);
    const fromGen = values(randn([16], { generator: g }));
    manualSeed(77);
    assertSame(fromGen, values(randn([16])), 'generator stream vs global stream with the same seed');
  });

  test('a generator stream is independent of the global one (in both directions)', () => {
    manualSeed(10);
    const globalOnly = values(randn([12]));
    const g = new Generator({ seed: 20 });
    const genOnly: number[] = [];
    for (let i = 0; i < 4; i++) genOnly.push(...values(randn([3], { generator: g })));

    // interleave: draws from g must not move the global stream, and vice versa
    manualSeed(10);
    const g2 = new Generator({ seed: 20 });
    const parts: number[] = [];
    const gparts: number[] = [];
    for (let i = 0; i < 4; i++) {
      gparts.push(...values(randn([3], { generator: g2 })));
      parts.push(...values(randn([3])));
    }
    assertSame(gparts, genOnly, 'generator draws with global draws in between');
    assertSame(parts, globalOnly, 'global draws with generator draws in between');
    // reseeding the global generator does not touch g2
    // (same draw sizes: libtorch's randn takes a vectorised path from 16 elements, so one draw of
    // 24 is not the concatenation of smaller draws)
    const fresh = new Generator({ seed: 20 });
    for (let i = 0; i < 4; i++) randn([3], { generator: fresh });
    const next = values(randn([12], { generator: fresh }));
    manualSeed(12345);
    assertSame(values(randn([12], { generator: g2 })), next, 'generator continues after a global reseed');
    const g3 = new Generator({ seed: 20 });
    randn([100], { generator: new Generator({ seed: 21 }) });
    assertSame(values(randn([12], { generator: g3 })), genOnly, 'another generator does not disturb this one');
  });

  test('two generators with the same seed give the same values; manualSeed on a generator resets it', () => {
    const a = new Generator({ seed: 3 });
    const b = new Generator({ seed: 3 });
    assertSame(values(rand([10], { generator: a })), values(rand([10], { generator: b })), 'same-seed generators');
    const first = values(randint(-5, 5, [10], { generator: a }));
    a.manualSeed(3);
    randint(-5, 5, [10], { generator: b }); // b advances
    rand([10], { generator: a });
    assertSame(values(randint(-5, 5, [10], { generator: a })), first, 'after generator.manualSeed the stream restarts');
    assert.equal(a.manualSeed(4), a, 'manualSeed returns the generator');
    assert.equal(a.initialSeed(), 4n);
  });

  test('getState/setState replays a stream exactly', () => {
    const g = new Generator({ seed: 2024 });
    randn([5], { generator: g });
    const state = g.getState();
    assert.equal(state.dtype, 'uint8', 'state is a byte tensor');
    assert.ok(state.numel > 100, `state has ${state.numel} bytes`);
    const a = [
      values(randn([20], { generator: g })),
      values(rand([5], { generator: g })),
      values(randint(0, 7, [9], { generator: g })),
    ];
    g.setState(state);
    const b = [
      values(randn([20], { generator: g })),
      values(rand([5], { generator: g })),
      values(randint(0, 7, [9], { generator: g })),
    ];
    a.forEach((v, i) => assertSame(v, b[i]!, `replay part ${i}`));
    // a state moves between generators
    const other = new Generator({ seed: 1 });
    other.setState(state);
    assertSame(values(randn([20], { generator: other })), a[0]!, 'state copied into another generator');
    // the default generator's state too
    const def = Generator.default();
    manualSeed(8);
    const s = def.getState();
    const x = values(randn([6]));
    def.setState(s);
    assertSame(values(randn([6])), x, 'default generator replay');
    // (a plain Error with code E_TORCH: random.ts calls native directly without torchError())
    const isStateErr =
      (re: RegExp) =>
      (e: unknown): boolean =>
        e instanceof Error && (e as { code?: string }).code === 'E_TORCH' && re.test(e.message);
    assert.throws(
      () => g.setState(zeros([3], { dtype: 'uint8' })),
      isStateErr(/size to be 3/),
      'a state of the wrong size is rejected',
    );
    assert.throws(
      () => g.setState(zeros([state.numel], { dtype: 'float32' })),
      isStateErr(/ByteTensor/),
      'a state of the wrong dtype is rejected',
    );
    const after = values(randn([20], { generator: other }));
    assert.equal(after.length, 20, 'the generator still works after a rejected state');
  });
});

describe('ranges and dtypes', () => {
  test('rand is in [0, 1) and roughly uniform', () => {
    manualSeed(11);
    const v = values(rand([20_000]));
    const bad = v.findIndex((x) => !(x >= 0 && x < 1));
    assert.equal(bad, -1, `rand value out of [0, 1) at index ${bad}: ${v[bad]}`);
    const mean = v.reduce((a, b) => a + b, 0) / v.length;
    assert.ok(Math.abs(mean - 0.5) < 0.01, `mean of 20000 uniform draws is ${mean}`);
    const lowQuarter = v.filter((x) => x < 0.25).length / v.length;
    assert.ok(Math.abs(lowQuarter - 0.25) < 0.015, `fraction below 0.25 is ${lowQuarter}`);
    assert.equal(rand([2]).dtype, 'float32');
    assert.equal(rand([2], { dtype: 'float64' }).dtype, 'float64');
    const d = values(rand([5000], { dtype: 'float64' }));
    assert.equal(
      d.findIndex((x) => !(x >= 0 && x < 1)),
      -1,
      'float64 rand in [0, 1)',
    );
  });

  test('randn has mean ~0 and variance ~1', () => {
    manualSeed(12);
    const v = values(randn([20_000], { dtype: 'float64' }));
    const mean = v.reduce((a, b) => a + b, 0) / v.length;
    const variance = v.reduce((a, b) => a + (b - mean) ** 2, 0) / (v.length - 1);
    assert.ok(Math.abs(mean) < 0.03, `randn mean ${mean}`);
    assert.ok(Math.abs(variance - 1) < 0.04, `randn variance ${variance}`);
  });

  test('randint stays in [low, high), hits both ends, and is int64 unless told', () => {
    manualSeed(13);
    const t = randint(-3, 4, [5000]);
    assert.equal(t.dtype, 'int64');
    assert.deepEqual(t.shape, [5000]);
    const v = values(t);
    const bad = v.findIndex((x) => !(Number.isInteger(x) && x >= -3 && x < 4));
    assert.equal(bad, -1, `randint value out of [-3, 4) at index ${bad}: ${v[bad]}`);
    for (let k = -3; k < 4; k++) assert.ok(v.includes(k), `value ${k} never drawn in 5000 draws`);
    assert.ok(!v.includes(4), 'high is exclusive');
    const i32 = randint(0, 2, [100], { dtype: 'int32' });
    assert.equal(i32.dtype, 'int32');
    assert.ok(values(i32).every((x) => x === 0 || x === 1));
    const u8 = randint(0, 256, [1000], { dtype: 'uint8' });
    assert.ok(values(u8).every((x) => x >= 0 && x <= 255));
    const big = values(randint(2 ** 40, 2 ** 40 + 3, [50]));
    assert.ok(
      big.every((x) => x >= 2 ** 40 && x < 2 ** 40 + 3),
      'large bounds',
    );
    assert.throws(
      () => randint(5, 5, [3]),
      (e: unknown) => e instanceof ImmunizeError && e.code === 'E_ARGUMENT' && /low=5, high=5/.test(e.message),
    );
    assert.throws(
      () => randint(0, 1.5, [3]),
      (e: unknown) => e instanceof ImmunizeError && e.code === 'E_ARGUMENT',
    );
  });

  test('requiresGrad creation option on random tensors', () => {
    const t = randn([2], { requiresGrad: true });
    assert.equal(t.requiresGrad, true);
    assert.equal(t.isLeaf, true);
  });
});
