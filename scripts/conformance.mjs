// npm run conformance -- [DIR] [--case NAME[,NAME]]: runs the golden cases of DIR/golden
// (default: $IMMUNIZE_SHARED, else ../shared) with node's test runner; non-zero exit on failure.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const args = process.argv.slice(2);
const env = { ...process.env };
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--case') env.IMMUNIZE_CASES = args[++i] ?? '';
  else if (!args[i].startsWith('-')) env.IMMUNIZE_SHARED = resolve(args[i]);
}
const dir = env.IMMUNIZE_SHARED ?? resolve(root, '..', 'shared');
if (!existsSync(join(dir, 'golden'))) {
  console.error(
    `conformance: ${join(dir, 'golden')} does not exist (pass the folder that holds golden/, or set IMMUNIZE_SHARED)`,
  );
  process.exit(2);
}
env.IMMUNIZE_SHARED = dir;
const r = spawnSync(
  process.execPath,
  ['--expose-gc', '--test', '--test-reporter=spec', join(root, 'dist', 'test', 'golden', 'conformance.test.js')],
  { stdio: 'inherit', env, cwd: root },
);
process.exit(r.status ?? 1);
