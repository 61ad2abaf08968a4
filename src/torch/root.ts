/**
 * The repository (package) root: the nearest folder above this module with a package.json. Works
 * from src/ and from the compiled copy in dist/src/; test/ and bench/ helpers use it too.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(): string {
  const here = fileURLToPath(import.meta.url);
  let dir = dirname(here);
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('immunize: package.json not found above ' + here);
    dir = up;
  }
  return dir;
}

export const repoRoot: string = findRoot();
