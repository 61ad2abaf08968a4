// Where the read-only reference data lives: $IMMUNIZE_SHARED, else ../shared next to the repo.
// Nothing in it is copied into the repository; tests that need it skip with a reason when absent.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { repoRoot } from '../../src/torch/root.js';

/** Repository root (works from both test/ sources and their compiled copies in dist/test/). */
export { repoRoot };

export function sharedDir(): string | null {
  const dir = process.env['IMMUNIZE_SHARED']
    ? resolve(process.env['IMMUNIZE_SHARED'])
    : resolve(repoRoot, '..', 'shared');
  return existsSync(dir) ? dir : null;
}

/** Path inside the shared folder, or null (with the reason in `skipReason`) when it is absent. */
export function sharedPath(...parts: string[]): string | null {
  const dir = sharedDir();
  if (dir === null) return null;
  const p = join(dir, ...parts);
  return existsSync(p) ? p : null;
}

export function skipReason(...parts: string[]): string {
  return `shared data not found: ${join(process.env['IMMUNIZE_SHARED'] ?? '../shared', ...parts)} (set IMMUNIZE_SHARED)`;
}
