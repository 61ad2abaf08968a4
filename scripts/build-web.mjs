// Builds the web page (web/) into dist/web/: TypeScript to browser ES modules with the repo's
// tsc (no bundler: a handful of modules, loaded from the same origin), plus the HTML and CSS as
// they are. `immunize serve` serves dist/web at `/` (src/server/static-web.ts).
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const root = fileURLToPath(new URL('..', import.meta.url));
const out = join(root, 'dist', 'web');
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const r = spawnSync(process.execPath, [tsc, '-p', join(root, 'web', 'tsconfig.json')], { stdio: 'inherit', cwd: root });
if (r.status !== 0) {
  console.error('build-web: tsc failed');
  process.exit(r.status ?? 1);
}
for (const f of ['index.html', 'styles.css']) copyFileSync(join(root, 'web', f), join(out, f));
console.log(`build-web: wrote ${out}`);
