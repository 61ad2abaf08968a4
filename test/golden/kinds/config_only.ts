// kind "config_only": a real config to load; nothing to compute. Every JSON file in the case
// folder must parse as an object with a _class_name.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CaseRunner } from './types.js';

const run: CaseRunner = async ({ dir }, t) => {
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.json') && n !== 'case.json')) {
    await t.test(f, () => {
      const v = JSON.parse(readFileSync(join(dir, f), 'utf8')) as Record<string, unknown>;
      assert.equal(typeof v['_class_name'], 'string', `${f}: _class_name`);
    });
  }
};
export default run;
