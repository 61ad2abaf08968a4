// Temporary folders that a test file removes when it ends.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';

const made: string[] = [];
let registered = false;

/** A new folder under the system's temporary folder, removed after this test file's tests. */
export function tempDir(prefix: string): string {
  if (!registered) {
    registered = true;
    after(() => {
      for (const d of made) rmSync(d, { recursive: true, force: true });
    });
  }
  const d = mkdtempSync(join(tmpdir(), `immunize-${prefix}-`));
  made.push(d);
  return d;
}
