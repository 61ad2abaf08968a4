/**
 * Visibility in the protect job (issue 15): the presets in plain words and the `default` alias,
 * the visibility target's parameter and its refusals, the target met on the file as written (with
 * a mask and with --robust jpeg), and the step-time record behind the time estimate.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import sharp from 'sharp';
import { DEFAULT_PRESET, PRESETS } from '../../src/attacks/presets.js';
import { readImage } from '../../src/io/images.js';
import {
  estimateAttack,
  estimateText,
  jobStepTimes,
  loadProtectModels,
  megapixelSteps,
  protectImage,
  readProtectInputs,
  readStepTimes,
  recordStepTime,
  resolveProtectParameters,
  roughDuration,
  sha256File,
  sidecarParameters,
  visibilitySsim,
  type StepTimeKey,
} from '../../src/protect/index.js';
import { noGrad, scope } from '../../src/torch/index.js';
import { leftHalfMask } from '../helpers/cli.js';
import { sharedPath, skipReason } from '../helpers/shared.js';
import { tempDir } from '../helpers/temp.js';
import { refusal } from '../helpers/protect.js';

const taef2 = sharedPath('models', 'taef2-hf', 'taef2.safetensors');

describe('presets in plain words', () => {
  test('balanced is the default: a texture budget kept to SSIM ≥ 0.90; subtle ≥ 0.95; strong and paper have no target', () => {
    assert.equal(DEFAULT_PRESET, 'balanced');
    const d = resolveProtectParameters({});
    assert.equal(d.preset, 'balanced');
    assert.equal(d.budget, 'texture');
    assert.equal(d.minSsim, 0.9);
    const subtle = resolveProtectParameters({ preset: 'subtle' });
    assert.equal(subtle.minSsim, 0.95);
    assert.ok(subtle.eps < d.eps, 'subtle starts from a smaller budget than balanced');
    const strong = resolveProtectParameters({ preset: 'strong' });
    assert.deepEqual(
      [strong.budget, strong.minSsim, strong.eps, strong.stepSize, strong.optimizer, strong.stop, strong.steps],
      ['uniform', null, 16 / 255, 2 / 255, 'momentum', 'converged', 200],
      "strong is the old default: the paper's L∞ 16/255 with momentum, stopping when converged",
    );
    const paper = resolveProtectParameters({ preset: 'paper' });
    assert.deepEqual(
      [paper.budget, paper.minSsim, paper.eps, paper.optimizer, paper.stop, paper.schedule],
      ['uniform', null, 16 / 255, 'sign', 'steps', 'linear-decay'],
      "paper stays photoguard's attack",
    );
  });

  test("'default' still works as a deprecated alias of strong, and says so", () => {
    const old = resolveProtectParameters({ preset: 'default' });
    const strong = resolveProtectParameters({ preset: 'strong' });
    assert.deepEqual({ ...old, notes: [] }, strong, 'the same attack as strong');
    assert.equal(old.preset, 'strong', 'recorded under its new name');
    assert.equal(old.notes.length, 1);
    assert.match(old.notes[0]!, /'default' is now called 'strong'.*deprecated/);
    assert.deepEqual(strong.notes, []);
    assert.ok(!('default' in PRESETS), 'not listed as a preset of its own');
  });

  test('minSsim: overrides the preset, 0 turns it off, bad values and other methods are refused naming the field', () => {
    assert.equal(resolveProtectParameters({ preset: 'strong', minSsim: '0.93' }).minSsim, 0.93);
    assert.equal(resolveProtectParameters({ minSsim: '0' }).minSsim, null, '0: no target');
    assert.equal(resolveProtectParameters({ budget: 'uniform' }).budget, 'uniform');
    for (const bad of ['1.5', '1', '-0.1', 'high']) {
      const e = refusal({ minSsim: bad });
      assert.equal(e.field, 'minSsim', bad);
      assert.match(
        e.render((n) => `--${n === 'minSsim' ? 'min-ssim' : n}`),
        /^--min-ssim: /,
        bad,
      );
    }
    assert.match(refusal({ minSsim: '2' }).message, /minSsim: must be at least 0 and at most 0.999 but received 2/);
    assert.equal(refusal({ budget: 'perceptual' }).field, 'budget');
    const noise = refusal({ method: 'noise', minSsim: '0.9' });
    assert.equal(noise.field, 'minSsim');
    assert.match(noise.message, /minSsim works with method encoder/);
    assert.equal(refusal({ method: 'noise', budget: 'texture' }).field, 'budget');
    const n = resolveProtectParameters({ method: 'noise' });
    assert.deepEqual(
      [n.budget, n.minSsim],
      ['uniform', null],
      "the preset's target applies to the encoder attack only",
    );
  });
});

describe('the target on the file as written', () => {
  test('SSIM ≥ S of the written PNG to the photo, with a mask and with --robust jpeg; nothing changes outside the mask', async (t) => {
    if (taef2 === null) return t.skip(skipReason('models', 'taef2-hf'));
    const dir = tempDir('protect-visibility');
    const photo = join(dir, 'photo.png');
    await sharp(sharedPath('images', 'chelsea.png')!).resize(48, 40).png().toFile(photo);
    const maskPath = await leftHalfMask(join(dir, 'mask.png'), 48, 40);
    for (const extra of [{}, { robust: 'jpeg' }]) {
      const r = resolveProtectParameters({ model: taef2, steps: '12', minSsim: '0.97', ...extra }, { hasMask: true });
      using models = await loadProtectModels(r);
      using inputs = await readProtectInputs({ image: photo, mask: maskPath }, r);
      const parameters = sidecarParameters(
        r,
        { inputSha256: sha256File(photo), mask: { path: maskPath, sha256: 'x' }, target: null, model: taef2 },
        'png',
      );
      const { bytes, sidecar } = await protectImage(inputs, models, r, { parameters, inputPath: photo });
      using written = (await readImage(bytes)).tensor;
      const measured = visibilitySsim(written, inputs.image.tensor);
      const label = JSON.stringify(extra);
      assert.ok(measured >= 0.97, `${label}: SSIM ${measured} of the written file ≥ 0.97`);
      assert.equal(sidecar.results.ssim, measured, `${label}: the sidecar reports the file's SSIM`);
      assert.deepEqual(
        [sidecar.results.visibility?.minSsim, sidecar.results.visibility?.met],
        [0.97, true],
        `${label}: the sidecar says the target was met`,
      );
      assert.ok(measured < 0.995, `${label}: SSIM ${measured}: a real change was made`);
      assert.equal(sidecar.parameters.minSsim, 0.97);
      assert.equal(sidecar.parameters.budget, 'texture');
      const outside = noGrad(() => scope(() => written.sub(inputs.image.tensor).abs().narrow(3, 24, 24).max().item()));
      assert.equal(outside, 0, `${label}: the right half (black in the mask) is untouched`);
    }
  });
});

describe('the time estimate', () => {
  const key: StepTimeKey = { model: 'm', device: 'cpu', precision: 'bf16', threads: 2, robust: 'none' };

  test('arithmetic: the median ms per megapixel-step × megapixels × steps × draws', () => {
    assert.equal(megapixelSteps({ width: 1000, height: 500, steps: 100, draws: 1 }), 50);
    assert.equal(megapixelSteps({ width: 1000, height: 500, steps: 100, draws: 3 }), 150);
    const record = { version: 1 as const, entries: { 'm | cpu | bf16 | 2 threads | robust none': [10, 1000, 12] } };
    // median 12 ms/MP-step (the slow 1000 of a busy machine ignored) × 0.5 MP × 200 steps.
    assert.deepEqual(estimateAttack(record, key, { width: 1000, height: 500, steps: 200, draws: 1 }), {
      ms: 1200,
      basedOn: 3,
    });
    assert.equal(estimateAttack(record, { ...key, threads: 1 }, { width: 8, height: 8, steps: 1, draws: 1 }), null);
    assert.equal(roughDuration(40_000), '40 s');
    assert.equal(roughDuration(185_000), '3 min');
    assert.equal(roughDuration(3_900_000), '1 h 5 min');
    assert.match(
      estimateText({ ms: 185_000, basedOn: 2 }, { steps: 200, stop: 'converged' }),
      /about 3 min for at most 200 steps.*2 jobs/,
    );
    assert.match(estimateText(null, { steps: 200, stop: 'steps' }), /no time estimate yet/);
  });

  test('the record: written after each job, the last five kept per key, unreadable files read as empty', () => {
    const dir = tempDir('step-times');
    const path = join(dir, 'sub', 'step-times.json');
    assert.deepEqual(readStepTimes(path).entries, {}, 'no file: empty');
    for (let k = 1; k <= 7; k++) recordStepTime(path, key, { width: 1000, height: 1000, steps: 10, draws: 1 }, 100 * k);
    const kept = readStepTimes(path).entries['m | cpu | bf16 | 2 threads | robust none'];
    assert.deepEqual(kept, [30, 40, 50, 60, 70], 'ms per MP-step of the last five jobs');
    recordStepTime(path, key, { width: 1000, height: 1000, steps: 0, draws: 1 }, 100);
    assert.equal(
      readStepTimes(path).entries['m | cpu | bf16 | 2 threads | robust none']!.length,
      5,
      'no work: not recorded',
    );

    const r = resolveProtectParameters({ model: 'm', steps: '20' });
    const times = jobStepTimes(r, { width: 100, height: 100 }, join(dir, 'job.json'));
    assert.equal(times.estimate, null, 'nothing measured yet');
    assert.equal(times.record(2000, 20), null);
    const again = jobStepTimes(r, { width: 200, height: 100 }, join(dir, 'job.json'));
    // 2000 ms for 0.01 MP × 20 steps: 10,000 ms per MP-step; twice the pixels, the same steps.
    assert.deepEqual(again.estimate, { ms: 4000, basedOn: 1 });
    assert.equal(jobStepTimes(r, { width: 1, height: 1 }, null).record(1, 1), null, 'off: nothing written');

    const corrupt = join(dir, 'corrupt.json');
    recordStepTime(corrupt, key, { width: 1000, height: 1000, steps: 1, draws: 1 }, 5);
    const text = readFileSync(corrupt, 'utf8');
    assert.match(text, /"version": 1/);
    for (const bad of ['{', '[]', '{"version": 2, "entries": {}}']) {
      const p = join(dir, `bad-${bad.length}.json`);
      writeFileSync(p, bad);
      assert.deepEqual(readStepTimes(p).entries, {}, `${bad}: read as empty`);
    }
  });
});
