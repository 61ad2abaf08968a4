// The purification spec language (src/purify/spec.ts) and noise (src/purify/noise.ts): parsing,
// canonical spellings, errors that name the bad token, chains applied in order, sweeps, seeds.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { jpeg } from '../../src/purify/codecs.js';
import { PurificationSpecError } from '../../src/purify/common.js';
import { gaussianBlur } from '../../src/purify/filters.js';
import { hflip } from '../../src/purify/geometry.js';
import { reconstructionError, type ImageAutoencoder } from '../../src/purify/impress.js';
import { addNoise } from '../../src/purify/noise.js';
import {
  expandPurificationSweep,
  parseNumber,
  parsePurification,
  purify,
  PURIFICATION_NAMES,
} from '../../src/purify/spec.js';
import { F, full, Generator, noGrad, rand, scope, type Tensor } from '../../src/torch/index.js';

const img = (seed = 1, shape = [1, 3, 24, 24]): Tensor =>
  noGrad(() =>
    rand(shape, { generator: new Generator({ seed }) })
      .mul(0.8)
      .add(0.1),
  );
const maxDiff = (a: Tensor, b: Tensor): number => noGrad(() => scope(() => a.sub(b).abs().max().item()));

describe('parsing', () => {
  test('every name parses to a canonical spec that parses to itself', () => {
    const examples: Record<string, string> = {
      'jpeg:75': 'jpeg:75',
      'JPEG:75:444:mozjpeg': 'jpeg:75:mozjpeg:444',
      'jpeg:90:turbo:420': 'jpeg:90',
      'webp:80': 'webp:80',
      'diffjpeg:60:cubic': 'diffjpeg:60:cubic',
      'blur:1.5': 'blur:1.5',
      'blur:1:5': 'blur:1:5',
      'median:3': 'median:3',
      'resize:0.5': 'resize:0.5:bicubic',
      'resize:1/2:lanczos': 'resize:0.5:lanczos',
      'rotate:-15': 'rotate:-15',
      hflip: 'hflip',
      vflip: 'vflip',
      'crop:0.9': 'crop:0.9',
      'noise:gaussian:0.02': 'noise:gaussian:0.02:0',
      'noise:uniform:8/255:7': `noise:uniform:${8 / 255}:7`,
      none: 'none',
      ' jpeg:75 + blur:1 ': 'jpeg:75+blur:1',
      impress: 'impress:50',
      'impress:20:ssim': 'impress:20:ssim',
      'impress:20:l2': 'impress:20',
    };
    const names = new Set<string>();
    for (const [input, canonical] of Object.entries(examples)) {
      const p = parsePurification(input);
      assert.equal(p.spec, canonical, input);
      assert.equal(parsePurification(p.spec).spec, canonical, `${canonical} is not a fixed point`);
      for (const s of p.steps) names.add(s.name);
    }
    assert.deepEqual([...names].sort(), [...PURIFICATION_NAMES].sort(), 'every purification has an example');
  });

  test('flags: differentiable, stochastic, async', () => {
    const j = parsePurification('jpeg:75+blur:1');
    assert.equal(j.async, true);
    assert.equal(j.differentiable, false);
    const d = parsePurification('diffjpeg:75+resize:0.5+noise:gaussian:0.01');
    assert.equal(d.async, false);
    assert.equal(d.differentiable, true);
    assert.equal(d.stochastic, true);
    assert.deepEqual(d.steps[1]!.params, { scale: 0.5, mode: 'bicubic' });
  });

  test('bad specs: one line naming the token and what was expected', () => {
    const cases: [string, RegExp][] = [
      ['', /empty spec/],
      ['jpg:75', /unknown purification 'jpg'.*did you mean 'jpeg'/],
      ['jpeg', /quality is missing/],
      ['jpeg:101', /quality must be an integer ≥ 1 and ≤ 100 but received '101'/],
      ['jpeg:75:422', /unknown option '422'/],
      ['jpeg:75:444:420', /conflicts/],
      ['blur:0', /sigma must be a number > 0/],
      ['blur:1:4', /odd integer/],
      ['resize:2', /scale/],
      ['resize:0.5:area', /resampling must be/],
      ['noise:pink:0.1', /noise kind must be 'gaussian' or 'uniform'/],
      ['hflip:1', /unexpected argument '1'/],
      ['jpeg:75++blur:1', /empty step/],
      ['constructor', /unknown purification/],
      ['rotate:abc', /angle \(degrees\) must be a number but received 'abc'/],
    ];
    for (const [spec, re] of cases) {
      assert.throws(
        () => parsePurification(spec),
        (e: unknown) => {
          assert.ok(e instanceof PurificationSpecError, `${spec}: ${String(e)}`);
          assert.equal(e.code, 'E_PURIFY_SPEC');
          assert.match(e.message, re, spec);
          assert.ok(!e.message.includes('\n'), 'one line');
          return true;
        },
      );
    }
  });

  test('numbers: decimals and fractions only', () => {
    assert.equal(parseNumber('8/255'), 8 / 255);
    assert.equal(parseNumber('-1.5e-1'), -0.15);
    for (const bad of ['', '1/0', 'abc', '1/2/3', '0x10', 'Infinity']) assert.ok(Number.isNaN(parseNumber(bad)), bad);
  });

  test('sweeps expand comma lists into every combination, in order', () => {
    assert.deepEqual(expandPurificationSweep('jpeg:95,85,75'), ['jpeg:95', 'jpeg:85', 'jpeg:75']);
    assert.deepEqual(expandPurificationSweep('jpeg:95,75+blur:1,2'), [
      'jpeg:95+blur:1',
      'jpeg:95+blur:2',
      'jpeg:75+blur:1',
      'jpeg:75+blur:2',
    ]);
    assert.deepEqual(expandPurificationSweep('resize:0.5:bilinear,lanczos'), [
      'resize:0.5:bilinear',
      'resize:0.5:lanczos',
    ]);
    assert.throws(() => expandPurificationSweep('jpeg:95,,75'), /empty value/);
    assert.throws(() => expandPurificationSweep('jpeg:95,150'), /'150'/);
  });
});

describe('applying', () => {
  test('a chain applies its steps in order and equals the functions called directly', async () => {
    const x = img(2);
    const got = await purify(x, 'jpeg:80+blur:1+hflip');
    const want = hflip(gaussianBlur(await jpeg(x, { quality: 80 }), 1));
    assert.ok(maxDiff(got, want) < 1e-6);
    const other = await purify(x, 'hflip+blur:1+jpeg:80');
    assert.ok(maxDiff(got, other) > 1e-3, 'order matters');
  });

  test('applySync is differentiable for differentiable chains and refuses real codecs', () => {
    const x = img(3).requiresGrad_();
    const y = parsePurification('diffjpeg:70+blur:0.8+resize:0.75:bilinear').applySync(x);
    assert.ok(y.requiresGrad);
    assert.throws(
      () => parsePurification('blur:1+jpeg:70').applySync(x),
      (e: Error & { code?: string }) => e.code === 'E_PURIFY_ASYNC' && /diffjpeg:70/.test(e.message),
    );
  });

  test("'impress' needs an autoencoder and runs the purifier against it", async () => {
    const p = parsePurification('blur:0.8+impress:5');
    assert.equal(p.needsAutoencoder, true);
    assert.equal(parsePurification('jpeg:75').needsAutoencoder, false);
    const x = img(5, [1, 3, 10, 14]);
    await assert.rejects(
      p.apply(x),
      (e: Error & { code?: string }) => e.code === 'E_PURIFY_MODEL' && /--model/.test(e.message),
    );
    // A toy autoencoder that keeps 4×4 means (downscale 4: 10×14 is padded to 12×16 and cropped back).
    const blocky: ImageAutoencoder = {
      name: 'blocky',
      downscale: 4,
      encode01: (t) => F.avgPool2d(t, 4),
      decode01: (z) => F.interpolate(z, { scaleFactor: 4, mode: 'nearest' }),
    };
    const blurred = gaussianBlur(x, 0.8);
    const y = await p.apply(x, { autoencoder: blocky });
    assert.deepEqual(y.shape, x.shape);
    assert.ok(
      reconstructionError(blocky, y) < reconstructionError(blocky, blurred),
      'more consistent for the autoencoder than its input',
    );
    assert.ok(maxDiff(y, blurred) > 0 && maxDiff(y, blurred) < 0.05);
  });

  test("'none' copies; the input is never modified", async () => {
    const x = img(4);
    const before = x.clone();
    const y = await purify(x, 'none');
    assert.notEqual(y, x);
    assert.equal(maxDiff(y, x), 0);
    await purify(x, 'median:3+noise:uniform:0.1+rotate:10');
    assert.equal(maxDiff(x, before), 0);
  });

  test('noise: seeded and reproducible; a generator overrides the seed; statistics and clamping', async () => {
    const x = full([1, 3, 64, 64], 0.5);
    const a = await purify(x, 'noise:gaussian:0.05:3');
    const b = await purify(x, 'noise:gaussian:0.05:3');
    const c = await purify(x, 'noise:gaussian:0.05:4');
    assert.equal(maxDiff(a, b), 0);
    assert.ok(maxDiff(a, c) > 0);
    const std = noGrad(() => a.sub(0.5).std().item());
    assert.ok(Math.abs(std - 0.05) < 0.005, `σ ${std}`);
    const u = addNoise(x, 'uniform', 0.1, { seed: 1 });
    const dev = noGrad(() => u.sub(0.5).abs().max().item());
    assert.ok(dev <= 0.1 + 1e-6 && dev > 0.09, `uniform amplitude ${dev}`);
    const g1 = await purify(x, 'noise:gaussian:0.05:3', { generator: new Generator({ seed: 9 }) });
    const g2 = addNoise(x, 'gaussian', 0.05, { generator: new Generator({ seed: 9 }) });
    assert.equal(maxDiff(g1, g2), 0);
    assert.ok(maxDiff(g1, a) > 0);
    const loud = addNoise(x, 'gaussian', 2, { seed: 1 });
    assert.ok(
      noGrad(() => loud.min().item() === 0 && loud.max().item() === 1),
      'clamped to [0, 1]',
    );
    assert.throws(() => addNoise(x, 'gaussian', -1), /strength/);
  });
});
