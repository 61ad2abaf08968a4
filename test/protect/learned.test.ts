/**
 * method learned and start learned through the protect library: the parameters' rules, one
 * forward pass within the budget, PGD that starts from the learned δ, and the note when G meets a
 * model it was not trained against. G is a tiny random network saved to a temporary folder.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { immunize } from '../../src/attacks/immunize.js';
import { learnedImmunize, learnedTargetNote } from '../../src/attacks/learned.js';
import { AutoencoderTiny } from '../../src/models/autoencoder-tiny.js';
import { ImmunizerNet, saveImmunizer } from '../../src/models/immunizer.js';
import {
  LEARNED_REFINE,
  loadProtectModels,
  precisionOf,
  protectImage,
  readProtectInputs,
  resolveProtectParameters,
  sha256File,
  sidecarParameters,
} from '../../src/protect/index.js';
import { Generator, noGrad, rand, type Tensor } from '../../src/torch/index.js';
import { sharedPath, skipReason } from '../helpers/shared.js';
import { tempDir } from '../helpers/temp.js';
import { refusal } from '../helpers/protect.js';

const EPS = 16 / 255;
const tiny = { hidden_channels: 8, num_blocks: 1, norm_groups: 0, target_model: 'taef2', eps: EPS };
const taef2 = sharedPath('models', 'taef2-hf', 'taef2.safetensors');

function loud(seed: number): ImmunizerNet {
  const net = new ImmunizerNet(tiny).initRandom(seed);
  noGrad(() => {
    for (const p of net.parameters()) p.mul_(4);
  });
  return net;
}

test('parameters: learned takes no model by default, start learned needs the encoder attack, bf16 is allowed', () => {
  const r = resolveProtectParameters({ method: 'learned' });
  assert.equal(r.model, null, 'no model to download: G runs alone');
  assert.equal(r.start, 'preset');
  assert.equal(resolveProtectParameters({ method: 'learned', precision: 'bf16' }).precision, 'bf16');
  assert.match(precisionOf({ ...r, precision: 'auto' }).used, /^(bf16|fp32)$/);
  assert.equal(resolveProtectParameters({ start: 'learned' }).start, 'learned');
  const start = refusal({ method: 'noise', start: 'learned' });
  assert.equal(start.field, 'start');
  assert.match(start.message, /start learned works with method encoder/);
  assert.equal(refusal({ method: 'learned', target: 'zeros' }).field, 'target');
  const files = { inputSha256: 'x', model: null, mask: null, target: null };
  const side = sidecarParameters(r, files, 'png');
  assert.equal(side.steps, null, 'learned takes no steps');
  assert.equal(side.preset, null);
  assert.equal(sidecarParameters(resolveProtectParameters({ start: 'learned' }), files, 'png').start, 'learned');
});

test('parameters: start learned refines in 20 steps at 4x the preset step unless steps or stepSize are given', () => {
  const strong = resolveProtectParameters({ preset: 'strong' });
  const refine = resolveProtectParameters({ preset: 'strong', start: 'learned' });
  assert.equal(refine.steps, LEARNED_REFINE.steps);
  assert.equal(refine.steps, 20);
  assert.ok(Math.abs(refine.stepSize - 4 * strong.stepSize) < 1e-12, `step ${refine.stepSize}`);
  const given = resolveProtectParameters({ preset: 'strong', start: 'learned', steps: 7, stepSize: 1 / 255 });
  assert.equal(given.steps, 7);
  assert.equal(given.stepSize, 1 / 255);
  assert.equal(
    resolveProtectParameters({ preset: 'strong', steps: 7 }).stepSize,
    strong.stepSize,
    'preset start unchanged',
  );
});

test('immunize: method learned is one projected pass; start learned with 0 steps returns the learned image', () => {
  using net = loud(1);
  using x = noGrad(() => rand([1, 3, 24, 40], { generator: new Generator({ seed: 2 }) }));
  using direct = learnedImmunize(net, x, { eps: EPS });
  const pgd = { eps: EPS, stepSize: 2 / 255, steps: 0, randomStart: true, seed: 0 };
  const a = immunize(x, { method: 'learned', pgd, immunizer: net });
  using adv = a.adv;
  assert.ok(adv.equal(direct));
  assert.equal(a.attack, null);
  const encoder = { name: 'id', encode01: (t: Tensor) => t.mul(1) };
  const b = immunize(x, { method: 'encoder', pgd, immunizer: net, start: 'learned', encoder });
  using start = b.adv;
  assert.ok(start.allclose(direct, 0, 1e-6), 'PGD starts from the learned δ, not a random one');
  const c = immunize(x, { method: 'encoder', pgd, encoder });
  using random = c.adv;
  assert.ok(!random.allclose(direct, 0, 1e-3), 'the preset start differs');
});

test('learnedTargetNote: silent for the model G was trained against, a clear sentence for another', () => {
  using net = new ImmunizerNet(tiny).initRandom(0);
  const f2 = new AutoencoderTiny({ latent_channels: 32, use_midblock_gn: true });
  assert.equal(learnedTargetNote(net, f2, 'taef2-hf'), null);
  const sd = new AutoencoderTiny({ latent_channels: 4 });
  assert.match(learnedTargetNote(net, sd, 'taesd') ?? '', /trained against taef2, but taesd is taesd or taesdxl/);
});

test('protectImage with method learned: within ε, no steps, and a note against another model', async (t) => {
  if (taef2 === null) return t.skip(skipReason('models', 'taef2-hf'));
  const dir = tempDir('protect-learned');
  const photo = join(dir, 'photo.png');
  await sharp(sharedPath('images', 'chelsea.png')!).resize(30, 22).png().toFile(photo);
  using net = loud(3);
  saveImmunizer(join(dir, 'g'), net);
  const r = resolveProtectParameters({ method: 'learned', model: taef2 });
  using models = await loadProtectModels(r, join(dir, 'g'));
  using inputs = await readProtectInputs({ image: photo }, r);
  const parameters = sidecarParameters(
    r,
    { inputSha256: sha256File(photo), mask: null, target: null, model: taef2 },
    'png',
  );
  const notes: string[] = [];
  const result = await protectImage(inputs, models, r, { parameters, inputPath: photo, onNote: (n) => notes.push(n) });
  assert.ok(result.sidecar.results.linf <= EPS + 0.5 / 255, `L∞ ${result.sidecar.results.linf * 255}/255`);
  assert.ok(result.sidecar.results.linf > 0);
  assert.equal(result.sidecar.attack, null);
  assert.ok(!notes.some((n) => /trained against/.test(n)), 'TAEF2 is what G was trained for: no transfer note');

  saveImmunizer(join(dir, 'g-sd'), net, { extra: { target_model: 'taesd' } });
  using other = await loadProtectModels(r, join(dir, 'g-sd'));
  const notes2: string[] = [];
  await protectImage(inputs, other, r, { parameters, inputPath: photo, onNote: (n) => notes2.push(n) });
  assert.ok(
    notes2.some((n) => /trained against taesd, but .* is taef2/.test(n)),
    notes2.join(' | '),
  );
});
