/**
 * The protect library on its own: parameters resolved with errors that name the field (in the
 * door's words), progress through onStep, cancellation through an AbortSignal, and no file
 * touched until writeProtected.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import {
  loadProtectModels,
  precisionOf,
  protectImage,
  ProtectCanceled,
  readProtectInputs,
  resolveProtectParameters,
  sha256File,
  sidecarParameters,
  writeProtected,
  type ProtectStep,
} from '../../src/protect/index.js';
import { sharedPath, skipReason } from '../helpers/shared.js';
import { tempDir } from '../helpers/temp.js';
import { refusal } from '../helpers/protect.js';

const taef2 = sharedPath('models', 'taef2-hf', 'taef2.safetensors');

test("resolveProtectParameters: defaults from the preset, refusals name the field in each door's words", () => {
  const r = resolveProtectParameters({ preset: 'paper', steps: '7', eps: '8/255' });
  assert.equal(r.optimizer, 'sign', 'the paper preset is sign steps');
  assert.equal(r.steps, 7);
  assert.equal(r.eps, 8 / 255);
  assert.equal(r.stepSize, 2 / 255, 'the preset step size');

  const eps = refusal({ eps: '2' });
  assert.equal(eps.field, 'eps');
  assert.match(eps.message, /^eps: must be greater than 0 and at most 1/);
  assert.match(
    eps.render((n) => `--${n}`),
    /^--eps: /,
  );
  const mask = refusal({ method: 'diffusion' });
  assert.equal(mask.field, 'mask');
  assert.match(
    mask.render((n) => `--${n}`),
    /--method diffusion needs --mask/,
  );
  assert.equal(refusal({ tile: '64' }, { door: 'api' }).field, 'tile', 'tile is not offered by the API');
  assert.equal(refusal({ target: '/etc/passwd' }, { door: 'api' }).field, 'target', 'the API takes no target paths');
  assert.equal(refusal({ steps: '11' }, { door: 'api', maxSteps: 10 }).field, 'steps');
  assert.equal(refusal({ model: 'other' }, { door: 'api', models: ['tiny'] }).field, 'model');
  assert.equal(refusal({ seed: '1.5' }).field, 'seed');
  assert.equal(refusal({ output: 'x' }).field, 'output');
});

test('precision: auto by default, decided where the job runs; fp16 on the CPU and bf16 for other methods are refused', () => {
  const r = resolveProtectParameters({});
  assert.equal(r.precision, 'auto');
  assert.equal(resolveProtectParameters({ precision: 'bf16' }, { door: 'api' }).precision, 'bf16');
  // auto follows the machine's flags (autoPrecision, tested with faked ones in test/torch/precision.test.ts).
  assert.match(precisionOf(r).used, /^(bf16|fp32)$/);
  assert.deepEqual(precisionOf({ ...r, precision: 'fp32' }), { requested: 'fp32', used: 'fp32', reason: 'as asked' });
  assert.deepEqual(precisionOf({ ...r, method: 'noise' }), {
    requested: 'auto',
    used: 'fp32',
    reason: 'the noise method runs in fp32',
  });
  assert.equal(precisionOf({ ...r, device: 'cuda' }).used, 'bf16');

  const fp16 = refusal({ precision: 'fp16' });
  assert.equal(fp16.field, 'precision');
  assert.match(
    fp16.render((n) => `--${n}`),
    /^--precision: fp16 runs on CUDA only.*use bf16 on the CPU/,
  );
  const noise = refusal({ method: 'noise', precision: 'bf16' });
  assert.equal(noise.field, 'precision');
  assert.match(
    noise.render((n) => `--${n}`),
    /--precision bf16 works with --method encoder or learned; the noise method runs in fp32/,
  );
  assert.match(refusal({ precision: 'half' }).message, /^precision: expected one of auto, fp32, bf16, fp16/);

  const files = { inputSha256: 'x', model: null, mask: null, target: null };
  assert.deepEqual(sidecarParameters({ ...r, precision: 'bf16' }, files, 'png').precision, {
    requested: 'bf16',
    used: 'bf16',
  });
  assert.deepEqual(sidecarParameters({ ...r, method: 'noise' }, files, 'png').precision, {
    requested: 'auto',
    used: 'fp32',
  });
});

test('protectImage: progress through onStep, an AbortSignal stops it, nothing is written until writeProtected', async (t) => {
  if (taef2 === null) return t.skip(skipReason('models', 'taef2-hf'));
  const dir = tempDir('protect-lib');
  const photo = join(dir, 'photo.png');
  await sharp(sharedPath('images', 'chelsea.png')!).resize(32, 32).png().toFile(photo);
  const r = resolveProtectParameters({ model: taef2, steps: '6', seed: '3' });
  using models = await loadProtectModels(r);
  using inputs = await readProtectInputs({ image: photo }, r);
  const parameters = sidecarParameters(
    r,
    { inputSha256: sha256File(photo), mask: null, target: null, model: taef2 },
    'png',
  );

  const steps: ProtectStep[] = [];
  const result = await protectImage(inputs, models, r, { parameters, inputPath: photo, onStep: (s) => steps.push(s) });
  assert.deepEqual(
    steps.map((s) => s.step),
    [1, 2, 3, 4, 5, 6],
  );
  assert.ok(
    steps.every((s) => s.phase === 'attack' && s.steps === 6 && Number.isFinite(s.loss)),
    'each step reports its loss',
  );
  assert.equal(steps.at(-1)!.etaMs, 0);
  assert.deepEqual(readdirSync(dir), ['photo.png'], 'protectImage wrote nothing');
  assert.equal(result.sidecar.attack?.stepsTaken, 6);

  const stop = new AbortController();
  const seen: number[] = [];
  await assert.rejects(
    protectImage(inputs, models, r, {
      parameters,
      inputPath: photo,
      signal: stop.signal,
      onStep: (s) => {
        seen.push(s.step);
        if (s.step === 2) stop.abort();
      },
    }),
    (e) => e instanceof ProtectCanceled && e.code === 'E_CANCELED',
  );
  assert.deepEqual(seen, [1, 2], 'stopped at the step it was asked to');

  const out = join(dir, 'out', 'photo.immunized.png');
  const written = writeProtected(result, out);
  assert.ok(existsSync(out) && existsSync(written.output.sidecar));
  assert.equal(written.output.path, out);
});
