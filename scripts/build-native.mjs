// Builds the libtorch addon (build/Release/immunize_torch.node) with node-gyp.
// Runs on `npm install` and `npm run build`; incremental when build/ already exists.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findLibtorch } from './find-libtorch.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const found = findLibtorch();
if (found.error) {
  console.error(`\nimmunize: cannot build the native tensor engine.\n${found.error}\n`);
  process.exit(1);
}
console.error(`immunize: building the libtorch addon against ${found.source} (${found.libDir})`);

const require = createRequire(import.meta.url);
let gyp;
try {
  gyp = require.resolve('node-gyp/bin/node-gyp.js');
} catch {
  gyp = process.env.npm_config_node_gyp;
}
if (!gyp || !existsSync(gyp)) {
  console.error('immunize: node-gyp not found; run `npm install` first.');
  process.exit(1);
}
const jobs = ['-j', String(Math.max(1, (await import('node:os')).availableParallelism()))];
const steps = existsSync(join(root, 'build', 'Makefile')) ? ['build'] : ['configure', 'build'];
for (const step of steps) {
  const r = spawnSync(process.execPath, [gyp, step, ...(step === 'build' ? jobs : [])], {
    cwd: root,
    stdio: 'inherit',
  });
  if (r.status !== 0) {
    console.error(`immunize: node-gyp ${step} failed (exit ${r.status}).`);
    process.exit(r.status ?? 1);
  }
}
