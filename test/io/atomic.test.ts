// All-or-nothing output writing: no partial files after a failure.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { writeAllOrNothing } from '../../src/io/atomic.js';
import { ImmunizeError } from '../../src/errors.js';
import { tempDir } from '../helpers/temp.js';

/** A write of `name` in `d`, then of blocker/a.json, which fails where `d`/blocker is a file. */
const writeThenBlocked = (d: string, name: string, data: string) => (): void =>
  writeAllOrNothing([
    { path: join(d, name), data },
    { path: join(d, 'blocker/a.json'), data: '{}' },
  ]);

test('writes every file, creating folders, with no temporaries left', () => {
  const d = tempDir('out');
  writeAllOrNothing([
    { path: join(d, 'new/a.png'), data: Buffer.from([1, 2]) },
    { path: join(d, 'new/a.json'), data: '{}' },
  ]);
  assert.deepEqual(readdirSync(join(d, 'new')).sort(), ['a.json', 'a.png']);
  assert.equal(readFileSync(join(d, 'new/a.json'), 'utf8'), '{}');
});

test('a failure removes what was written and the folders it created; the error is one line', () => {
  const d = tempDir('out');
  writeFileSync(join(d, 'blocker'), 'a file where a folder should be');
  assert.throws(
    writeThenBlocked(d, 'made/a.png', 'x'),
    (e: unknown) =>
      e instanceof ImmunizeError &&
      e.code === 'E_WRITE' &&
      /cannot write .*blocker.*ENOTDIR/.test(e.message) &&
      !e.message.includes('\n'),
  );
  assert.deepEqual(readdirSync(d), ['blocker'], 'no temporaries, no half result, no empty folder');
  assert.ok(!existsSync(join(d, 'made')));
});

test('an existing output is replaced only when the new one is complete', () => {
  const d = tempDir('out');
  writeFileSync(join(d, 'a.png'), 'old');
  writeFileSync(join(d, 'blocker'), '');
  assert.throws(writeThenBlocked(d, 'a.png', 'new'), ImmunizeError);
  assert.equal(readFileSync(join(d, 'a.png'), 'utf8'), 'old');
});
