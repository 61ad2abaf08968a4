// `immunize protect --method diffusion` on the tiny inpainting repository of the conformance
// cases: the attack runs through the pipeline, perturbs only the protected region, and refuses
// what it cannot do with one clear line.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { immunizeCli, leftHalfMask, tinyPipelines } from '../helpers/cli.js';
import { sharedPath, skipReason } from '../helpers/shared.js';

const immunize = immunizeCli();

/** A 64×32 photo crop and a mask that is white (protect) on the left half. */
async function inputs(dir: string): Promise<{ img: string; mask: string }> {
  const img = join(dir, 'photo.png');
  await sharp(sharedPath('images', 'chelsea.png')!).resize(64, 32).png().toFile(img);
  return { img, mask: await leftHalfMask(join(dir, 'mask.png'), 64, 32) };
}

test('diffusion attack: perturbs only the white (protected) half, within ε, and records its parameters', async (t) => {
  const repo = sharedPath('golden', 'pipeline_inpaint');
  if (repo === null || sharedPath('images', 'chelsea.png') === null)
    return t.skip(skipReason('golden', 'pipeline_inpaint'));
  const dir = mkdtempSync(join(tmpdir(), 'immunize-pd-'));
  const { img, mask } = await inputs(dir);
  const out = join(dir, 'out.png');
  // The same attack twice: the second run checks that the seed fixes the pixels.
  const attack = [
    '--method',
    'diffusion',
    '--mask',
    mask,
    '--model',
    repo,
    '--steps',
    '3',
    '--diffusion-steps',
    '2',
    '--grad-reps',
    '2',
    '--eps',
    '8/255',
    '--step-size',
    '4/255',
  ];
  const r = immunize('protect', img, ...attack, '-o', out, '--json');
  assert.equal(r.status, 0, r.stderr);
  const side = JSON.parse(r.stdout) as {
    parameters: { method: string; diffusionSteps: number; gradReps: number; eps: number };
    attack: { losses: number[]; stepsTaken: number; encoders: string[] };
    results: { linf255: number; reconstruction: unknown };
  };
  assert.equal(side.parameters.method, 'diffusion');
  assert.equal(side.parameters.diffusionSteps, 2);
  assert.equal(side.parameters.gradReps, 2);
  assert.equal(side.attack.stepsTaken, 3);
  assert.ok(
    side.attack.losses.length >= 3 && side.attack.losses.every(Number.isFinite),
    `losses ${side.attack.losses.join(',')}`,
  );
  assert.match(side.attack.encoders[0]!, /inpainting, 2 steps × 2 passes/);
  assert.ok(side.results.linf255 <= 8 + 1e-4 && side.results.linf255 >= 1, `L∞ ${side.results.linf255}/255`);

  const [a, b] = await Promise.all([sharp(img).raw().toBuffer(), sharp(out).raw().toBuffer()]);
  let left = 0,
    right = 0,
    maxDiff = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    maxDiff = Math.max(maxDiff, d);
    if (d === 0) continue;
    if (Math.floor(i / 3) % 64 < 32) left++;
    else right++;
  }
  assert.equal(right, 0, 'the repainted half keeps the original pixels');
  assert.ok(left > 200, `the protected half changed in ${left} values`);
  assert.ok(maxDiff <= 8, `max change ${maxDiff}/255`);

  // Same seed, same pixels.
  const out2 = join(dir, 'out2.png');
  assert.equal(immunize('protect', img, ...attack, '-o', out2).status, 0);
  assert.ok(b.equals(await sharp(out2).raw().toBuffer()));
});

test('diffusion attack refuses: no mask, a latent target, a non-inpainting model — one line, no files', async (t) => {
  const pipelines = tinyPipelines();
  if (pipelines === null) return t.skip(skipReason('golden', 'pipeline_inpaint'));
  const { inpaint: repo, img2img: plain } = pipelines;
  const dir = mkdtempSync(join(tmpdir(), 'immunize-pd-'));
  const { img, mask } = await inputs(dir);
  const cases: [string[], RegExp][] = [
    [['--model', repo], /needs --mask/],
    [['--model', repo, '--mask', mask, '--target', 'zeros'], /--target zeros/],
    [['--model', plain, '--mask', mask], /inpainting pipeline \(9-channel UNet\)/],
  ];
  for (const [args, message] of cases) {
    const out = join(dir, 'bad.png');
    const r = immunize('protect', img, '--method', 'diffusion', '--steps', '1', ...args, '-o', out);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.ok(!existsSync(out));
  }
  assert.deepEqual(readdirSync(dir).sort(), ['mask.png', 'photo.png']);
  assert.ok(readFileSync(img).length > 0);
});
