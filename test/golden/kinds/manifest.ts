// kind "manifest": the model built from a real published config.json must have exactly the
// keys and shapes listed in manifest.json (its state dict), without any weights.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildFromConfig } from '../models.js';
import type { CaseRunner } from './types.js';

const run: CaseRunner = async ({ dir, spec }, t) => {
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  const manifest = JSON.parse(readFileSync(join(dir, String(spec.manifest ?? 'manifest.json')), 'utf8')) as {
    keys: [string, number[], string][];
    parameter_count?: number;
  };
  const model = buildFromConfig(config);
  if (typeof model === 'string') {
    t.skip(model);
    return;
  }
  const mine = model.stateShapes();
  const want = new Map(manifest.keys.map(([k, s]) => [k, s]));
  const missing = [...want.keys()].filter((k) => !mine.has(k));
  const extra = [...mine.keys()].filter((k) => !want.has(k));
  assert.deepEqual(
    { missing: missing.slice(0, 20), extra: extra.slice(0, 20) },
    { missing: [], extra: [] },
    `keys differ: ${missing.length} missing, ${extra.length} unexpected`,
  );
  const wrong = [...want]
    .filter(([k, s]) => JSON.stringify(mine.get(k)) !== JSON.stringify(s))
    .map(([k, s]) => `${k}: expected [${s.join(', ')}], built [${mine.get(k)?.join(', ')}]`);
  assert.deepEqual(wrong.slice(0, 20), [], `${wrong.length} shapes differ`);
  if (manifest.parameter_count !== undefined)
    assert.equal(model.parameterCount(), manifest.parameter_count, 'parameter count');
};
export default run;
