/**
 * The layer map of DESIGN.md §1 as a checked rule: data flows torch → nn/io → models →
 * schedulers/pipelines → attacks/purify/metrics → robustness → protect → eval → cli/server, and a
 * module never imports from a layer above its own. The command line and the service are both
 * doors at the top; the service never imports the command line (the CLI starts the service).
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../helpers/shared.js';

/** Folder under src/ → its layer; files directly in src/ (errors, numbers, version, index) are the base. */
export const LAYERS: Record<string, number> = {
  '': 0, torch: 0,
  nn: 1, io: 1,
  models: 2,
  schedulers: 3, pipelines: 3,
  attacks: 4, purify: 4, metrics: 4,
  robustness: 5,
  protect: 6,
  eval: 7,
  cli: 8, server: 8,
};
/** The root index re-exports the whole library: it is the top, like a door. */
const TOP_FILES = new Set(['index.ts']);

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? sources(p) : n.endsWith('.ts') ? [p] : [];
  });
}

/** Relative imports of a file (static `from '…'` and dynamic `import('…')`), as paths under src/. */
export function importsOf(file: string, text: string, src: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/(?:from\s+|import\s*\(\s*)'(\.{1,2}\/[^']+)'/g)) out.push(relative(src, resolve(dirname(file), m[1]!)));
  return out;
}

export function layerOf(pathUnderSrc: string): { folder: string; layer: number } {
  const parts = pathUnderSrc.split('/');
  const folder = parts.length === 1 ? '' : parts[0]!;
  const layer = LAYERS[folder];
  if (layer === undefined) throw new Error(`src/${pathUnderSrc}: the folder '${folder}' has no layer in LAYERS (add it to DESIGN.md's map and here)`);
  return { folder, layer: parts.length === 1 && TOP_FILES.has(parts[0]!) ? 99 : layer };
}

/** Every import in src/ that runs up the layers, as "from → to" lines. */
export function layerViolations(src: string): string[] {
  const bad: string[] = [];
  for (const file of sources(src)) {
    const here = layerOf(relative(src, file));
    for (const target of importsOf(file, readFileSync(file, 'utf8'), src)) {
      if (target.startsWith('..')) {
        bad.push(`src/${relative(src, file)} imports ${target} (outside src/)`);
        continue;
      }
      const there = layerOf(target.replace(/\.js$/, '.ts'));
      const upward = there.layer > here.layer;
      const serverToCli = here.folder === 'server' && there.folder === 'cli';
      if (upward || serverToCli) bad.push(`src/${relative(src, file)} (${here.folder || 'src'}) imports src/${target} (${there.folder})`);
    }
  }
  return bad;
}

test('no module in src/ imports from a layer above its own (DESIGN.md §1), and the service never imports the CLI', () => {
  const bad = layerViolations(join(repoRoot, 'src'));
  assert.deepEqual(bad, [], `imports that run back up the layers:\n${bad.join('\n')}`);
});

test('the layer check catches upward imports, static and dynamic, and the service importing the CLI', () => {
  const src = join(mkdtempSync(join(tmpdir(), 'immunize-layers-')), 'src');
  const files: Record<string, string> = {
    'models/x.ts': "import { protect } from '../cli/protect.js';\nconst m = await import('../protect/index.js');\nimport { t } from '../torch/t.js';",
    'server/api.ts': "import { UsageError } from '../cli/args.js';",
    'cli/serve.ts': "import { buildApi } from '../server/api.js';",
    'torch/t.ts': 'export const t = 1;',
  };
  for (const [p, text] of Object.entries(files)) {
    mkdirSync(dirname(join(src, p)), { recursive: true });
    writeFileSync(join(src, p), text);
  }
  assert.deepEqual(layerViolations(src).sort(), [
    'src/models/x.ts (models) imports src/cli/protect.js (cli)',
    'src/models/x.ts (models) imports src/protect/index.js (protect)',
    'src/server/api.ts (server) imports src/cli/args.js (cli)',
  ]);
});
