// `immunize edit` on the tiny diffusers repositories of the conformance cases (img2img and
// inpainting), and its errors.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { immunizeCli, tinyPipelines } from '../helpers/cli.js';
import { sharedPath, skipReason } from '../helpers/shared.js';

const immunize = immunizeCli();

async function photo(dir: string): Promise<string> {
  const p = join(dir, 'photo.png');
  const src = sharedPath('images', 'chelsea.png')!;
  await sharp(src).resize(64, 64).png().toFile(p);
  return p;
}

test('img2img with a tiny repo writes a PNG of the photo size and a sidecar', async (t) => {
  const repo = sharedPath('golden', 'pipeline_img2img');
  if (repo === null || sharedPath('images', 'chelsea.png') === null)
    return t.skip(skipReason('golden', 'pipeline_img2img'));
  const dir = mkdtempSync(join(tmpdir(), 'immunize-edit-'));
  const out = join(dir, 'edit.png');
  // The same edit twice: the second run checks that the seed fixes the pixels.
  const edit = [
    '--prompt',
    'two men in a wedding',
    '--model',
    repo,
    '--steps',
    '4',
    '--strength',
    '0.5',
    '--seed',
    '3',
  ];
  const r = immunize('edit', await photo(dir), ...edit, '-o', out, '--json');
  assert.equal(r.status, 0, r.stderr);
  const res = JSON.parse(r.stdout) as { mode: string; stepsRun: number; scheduler: string; sidecar: string };
  assert.equal(res.mode, 'img2img');
  assert.equal(res.stepsRun, 2, 'strength 0.5 of 4 steps runs 2');
  const meta = await sharp(out).metadata();
  assert.deepEqual([meta.width, meta.height], [64, 64]);
  assert.equal(JSON.parse(readFileSync(res.sidecar, 'utf8')).seed, 3);
  // Same seed, same edit.
  const out2 = join(dir, 'edit2.png');
  assert.equal(immunize('edit', join(dir, 'photo.png'), ...edit, '-o', out2).status, 0);
  const [a, b] = await Promise.all([sharp(out).raw().toBuffer(), sharp(out2).raw().toBuffer()]);
  assert.ok(a.equals(b));
});

test('inpainting with --mask uses the 9-channel repo; a 4-channel repo is refused clearly', async (t) => {
  const pipelines = tinyPipelines();
  if (pipelines === null) return t.skip(skipReason('golden', 'pipeline_inpaint'));
  const { inpaint: repo, img2img: plain } = pipelines;
  const dir = mkdtempSync(join(tmpdir(), 'immunize-edit-'));
  const mask = join(dir, 'mask.png');
  await sharp({ create: { width: 64, height: 64, channels: 3, background: '#ffffff' } })
    .png()
    .toFile(mask);
  const img = await photo(dir);
  const inpaint = (model: string, ...args: string[]) =>
    immunize('edit', img, '--mask', mask, '--prompt', 'a plane', '--model', model, '--steps', '3', ...args);
  const r = inpaint(repo, '-o', join(dir, 'in.png'), '--json');
  assert.equal(r.status, 0, r.stderr);
  assert.equal((JSON.parse(r.stdout) as { mode: string }).mode, 'inpaint');
  assert.ok(existsSync(join(dir, 'in.png')));
  const bad = inpaint(plain, '-o', join(dir, 'bad.png'));
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /inpainting model/);
  assert.ok(!existsSync(join(dir, 'bad.png')));
});

test('edit: missing prompt, missing model and an offline hub id each give one clear line', async (t) => {
  if (sharedPath('images', 'chelsea.png') === null) return t.skip(skipReason('images', 'chelsea.png'));
  const dir = mkdtempSync(join(tmpdir(), 'immunize-edit-'));
  const img = await photo(dir);
  const noPrompt = immunize('edit', img);
  assert.equal(noPrompt.status, 2);
  assert.match(noPrompt.stderr, /--prompt is required/);
  writeFileSync(join(dir, 'x.txt'), 'x');
  const offline = immunize('edit', img, '--prompt', 'x', '--model', 'nobody/no-such-pipeline');
  assert.notEqual(offline.status, 0);
  assert.match(offline.stderr, /nobody\/no-such-pipeline/);
  assert.doesNotMatch(offline.stderr, /\n\s+at /);
  const missing = immunize('edit', img, '--prompt', 'x', '--model', join(dir, 'nope'));
  assert.notEqual(missing.status, 0);
  assert.match(missing.stderr, /nope/);
});
