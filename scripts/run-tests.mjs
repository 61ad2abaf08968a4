// Runs every compiled test file (dist/test/**/*.test.js) with node's built-in test runner.
// Usage: node scripts/run-tests.mjs [filter...]   (filters are substrings of the file path)
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync, existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const testDir = join(root, 'dist', 'test');
if (!existsSync(testDir)) {
  console.error('dist/test is missing: run `npm run build:ts` first (npm test does it).');
  process.exit(1);
}
function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? walk(p) : name.endsWith('.test.js') ? [p] : [];
  });
}
const filters = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const files = walk(testDir)
  .filter((f) => filters.length === 0 || filters.some((s) => relative(root, f).includes(s)))
  .sort();
if (files.length === 0) {
  console.error(`no test files match ${filters.join(' ')}`);
  process.exit(1);
}
const reporter = process.env.CI ? ['--test-reporter=spec'] : [];
// One file at a time keeps memory tests honest (no other test allocating beside them) on 2 cores.
const r = spawnSync(process.execPath, ['--expose-gc', '--test', '--test-concurrency=1', ...reporter, ...files], {
  stdio: 'inherit',
  cwd: root,
  // Tests do not add their step times to this machine's record (src/protect/step-times.ts); the
  // tests of the record name their own file.
  env: { OMP_WAIT_POLICY: 'passive', IMMUNIZE_STEP_TIMES: 'off', ...process.env },
});
process.exit(r.status ?? 1);
