/**
 * API keys and rate limits. Keys are never stored in clear: the server holds SHA-256 hashes
 * (`sha256:<hex>`), from IMMUNIZE_API_KEYS (comma-separated `NAME:sha256:<hex>`) and/or a file
 * (one `NAME sha256:<hex>` per line, `#` comments). A plain hash suits API keys because they are
 * random 256-bit secrets (`immunize serve --new-key` makes one), not guessable passwords: there is
 * nothing for a slow hash to protect against. A key's owner id is its NAME.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { UsageError } from '../errors.js';

export interface ApiKey {
  name: string;
  hash: Buffer;
}

export function hashKey(key: string): string {
  return `sha256:${createHash('sha256').update(key, 'utf8').digest('hex')}`;
}

export function newKey(): string {
  return `imm_${randomBytes(32).toString('base64url')}`;
}

function parseEntry(name: string, hash: string, where: string): ApiKey {
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(name))
    throw new UsageError(`${where}: key name '${name}' must be 1–64 letters, digits, . _ -`);
  const m = /^sha256:([0-9a-f]{64})$/.exec(hash);
  if (m === null)
    throw new UsageError(
      `${where}: the key '${name}' must be given as sha256:<64 hex digits> (its hash, never the key itself; immunize serve --hash-key prints it)`,
    );
  return { name, hash: Buffer.from(m[1]!, 'hex') };
}

export function loadKeys(o: { env?: string; file?: string }): ApiKey[] {
  const keys: ApiKey[] = [];
  for (const item of (o.env ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const i = item.indexOf(':');
    if (i <= 0)
      throw new UsageError(
        `IMMUNIZE_API_KEYS: expected NAME:sha256:<hex> entries but received '${item.slice(0, 20)}…'`,
      );
    keys.push(parseEntry(item.slice(0, i), item.slice(i + 1), 'IMMUNIZE_API_KEYS'));
  }
  if (o.file !== undefined) {
    let text: string;
    try {
      text = readFileSync(o.file, 'utf8');
    } catch (e) {
      throw new UsageError(
        `--keys-file: cannot read ${o.file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
      );
    }
    for (const [n, line] of text.split('\n').entries()) {
      const l = line.replace(/#.*/, '').trim();
      if (l === '') continue;
      const [name, hash, extra] = l.split(/\s+/);
      if (hash === undefined || extra !== undefined)
        throw new UsageError(`${o.file}:${n + 1}: expected 'NAME sha256:<hex>'`);
      keys.push(parseEntry(name!, hash, `${o.file}:${n + 1}`));
    }
  }
  const names = new Set<string>();
  for (const k of keys) {
    if (names.has(k.name)) throw new UsageError(`API key name '${k.name}' is given twice`);
    names.add(k.name);
  }
  return keys;
}

/** The key's name, or null. Compares every hash in constant time. */
export function authenticate(keys: readonly ApiKey[], presented: string): string | null {
  const h = createHash('sha256').update(presented, 'utf8').digest();
  let found: string | null = null;
  for (const k of keys) if (timingSafeEqual(k.hash, h)) found = k.name;
  return found;
}

/**
 * Token buckets per key and class: `perMinute` requests refill continuously, bursts up to the
 * same number. In one process; with several API processes each enforces it (see docs/service.md).
 */
export class RateLimiter {
  private buckets = new Map<string, { tokens: number; at: number }>();

  constructor(private readonly perMinute: number) {}

  /** 0 when allowed (and counted), else the seconds to wait. */
  take(key: string, now = Date.now()): number {
    if (this.perMinute <= 0) return 0;
    const b = this.buckets.get(key) ?? { tokens: this.perMinute, at: now };
    b.tokens = Math.min(this.perMinute, b.tokens + ((now - b.at) / 60_000) * this.perMinute);
    b.at = now;
    this.buckets.set(key, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil(((1 - b.tokens) * 60) / this.perMinute));
  }
}
