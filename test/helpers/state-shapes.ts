// Expected parameter shapes of a model, by checkpoint key, from test/fixtures/state-shapes/NAME.json
// (a sample of keys per model, written from the reference checkpoints' key lists).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './shared.js';

export function assertStateShapes(shapes: Map<string, readonly number[]>, fixture: string): void {
  const file = join(repoRoot, 'test', 'fixtures', 'state-shapes', `${fixture}.json`);
  const expected = JSON.parse(readFileSync(file, 'utf8')) as Record<string, number[]>;
  assert.ok(Object.keys(expected).length > 0, `${file} lists no keys`);
  for (const [k, s] of Object.entries(expected)) assert.deepEqual(shapes.get(k), s, k);
}
