/**
 * The evaluation's work folder: every artifact (resized source, immunized image, purified image,
 * edit, metric values, CLIP scores, Inception features) is stored under a key that hashes what
 * determines it — the content hashes of its inputs and every parameter — so a re-run reuses
 * whatever is still valid and recomputes only what changed, and an interrupted run resumes.
 * Images are PNG (lossless, 8-bit as anyone would save them); each has a JSON companion written
 * after it, whose presence marks the artifact complete.
 */
import { writeFileAtomic as writeAtomic } from '../io/atomic.js';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';

/** JSON with sorted keys, so equal parameters hash equally however they were written. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    return `{${Object.keys(v)
      .sort()
      .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  if (typeof v === 'number' && !Number.isFinite(v)) return JSON.stringify(String(v));
  return JSON.stringify(v);
}

export function sha256(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

export function sha256File(path: string): string {
  return sha256(readFileSync(path));
}

/**
 * What identifies a model without reading its weights: a hub repo id as written; for a local
 * file or folder, every file's relative path, size and modification time (hashing gigabytes of
 * weights on every run would cost more than some edits).
 */
export function modelFingerprint(spec: string | null): string | null {
  if (spec === null) return null;
  if (!existsSync(spec)) return `hub:${spec}`;
  const root = resolve(spec);
  const entries: string[] = [];
  const walk = (p: string): void => {
    const s = statSync(p);
    if (s.isDirectory()) {
      for (const name of readdirSync(p).sort()) walk(join(p, name));
    } else {
      entries.push(`${relative(root, p)}\t${s.size}\t${Math.round(s.mtimeMs)}`);
    }
  };
  walk(root);
  return `local:${sha256(entries.join('\n')).slice(0, 32)}`;
}

export type ArtifactKind = 'source' | 'immunize' | 'purify' | 'edit' | 'metrics' | 'clip' | 'features';

export class WorkDir {
  readonly computed: Record<string, number> = {};
  readonly cached: Record<string, number> = {};

  constructor(
    readonly root: string,
    readonly force = false,
  ) {}

  /** A key for an artifact of `kind` determined by `parts`. */
  key(kind: ArtifactKind, parts: Record<string, unknown>): string {
    return `${kind}-${sha256(canonicalJson({ kind, ...parts })).slice(0, 32)}`;
  }

  png(key: string): string {
    return join(this.root, key.split('-')[0]!, `${key}.png`);
  }

  json(key: string): string {
    return join(this.root, key.split('-')[0]!, `${key}.json`);
  }

  /** The stored JSON of a complete artifact, or null (always null with `force`, so everything is redone once). */
  lookup<T>(key: string, withImage: boolean): T | null {
    if (this.force && !this.forced.has(key)) return null;
    const j = this.json(key);
    if (!existsSync(j) || (withImage && !existsSync(this.png(key)))) return null;
    try {
      return JSON.parse(readFileSync(j, 'utf8')) as T;
    } catch {
      return null;
    }
  }

  private readonly forced = new Set<string>();

  /** Stores an artifact (image first, its JSON last: the completion marker). */
  store(key: string, meta: object, png?: Uint8Array): void {
    if (png) writeAtomic(this.png(key), png);
    writeAtomic(this.json(key), JSON.stringify(meta) + '\n');
    this.forced.add(key);
  }

  count(kind: ArtifactKind, cached: boolean): void {
    const t = cached ? this.cached : this.computed;
    t[kind] = (t[kind] ?? 0) + 1;
  }
}
