// The encoder attack (src/attacks/encoder.ts) on tiny random models: targets, one encoder and an
// ensemble with normalised losses, budgets and masks as the CLI uses them.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ArgumentError } from '../../src/errors.js';
import { asEncoder, encoderAttack, targetLatent, tinyEncoder, type ImageEncoder } from '../../src/attacks/encoder.js';
import { AutoencoderTiny } from '../../src/models/autoencoder-tiny.js';
import { F, Generator, full, liveTensors, noGrad, rand, randn, scope, type Tensor } from '../../src/torch/index.js';
import { tinyTaesd } from '../helpers/tiny-taesd.js';

const gc = (globalThis as { gc?: () => void }).gc;

/** One strided convolution as an ImageEncoder, its output scaled by `gain`. */
function convEncoder(seed: number, gain = 1): ImageEncoder & { dispose(): void } {
  const w = noGrad(() => scope(() => randn([4, 3, 4, 4], { generator: new Generator({ seed }) }).mul(0.2 * gain)));
  return {
    name: `conv${seed}x${gain}`,
    encode01: (x) => F.conv2d(x, w, null, { stride: 4 }),
    dispose: () => w.dispose(),
  };
}

function photo(seed = 1): Tensor {
  return noGrad(() => rand([1, 3, 32, 32], { generator: new Generator({ seed }) }));
}

describe('targets (targetLatent)', () => {
  const enc = convEncoder(1);
  const x = photo();
  after(() => {
    enc.dispose();
    x.dispose();
  });

  test("gray is the latent of the 0.5 image (photoguard's zeros on [-1, 1])", () => {
    const z = targetLatent(enc, x, 'gray');
    const ref = noGrad(() => scope(() => enc.encode01(full(x.shape, 0.5))));
    assert.deepEqual(z.shape, [1, 4, 8, 8]);
    assert.deepEqual(z.toTypedArray(), ref.toTypedArray());
    z.dispose();
    ref.dispose();
  });

  test("zeros is the zero latent of the encoder's latent shape", () => {
    const z = targetLatent(enc, x, 'zeros');
    assert.deepEqual(z.shape, [1, 4, 8, 8]);
    assert.equal(z.abs().max().item(), 0);
    z.dispose();
  });

  test('an image target is encoded; another shape is an ArgumentError naming both', () => {
    const t = photo(2);
    const z = targetLatent(enc, x, t);
    const ref = noGrad(() => enc.encode01(t));
    assert.deepEqual(z.toTypedArray(), ref.toTypedArray());
    const small = noGrad(() => rand([1, 3, 16, 16]));
    assert.throws(
      () => targetLatent(enc, x, small),
      (e: unknown) => e instanceof ArgumentError && /\[1, 3, 16, 16\].*\[1, 3, 32, 32\]/.test(e.message),
    );
    for (const u of [t, z, ref, small]) u.dispose();
  });

  test('the attack moves the latent towards the chosen target', () => {
    for (const target of ['gray', 'zeros'] as const) {
      const zt = targetLatent(enc, x, target);
      const dist = (img: Tensor) => noGrad(() => scope(() => enc.encode01(img).sub(zt).norm().item()));
      const r = encoderAttack(enc, x, { eps: 16 / 255, stepSize: 2 / 255, steps: 20, target });
      assert.ok(dist(r.adv) < 0.8 * dist(x), `${target}: ${dist(x)} → ${dist(r.adv)}`);
      assert.ok(Math.abs(r.finalLoss - dist(r.adv)) < 1e-4, 'finalLoss is the loss of adv');
      zt.dispose();
      r.adv.dispose();
    }
  });
});

describe('encoderAttack', () => {
  let taesd: AutoencoderTiny;
  before(() => {
    taesd = tinyTaesd(3);
  });
  after(() => taesd.dispose());

  test('AutoencoderTiny: loss falls, budget and range hold, mask respected', () => {
    const x = photo(4);
    const mask = noGrad(() =>
      scope(() =>
        rand([1, 1, 32, 32], { generator: new Generator({ seed: 9 }) })
          .gt(0.5)
          .to('float32'),
      ),
    );
    const r = encoderAttack(taesd, x, {
      eps: 8 / 255,
      stepSize: 1 / 255,
      steps: 15,
      randomStart: true,
      seed: 0,
      mask,
      schedule: 'linear-decay',
    });
    assert.deepEqual(r.encoders, ['AutoencoderTiny']);
    assert.equal(r.losses.length, 15);
    assert.ok(r.finalLoss < r.losses[0]!, `loss ${r.losses[0]} → ${r.finalLoss}`);
    noGrad(() =>
      scope(() => {
        const d = r.adv.sub(x);
        assert.ok(d.abs().max().item() <= 8 / 255 + 1e-6);
        assert.ok(r.adv.min().item() >= 0 && r.adv.max().item() <= 1);
        assert.equal(d.mul(mask.lt(0.5).to('float32')).abs().max().item(), 0, 'no change outside the mask');
        assert.ok(d.mul(mask).abs().max().item() > 0, 'changes inside the mask');
      }),
    );
    for (const t of [x, mask, r.adv]) t.dispose();
  });

  test('asEncoder passes an ImageEncoder through and wraps models', () => {
    const e = convEncoder(5);
    assert.equal(asEncoder(e), e);
    assert.equal(asEncoder(taesd).name, 'AutoencoderTiny');
    assert.equal(tinyEncoder(taesd, 'taef2').name, 'taef2');
    e.dispose();
  });

  test('needs at least one encoder', () => {
    const x = photo();
    assert.throws(() => encoderAttack([], x, { eps: 0.1, stepSize: 0.01, steps: 1 }), ArgumentError);
    x.dispose();
  });
});

describe('ensemble of two encoders', () => {
  test("losses are normalised by each encoder's clean loss: the first loss is 2, whatever the scales", () => {
    const a = convEncoder(1),
      b = convEncoder(2, 1000); // b's latents are 1000× larger
    const x = photo(6);
    const r = encoderAttack([a, b], x, { eps: 8 / 255, stepSize: 1 / 255, steps: 10 });
    assert.deepEqual(r.encoders, ['conv1x1', 'conv2x1000']);
    assert.ok(Math.abs(r.losses[0]! - 2) < 1e-4, `first loss ${r.losses[0]}, expected 2 (1 per encoder)`);
    assert.ok(r.finalLoss < 2, `final loss ${r.finalLoss}`);
    // Both encoders improve: the large one does not drown the small one.
    for (const e of [a, b]) {
      const zt = targetLatent(e, x, 'gray');
      const dist = (img: Tensor) => noGrad(() => scope(() => e.encode01(img).sub(zt).norm().item()));
      assert.ok(dist(r.adv) < dist(x), `${e.name}: ${dist(x)} → ${dist(r.adv)}`);
      zt.dispose();
    }
    for (const t of [x, r.adv]) t.dispose();
    a.dispose();
    b.dispose();
  });

  test('no tensor leak across an ensemble attack', () => {
    const a = convEncoder(1),
      b = convEncoder(2);
    const x = photo(6);
    encoderAttack([a, b], x, { eps: 8 / 255, stepSize: 1 / 255, steps: 2 }).adv.dispose();
    gc?.();
    const n = liveTensors();
    const r = encoderAttack([a, b], x, {
      eps: 8 / 255,
      stepSize: 1 / 255,
      steps: 30,
      optimizer: 'adam',
      randomStart: true,
      seed: 1,
    });
    assert.equal(liveTensors(), n + 1);
    r.adv.dispose();
    x.dispose();
    a.dispose();
    b.dispose();
  });
});
