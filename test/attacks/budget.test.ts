// Per-pixel budgets: PGD's epsMap (projection, random start and step follow the map) and the
// texture-adaptive map that builds one (src/attacks/budget.ts).
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { textureBudget } from '../../src/attacks/budget.js';
import { immunize } from '../../src/attacks/immunize.js';
import { pgd, type PgdOptions } from '../../src/attacks/pgd.js';
import { ArgumentError } from '../../src/errors.js';
import { robustEot } from '../../src/robustness/robust.js';
import {
  F,
  Generator,
  cat,
  full,
  liveTensors,
  noGrad,
  ones,
  rand,
  randn,
  scope,
  zeros,
  type Tensor,
} from '../../src/torch/index.js';

const gc = (globalThis as { gc?: () => void }).gc;
const seeded = (shape: number[], seed: number): Tensor =>
  noGrad(() => rand(shape, { generator: new Generator({ seed }) }));
/** ‖x − c‖² towards a target far outside any budget: every pixel wants to move its whole bound. */
const pushTo = (c: Tensor) => (xa: Tensor) => xa.sub(c).square().sum();
const item = (f: () => Tensor): number => noGrad(() => scope(() => f().item()));

/** A map in [lo, hi] varying over pixels, [1, 1, H, W]. */
function varyingMap(h: number, w: number, lo: number, hi: number, seed = 5): Tensor {
  return noGrad(() =>
    scope(() =>
      seeded([1, 1, h, w], seed)
        .mul(hi - lo)
        .add(lo),
    ),
  );
}

describe('PGD with a per-pixel budget (epsMap)', () => {
  test('projection is exact: never above the map anywhere, and the map is reached where the loss pushes', () => {
    // Mid-grey photo so the [0, 1] clamp never bites: every pixel can use its whole bound.
    const x = noGrad(() => full([1, 3, 12, 12], 0.5));
    const map = varyingMap(12, 12, 1 / 255, 12 / 255);
    const far = noGrad(() => scope(() => seeded([1, 3, 12, 12], 9).gt(0.5).to('float32').mul(4).sub(2)));
    const r = pgd(x, pushTo(far), {
      eps: 12 / 255,
      epsMap: map,
      stepSize: 1 / 255,
      steps: 30,
      randomStart: true,
      seed: 1,
    });
    // |δ| ≤ map pixel by pixel (float32 rounding of x + δ − x allows one ulp of 0.5).
    const over = item(() => r.adv.sub(x).abs().sub(map).max());
    assert.ok(over <= 1e-7, `δ exceeds the map by ${over}`);
    // After 30 steps of up to 12/255 × share, every pixel sits on its bound: |δ| = map.
    const slack = item(() => map.sub(r.adv.sub(x).abs()).max());
    assert.ok(slack <= 1e-6, `a pixel is ${slack} inside its bound`);
    for (const t of [x, map, far, r.adv]) t.dispose();
  });

  test('the random start and every step stay within the map; pixels with a zero bound never move', () => {
    const x = seeded([1, 3, 10, 10], 2);
    const map = noGrad(() => scope(() => cat([zeros([1, 1, 10, 5]), full([1, 1, 10, 5], 6 / 255)], 3)));
    const far = noGrad(() => full([1, 3, 10, 10], 3));
    const seen: number[] = [];
    const r = pgd(x, pushTo(far), {
      eps: 6 / 255,
      epsMap: map,
      stepSize: 2 / 255,
      steps: 3,
      randomStart: true,
      seed: 4,
      onStep: () => void seen.push(1),
    });
    assert.equal(seen.length, 3);
    const left = item(() => r.adv.sub(x).narrow(3, 0, 5).abs().max());
    assert.equal(left, 0, 'zero budget: unchanged');
    const right = item(() => r.adv.sub(x).narrow(3, 5, 5).abs().max());
    assert.ok(right > 0 && right <= 6 / 255 + 1e-7, `right half moved ${right * 255}/255`);
    // The random start alone (0 steps): within the map too.
    const start = pgd(x, pushTo(far), { eps: 6 / 255, epsMap: map, stepSize: 0, steps: 0, randomStart: true, seed: 4 });
    assert.equal(
      item(() => start.adv.sub(x).narrow(3, 0, 5).abs().max()),
      0,
    );
    for (const t of [x, map, far, r.adv, start.adv]) t.dispose();
  });

  test('steps scale with the map: a pixel with half the bound moves half as far per step', () => {
    const x = noGrad(() => full([1, 1, 2, 2], 0.5));
    const map = noGrad(() => scope(() => cat([full([1, 1, 2, 1], 8 / 255), full([1, 1, 2, 1], 4 / 255)], 3)));
    const far = noGrad(() => full([1, 1, 2, 2], 2));
    // One sign step of 2/255 without random start: 2/255 where the bound is eps, 1/255 where it is half.
    const r = pgd(x, pushTo(far), { eps: 8 / 255, epsMap: map, stepSize: 2 / 255, steps: 1 });
    const d = noGrad(() => scope(() => Array.from(r.adv.sub(x).mul(255).toTypedArray() as Float32Array)));
    assert.deepEqual(
      d.map((v) => Math.round(v * 1000) / 1000),
      [2, 1, 2, 1],
    );
    for (const t of [x, map, far, r.adv]) t.dispose();
  });

  test('a constant map equal to ε is the scalar attack, byte for byte', () => {
    const x = seeded([1, 3, 8, 8], 1);
    const w = noGrad(() => randn([4, 3, 4, 4], { generator: new Generator({ seed: 2 }) }));
    const enc = (xa: Tensor): Tensor => F.conv2d(xa, w, null, { stride: 4 }).square().mean();
    const map = noGrad(() => full([1, 1, 8, 8], 8 / 255));
    for (const optimizer of ['sign', 'momentum'] as const) {
      const a = pgd(x, enc, { eps: 8 / 255, stepSize: 1 / 255, steps: 10, optimizer });
      const b = pgd(x, enc, { eps: 8 / 255, epsMap: map, stepSize: 1 / 255, steps: 10, optimizer });
      assert.deepEqual(b.adv.toTypedArray(), a.adv.toTypedArray(), optimizer);
      a.adv.dispose();
      b.adv.dispose();
    }
    for (const t of [x, w, map]) t.dispose();
  });

  test('with a mask: zero outside the mask, within the map inside it; with EOT too', () => {
    const x = noGrad(() => full([1, 3, 8, 8], 0.5));
    const mask = noGrad(() => scope(() => cat([ones([1, 1, 8, 4]), zeros([1, 1, 8, 4])], 3)));
    const map = varyingMap(8, 8, 2 / 255, 10 / 255);
    const far = noGrad(() => full([1, 3, 8, 8], 3));
    // A differentiable "transform": a small blur, as robust immunization averages over.
    const k = noGrad(() => full([3, 1, 3, 3], 1 / 9));
    const blur = (t: Tensor): Tensor => F.conv2d(t, k, null, { padding: 1, groups: 3 });
    for (const eot of [undefined, { transform: blur, samples: 2 }]) {
      const r = pgd(x, pushTo(far), {
        eps: 10 / 255,
        epsMap: map,
        mask,
        stepSize: 2 / 255,
        steps: 8,
        randomStart: true,
        seed: 3,
        ...(eot ? { eot } : {}),
      });
      assert.equal(
        item(() => r.adv.sub(x).narrow(3, 4, 4).abs().max()),
        0,
        'outside the mask',
      );
      const inside = item(() => r.adv.sub(x).abs().sub(map).narrow(3, 0, 4).max());
      assert.ok(inside <= 1e-7, `inside the mask, above the map by ${inside}`);
      assert.ok(item(() => r.adv.sub(x).narrow(3, 0, 4).abs().min()) > 0, 'inside the mask it moved');
      r.adv.dispose();
    }
    for (const t of [x, mask, map, far, k]) t.dispose();
  });

  test('bad maps are refused, naming the problem', () => {
    const x = seeded([1, 3, 4, 4], 1);
    const loss = (t: Tensor): Tensor => t.sum();
    const base = { eps: 4 / 255, stepSize: 1 / 255, steps: 1 };
    const cases: [Tensor, RegExp, object?][] = [
      [noGrad(() => full([1, 1, 4, 5], 1 / 255)), /epsMap to broadcast to the image \[1, 3, 4, 4\]/],
      [noGrad(() => full([1, 1, 4, 4], 8 / 255)), /epsMap's values to lie in \[0, eps/],
      [noGrad(() => full([1, 1, 4, 4], -1 / 255)), /epsMap's values to lie in \[0, eps/],
      [noGrad(() => full([1, 1, 4, 4], NaN)), /epsMap's values to lie in \[0, eps/],
      [
        noGrad(() => full([1, 1, 4, 4], 1 / 255)),
        /per-pixel L∞ budget; it does not apply to norm 'l2'/,
        { norm: 'l2' },
      ],
    ];
    for (const [map, re, more] of cases) {
      assert.throws(
        () => pgd(x, loss, { ...base, ...more, epsMap: map }),
        (e: unknown) => e instanceof ArgumentError && re.test((e as Error).message),
      );
      map.dispose();
    }
    x.dispose();
  });

  test('no tensor leaks across steps with a map (sign, momentum, adam; random start; mask)', () => {
    const x = seeded([1, 3, 8, 8], 3);
    const map = varyingMap(8, 8, 1 / 255, 8 / 255);
    const mask = noGrad(() => ones([1, 1, 8, 8]));
    const enc = (xa: Tensor): Tensor => xa.square().mean();
    pgd(x, enc, { eps: 8 / 255, epsMap: map, stepSize: 0.01, steps: 2 }).adv.dispose();
    gc?.();
    const before = liveTensors();
    for (const optimizer of ['sign', 'momentum', 'adam'] as const) {
      const r = pgd(x, enc, {
        eps: 8 / 255,
        epsMap: map,
        mask,
        stepSize: 0.01,
        steps: 20,
        optimizer,
        randomStart: true,
        seed: 1,
      });
      assert.equal(liveTensors(), before + 1, `${optimizer}: only the result is alive`);
      r.adv.dispose();
    }
    assert.equal(liveTensors(), before);
    for (const t of [x, map, mask]) t.dispose();
  });
});

describe('textureBudget', () => {
  test('textured regions get more budget than flat ones; the mean bound is eps; floor and cap clip the share', () => {
    // Left half: noise (texture); right half: a flat grey.
    const x = noGrad(() => scope(() => cat([seeded([1, 3, 16, 8], 1), full([1, 3, 16, 8], 0.4)], 3)));
    const eps = 6 / 255;
    const { map, maxEps } = textureBudget(x, { eps });
    assert.deepEqual(map.shape, [1, 3, 16, 16], 'a map per channel by default');
    assert.equal(
      maxEps,
      item(() => map.max()),
    );
    assert.ok(Math.abs(item(() => map.mean()) - eps) < 1e-6 * eps, `mean ${item(() => map.mean()) * 255}/255`);
    // Far from the boundary (the window is 11 wide, σ 1.5): texture above eps, flat far below (σ₀ only).
    const textured = item(() => map.narrow(3, 0, 3).mean());
    const flat = item(() => map.narrow(3, 13, 3).max());
    assert.ok(textured > eps, `textured ${textured * 255}/255`);
    assert.ok(flat < 0.2 * eps, `flat ${flat * 255}/255`);
    map.dispose();
    const clipped = textureBudget(x, { eps, floor: 0.25, cap: 1.5 });
    const [lo, hi] = [item(() => clipped.map.min()), clipped.maxEps];
    assert.ok(
      Math.abs(lo - 0.25 * eps) < 1e-6 * eps && Math.abs(hi - 1.5 * eps) < 1e-6 * eps,
      `[${lo * 255}, ${hi * 255}]/255`,
    );
    for (const t of [x, clipped.map]) t.dispose();
  });

  test("the bound follows the local contrast √(σ² + σ₀²) in SSIM's window, to the power asked", () => {
    // The same noise pattern at two amplitudes, side by side: where the windows see only one
    // half, σ on the right is exactly twice σ on the left.
    const n = seeded([1, 3, 16, 16], 4);
    const x = noGrad(() => scope(() => cat([n.mul(0.2).add(0.3), n.mul(0.4).add(0.3)], 3)));
    const inner = (m: Tensor, left: number): Tensor => m.narrow(2, 5, 6).narrow(3, left + 5, 6);
    for (const [power, ratio] of [
      [1, 2],
      [2, 4],
    ] as const) {
      const { map } = textureBudget(x, { eps: 4 / 255, sigma0: 0, power });
      const r = item(() => inner(map, 16).div(inner(map, 0)).sub(ratio).abs().max());
      assert.ok(r < 1e-3, `power ${power}: right/left off ${ratio} by ${r}`); // float32 E[x²] − E[x]²
      map.dispose();
    }
    for (const t of [n, x]) t.dispose();
  });

  test('luminance: one map for the three channels; rgb: larger in the channel that carries the texture; σ₀ evens it out', () => {
    // Texture in the red channel only; green and blue flat.
    const x = noGrad(() => scope(() => cat([seeded([1, 1, 12, 12], 2), full([1, 2, 12, 12], 0.5)], 1)));
    const lum = textureBudget(x, { eps: 4 / 255, channels: 'luminance' });
    assert.deepEqual(lum.map.shape, [1, 1, 12, 12]);
    lum.map.dispose();
    const { map } = textureBudget(x, { eps: 4 / 255 });
    const red = item(() => map.narrow(1, 0, 1).min());
    const green = item(() => map.narrow(1, 1, 1).max());
    assert.ok(red > green, `red ${red * 255}/255 vs green ${green * 255}/255`);
    map.dispose();
    // A σ₀ far above the photo's contrast: every pixel close to eps.
    const even = textureBudget(x, { eps: 4 / 255, sigma0: 10 });
    const spread = item(() => even.map.max().sub(even.map.min()));
    assert.ok(spread < 0.01 * (4 / 255), `spread ${spread * 255}/255`);
    even.map.dispose();
    x.dispose();
  });

  test('a photo without contrast gets eps everywhere (with or without σ₀); the options are checked', () => {
    const x = noGrad(() => full([1, 3, 8, 8], 0.3));
    for (const sigma0 of [0, 0.02]) {
      const { map } = textureBudget(x, { eps: 4 / 255, window: 3, sigma0 });
      assert.ok(
        item(() =>
          map
            .sub(4 / 255)
            .abs()
            .max(),
        ) < 1e-7,
        `σ₀ ${sigma0}`,
      );
      map.dispose();
    }
    assert.throws(() => textureBudget(x, { eps: -1 }), /eps to be a non-negative number/);
    assert.throws(() => textureBudget(x, { eps: 0.01, window: 4 }), /window to be an odd positive integer/);
    assert.throws(() => textureBudget(x, { eps: 0.01, windowSigma: 0 }), /windowSigma to be positive/);
    assert.throws(() => textureBudget(x, { eps: 0.01, power: NaN }), /power to be a non-negative number/);
    assert.throws(() => textureBudget(x, { eps: 0.01, floor: 2, cap: 1 }), /0 ≤ floor ≤ cap/);
    assert.throws(() => textureBudget(x, { eps: 0.01, window: 17 }), /contrast window \(17\) must be smaller/);
    assert.throws(() => textureBudget(x, { eps: 0.01, sigma0: -1 }), /sigma0 to be a non-negative number/);
    assert.throws(
      () => textureBudget(x, { eps: 0.01, channels: 'yuv' as 'rgb' }),
      /channels to be 'luminance' or 'rgb'/,
    );
    const gray = noGrad(() => full([1, 1, 8, 8], 0.3));
    assert.throws(() => textureBudget(gray, { eps: 0.01 }), /RGB batch \[N, 3, H, W\]/);
    for (const t of [x, gray]) t.dispose();
  });
});

describe('per-pixel budgets through immunize(): the encoder attack with --robust jpeg and masks', () => {
  // One strided convolution as the encoder; a 32² photo (JPEG's 16-pixel blocks with 4:2:0 chroma).
  const w = noGrad(() => randn([4, 3, 4, 4], { generator: new Generator({ seed: 7 }) }).mul(0.2));
  const encoder = { name: 'conv', encode01: (t: Tensor): Tensor => F.conv2d(t, w, null, { stride: 4 }) };
  const x = noGrad(() => scope(() => seeded([1, 3, 32, 32], 11).mul(0.8).add(0.1)));
  const mask = noGrad(() => scope(() => cat([ones([1, 1, 32, 16]), zeros([1, 1, 32, 16])], 3)));
  const attack = (pgdOptions: Omit<PgdOptions, 'mask' | 'onStep'>, m: Tensor | null = mask): Tensor =>
    immunize(x, { method: 'encoder', encoder, mask: m, pgd: pgdOptions }).adv;
  const base = { steps: 6, optimizer: 'momentum', schedule: 'linear-decay', randomStart: true, seed: 2 } as const;
  after(() => {
    for (const t of [w, x, mask]) t.dispose();
  });

  test('robust jpeg and a mask: |δ| never above the texture map, zero outside the mask, and the map is used', () => {
    const { map, maxEps } = textureBudget(x, { eps: 4 / 255 });
    const eot = robustEot('jpeg', 2);
    const adv = attack({ ...base, eps: maxEps, epsMap: map, stepSize: maxEps / 4, eot });
    const over = item(() => adv.sub(x).abs().sub(map).narrow(3, 0, 16).max());
    assert.ok(over <= 1e-7, `inside the mask, δ exceeds the map by ${over}`);
    assert.equal(
      item(() => adv.sub(x).narrow(3, 16, 16).abs().max()),
      0,
      'outside the mask the photo is unchanged',
    );
    // The map bounded the change where it bit: pixels with different bounds sit on them.
    const onBound = noGrad(() => scope(() => adv.sub(x).abs().sub(map).abs().lt(1e-6).narrow(3, 0, 16)));
    const bounds = noGrad(() => scope(() => map.expand([1, 3, 32, 32]).narrow(3, 0, 16).maskedSelect(onBound)));
    assert.ok(bounds.shape[0]! > 10, `only ${bounds.shape[0]} pixels on their bound`);
    assert.ok(item(() => bounds.max().sub(bounds.min())) > 1 / 255, 'every pixel on its bound had the same bound');
    onBound.dispose();
    bounds.dispose();
    // EOT ran: the same attack without it gives another image.
    const plain = attack({ ...base, eps: maxEps, epsMap: map, stepSize: maxEps / 4 });
    assert.ok(!item(() => plain.eq(adv).all().to('float32')), 'the jpeg EOT changed nothing');
    for (const t of [map, adv, plain]) t.dispose();
  });

  test('a constant map equal to ε is the scalar attack byte for byte, with robust jpeg and a mask', () => {
    const eps = 6 / 255;
    const map = noGrad(() => full([1, 1, 32, 32], eps));
    for (const m of [mask, null]) {
      const o = { ...base, eps, stepSize: eps / 8, eot: robustEot('jpeg', 2) };
      const scalar = attack(o, m);
      const mapped = attack({ ...o, epsMap: map }, m);
      assert.deepEqual(mapped.toTypedArray(), scalar.toTypedArray(), m ? 'masked' : 'whole photo');
      scalar.dispose();
      mapped.dispose();
    }
    map.dispose();
  });
});
