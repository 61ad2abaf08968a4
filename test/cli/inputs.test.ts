// Input expansion for `immunize protect`: files, folders, quoted globs.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { expandGlob, expandInputs, isImageName, isImmunizeOutput, segmentRegExp } from '../../src/cli/inputs.js';
import { UsageError } from '../../src/errors.js';
import { tempDir } from '../helpers/temp.js';

function tree(files: string[]): string {
  const dir = tempDir('inputs');
  for (const f of files) {
    mkdirSync(join(dir, f, '..'), { recursive: true });
    writeFileSync(join(dir, f), '');
  }
  return dir;
}

test('segment patterns: * ? [..] [!..] {a,b}, dots and regex characters are literal', () => {
  assert.ok(segmentRegExp('*.jpg').test('a.jpg'));
  assert.ok(!segmentRegExp('*.jpg').test('a.jpeg'));
  assert.ok(!segmentRegExp('*.jpg').test('ajpg'), '. is literal');
  assert.ok(segmentRegExp('img?.png').test('img1.png') && !segmentRegExp('img?.png').test('img10.png'));
  assert.ok(segmentRegExp('[ab].png').test('b.png') && !segmentRegExp('[ab].png').test('c.png'));
  assert.ok(segmentRegExp('[!ab].png').test('c.png') && !segmentRegExp('[!ab].png').test('a.png'));
  assert.ok(
    segmentRegExp('*.{png,jpg}').test('x.jpg') &&
      segmentRegExp('*.{png,jpg}').test('x.png') &&
      !segmentRegExp('*.{png,jpg}').test('x.gif'),
  );
  assert.ok(segmentRegExp('a+b(1).png').test('a+b(1).png'));
  assert.throws(() => segmentRegExp('{a,b'), UsageError);
});

test('globs: * stays in its folder and skips dotfiles, ** spans folders', () => {
  const d = tree(['a.png', 'b.jpg', '.hidden.png', 'sub/c.png', 'sub/deep/d.png', 'sub/e.txt']);
  assert.deepEqual(expandGlob(join(d, '*.png')), [join(d, 'a.png')]);
  assert.deepEqual(expandGlob(join(d, '**', '*.png')), [
    join(d, 'a.png'),
    join(d, 'sub/c.png'),
    join(d, 'sub/deep/d.png'),
  ]);
  assert.deepEqual(expandGlob(join(d, 's*', '*')), [join(d, 'sub/c.png'), join(d, 'sub/e.txt')]);
  assert.deepEqual(expandGlob(join(d, '*.webp')), []);
});

test('expandInputs: files as given, folders → their images (not recursive) with a note for the rest', () => {
  const d = tree([
    'album/a.png',
    'album/B.JPG',
    'album/notes.txt',
    'album/a.immunized.png',
    'album/a.immunized.json',
    'album/sub/c.png',
    'single.tif',
  ]);
  const r = expandInputs([join(d, 'album'), join(d, 'single.tif'), join(d, 'album', 'a.png')]);
  assert.deepEqual(
    r.files,
    [join(d, 'album/B.JPG'), join(d, 'album/a.png'), join(d, 'single.tif')],
    'sorted per folder, de-duplicated',
  );
  assert.equal(r.notes.length, 1);
  assert.match(r.notes[0]!, /album: skipped 1 non-image file \(notes\.txt\) and 2 earlier immunize outputs/);
});

test('expandInputs: a glob filters non-images too; errors name what is wrong', () => {
  const d = tree(['p/x.png', 'p/y.md', 'empty/readme']);
  const r = expandInputs([join(d, 'p', '*')]);
  assert.deepEqual(r.files, [join(d, 'p/x.png')]);
  assert.match(r.notes[0]!, /skipped 1 non-image file \(y\.md\)/);
  assert.throws(() => expandInputs([join(d, 'missing.png')]), /input image not found: .*missing\.png/);
  assert.throws(() => expandInputs([join(d, 'p', '*.gif')]), /no files match/);
  assert.throws(() => expandInputs([join(d, 'p', '*.md')]), /matches no images/);
  assert.throws(() => expandInputs([join(d, 'empty')]), /the folder has no images/);
});

test('names', () => {
  assert.ok(isImageName('a.JPEG') && isImageName('b.webp') && !isImageName('c.txt') && !isImageName('png'));
  assert.ok(
    isImmunizeOutput('x.immunized.png') && isImmunizeOutput('x.immunized.json') && !isImmunizeOutput('immunized.png'),
  );
});
