/**
 * Atomic file output, the one home of "write a temporary, rename": a reader (another process, a
 * resumable batch, a shared mount) sees the old file or the new one, never half of one.
 * `writeAllOrNothing` extends it to the files of one result: each is written to a hidden temporary
 * name in its final folder and renamed into place only when all of them were written, so an
 * interrupted or failed run never leaves a half-written image or a sidecar without its image. On
 * failure the temporaries (and folders this call created) are removed.
 */
import { mkdirSync, readdirSync, renameSync, rmdirSync, unlinkSync, writeFileSync, existsSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { ImmunizeError } from '../errors.js';

export interface OutputFile {
  path: string;
  data: string | Uint8Array;
}

let counter = 0;

/** Hidden, next to the target (same filesystem, so the rename is atomic), unique per process and call. */
function tmpName(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${++counter}.tmp`);
}

/** Writes one file atomically, creating its folder; the temporary is removed when writing fails. */
export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = tmpName(path);
  try {
    writeFileSync(tmp, data);
    renameSync(tmp, path);
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {
      /* not written */
    }
    throw e;
  }
}

/** Creates `dir` and its missing parents; returns the folders it created (deepest last). */
function makeDirs(dir: string): string[] {
  const missing: string[] = [];
  for (let d = dir; !existsSync(d); d = dirname(d)) {
    missing.unshift(d);
    if (dirname(d) === d) break;
  }
  if (missing.length > 0) mkdirSync(dir, { recursive: true });
  return missing;
}

function removeEmptyDirs(created: string[]): void {
  for (const d of [...created].reverse()) {
    try {
      if (readdirSync(d).length === 0) rmdirSync(d);
    } catch {
      /* already gone or not empty: leave it */
    }
  }
}

/**
 * Writes the files in order (the last one — the sidecar — is the "complete" marker that resumable
 * batches look for). Errors become one-line ImmunizeErrors (E_WRITE).
 */
export function writeAllOrNothing(files: readonly OutputFile[]): void {
  const created: string[] = [];
  const temps: string[] = [];
  const placed: string[] = [];
  try {
    for (const f of files) {
      created.push(...makeDirs(dirname(f.path)));
      const t = tmpName(f.path);
      temps.push(t);
      writeFileSync(t, f.data);
    }
    files.forEach((f, i) => {
      renameSync(temps[i]!, f.path);
      placed.push(f.path);
    });
  } catch (e) {
    for (const t of temps)
      try {
        unlinkSync(t);
      } catch {
        /* not written */
      }
    // A rename failed half-way: the placed files belong to a result that is not complete.
    for (const p of placed)
      try {
        unlinkSync(p);
      } catch {
        /* gone */
      }
    removeEmptyDirs(created);
    const err = e as NodeJS.ErrnoException;
    throw new ImmunizeError(
      'E_WRITE',
      `cannot write ${err.path ?? files[0]?.path ?? 'output'}: ${err.code ?? err.message}`,
      { cause: e },
    );
  }
}
