// The learned immunizer's δ (src/attacks/learned.ts) and its training (src/attacks/train-immunizer.ts)
// on tiny random models and generated images: the budget and the pixel range hold exactly, masks
// keep pixels untouched, the output is deterministic, a short training lowers the loss, and a run
// killed after a checkpoint resumes to exactly the weights of a run that never stopped.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { learnedImmunize } from '../../src/attacks/learned.js';
import { CropRandom, drawBatch, learningRate, trainImmunizer } from '../../src/attacks/train-immunizer.js';
import { ImmunizeError } from '../../src/errors.js';
import { ImmunizerNet } from '../../src/models/immunizer.js';
import { Generator, F, noGrad, ones, rand, scope, zeros, type Tensor } from '../../src/torch/index.js';
import { tempDir } from '../helpers/temp.js';
import { tinyTaesd } from '../helpers/tiny-taesd.js';

const EPS = 16 / 255;
const tiny = { hidden_channels: 8, num_blocks: 1, norm_groups: 0, target_model: 'tiny', eps: EPS };

function image(h: number, w: number, seed = 1): Tensor {
  return noGrad(() => rand([1, 3, h, w], { generator: new Generator({ seed }) }));
}

/** A smooth random photo-like image: low-resolution noise upsampled. */
function smooth(h: number, w: number, seed: number): Tensor {
  return noGrad(() =>
    scope(() =>
      F.interpolate(rand([1, 3, h / 8, w / 8], { generator: new Generator({ seed }) }), {
        size: [h, w],
        mode: 'bilinear',
      }),
    ),
  );
}

/** A network whose raw output is large, so tanh saturates and the budget is reached everywhere. */
function loudNet(seed: number): ImmunizerNet {
  const net = new ImmunizerNet(tiny).initRandom(seed);
  noGrad(() => {
    for (const p of net.parameters()) p.mul_(4);
  });
  return net;
}

const maxAbs = (t: Tensor) => noGrad(() => scope(() => t.abs().max().item()));

describe('learnedImmunize: δ = ε·tanh(G(x)), projected as PGD', () => {
  test('|δ| ≤ ε exactly, the result lies in [0, 1], and the budget is used', () => {
    using net = loudNet(1);
    using x = image(27, 35);
    using adv = learnedImmunize(net, x, { eps: EPS });
    using d = noGrad(() => adv.sub(x));
    assert.ok(maxAbs(d) <= EPS + 1e-7, `max |δ| ${maxAbs(d)} > ε`);
    assert.ok(maxAbs(d) > EPS * 0.9, 'a saturated G uses (nearly) all of the budget');
    assert.ok(noGrad(() => scope(() => adv.min().item() >= 0 && adv.max().item() <= 1)));
  });

  test('pixels at 0 and 1 stay inside the range (the clip to [0, 1])', () => {
    using net = loudNet(2);
    using x = noGrad(() => scope(() => image(16, 16).round()));
    using adv = learnedImmunize(net, x, { eps: EPS });
    assert.ok(noGrad(() => scope(() => adv.min().item() >= 0 && adv.max().item() <= 1)));
    assert.ok(maxAbs(noGrad(() => adv.sub(x))) > 0, 'something moved');
  });

  test('δ is zero outside the mask and non-zero inside', () => {
    using net = loudNet(3);
    using x = image(24, 24);
    using mask = zeros([1, 1, 24, 24]);
    noGrad(() => mask.narrow(3, 0, 12).fill_(1));
    using adv = learnedImmunize(net, x, { eps: EPS, mask });
    using d = noGrad(() => adv.sub(x));
    using outside = noGrad(() => d.narrow(3, 12, 12).contiguous());
    using inside = noGrad(() => d.narrow(3, 0, 12).contiguous());
    assert.equal(maxAbs(outside), 0);
    assert.ok(maxAbs(inside) > 0);
  });

  test('a per-pixel budget (epsMap) bounds δ pixel by pixel', () => {
    using net = loudNet(4);
    using x = image(16, 16);
    using map = noGrad(() => scope(() => ones([1, 1, 16, 16]).mul(EPS / 4)));
    using adv = learnedImmunize(net, x, { eps: EPS, epsMap: map });
    assert.ok(maxAbs(noGrad(() => adv.sub(x))) <= EPS / 4 + 1e-7);
  });

  test('deterministic: the same input gives bit-identical output', () => {
    using net = new ImmunizerNet(tiny).initRandom(5);
    using x = image(19, 23);
    using a = learnedImmunize(net, x, { eps: EPS });
    using b = learnedImmunize(net, x, { eps: EPS });
    assert.ok(a.equal(b));
  });

  test('ε outside [0, 1] is refused with a clear error', () => {
    using net = new ImmunizerNet(tiny).initRandom(5);
    using x = image(8, 8);
    for (const eps of [-0.1, 1.5, NaN])
      assert.throws(() => learnedImmunize(net, x, { eps }), /Expected eps to be a number in \[0, 1\]/);
  });
});

describe('trainImmunizer', () => {
  const train = [smooth(48, 48, 1), smooth(48, 64, 2), smooth(64, 48, 3)];
  const val = [smooth(32, 32, 9)];
  const base = {
    train,
    val,
    batch: 2,
    cropSizes: [16, 24],
    lr: 3e-3,
    eps: EPS,
    seed: 11,
    valCrop: 32,
  };

  test('a short run on generated images lowers the validation loss', () => {
    using ae = tinyTaesd(1, 0.15);
    using net = new ImmunizerNet(tiny).initRandom(0);
    const r = trainImmunizer(net, { ...base, autoencoder: ae, steps: 40, valEvery: 40, lr: 1e-2 });
    assert.equal(r.step, 40);
    const first = r.history.val[0]!;
    const last = r.history.val.at(-1)!;
    assert.equal(last.step, 40);
    assert.ok(last.loss < first.loss * 0.9, `validation loss ${first.loss} → ${last.loss}`);
    assert.ok(last.psnr < first.psnr, `reconstruction PSNR ${first.psnr} → ${last.psnr} dB should fall`);
    assert.ok(r.history.loss.length > 0);
  });

  test('a run killed after a checkpoint resumes to the same weights as one that never stopped', () => {
    const dir = join(tempDir('train-immunizer'), 'not', 'yet'); // trainImmunizer creates the folder
    using ae = tinyTaesd(2, 0.15);
    const o = { ...base, autoencoder: ae, steps: 6, checkpointEvery: 1, jpegProb: 0.5 };
    using straight = new ImmunizerNet(tiny).initRandom(1);
    trainImmunizer(straight, { ...o, val: [] });
    using killed = new ImmunizerNet(tiny).initRandom(1);
    const first = trainImmunizer(killed, { ...o, val: [], checkpointDir: dir, stopAfter: 3 });
    assert.equal(first.step, 3);
    using resumed = new ImmunizerNet(tiny).initRandom(99); // other weights: the checkpoint must replace them
    const second = trainImmunizer(resumed, { ...o, val: [], checkpointDir: dir });
    assert.equal(second.step, 6);
    const a = straight.stateDict();
    const b = resumed.stateDict();
    for (const [k, t] of a) assert.ok(t.equal(b.get(k)!), `${k} differs after resuming`);
  });

  test('a checkpoint of another architecture is refused', () => {
    const dir = tempDir('train-immunizer-arch');
    using ae = tinyTaesd(2, 0.15);
    using a = new ImmunizerNet(tiny).initRandom(1);
    trainImmunizer(a, { ...base, val: [], autoencoder: ae, steps: 1, checkpointDir: dir });
    using b = new ImmunizerNet({ ...tiny, hidden_channels: 16 }).initRandom(1);
    assert.throws(
      () => trainImmunizer(b, { ...base, val: [], autoencoder: ae, steps: 2, checkpointDir: dir }),
      (e: unknown) => e instanceof ImmunizeError && e.code === 'E_CHECKPOINT',
    );
  });

  test('bad options are refused before any work', () => {
    using ae = tinyTaesd(2, 0.15);
    using net = new ImmunizerNet(tiny).initRandom(1);
    assert.throws(() => trainImmunizer(net, { ...base, autoencoder: ae, steps: 0 }), /steps to be a positive integer/);
    assert.throws(() => trainImmunizer(net, { ...base, autoencoder: ae, steps: 1, eps: 0 }), /eps to be in \(0, 1\]/);
    assert.throws(
      () => trainImmunizer(net, { ...base, autoencoder: ae, steps: 1, cropSizes: [128] }),
      /training image 0 has shape \[1, 3, 48, 48\]/,
    );
  });

  test('batches: one crop size per batch, flips, and the same draws for the same seed', () => {
    const a = drawBatch(train, [16, 24], 3, new CropRandom(5));
    const b = drawBatch(train, [16, 24], 3, new CropRandom(5));
    assert.equal(a.shape[0], 3);
    assert.ok([16, 24].includes(a.shape[2]!) && a.shape[2] === a.shape[3]);
    assert.ok(a.equal(b));
    a.dispose();
    b.dispose();
  });

  test('learning rate: warm-up to lr, then cosine decay to lr·minLrFactor', () => {
    const o = { lr: 1, steps: 1000, warmupSteps: 10, minLrFactor: 0.1 };
    assert.ok(learningRate(o, 0) < 0.2);
    assert.equal(learningRate(o, 10), 1);
    assert.ok(Math.abs(learningRate(o, 999) - 0.1) < 1e-3);
  });
});
