/**
 * The job store: one folder per job under `<root>/jobs/<id>/` holding the record (`record.json`),
 * the upload (`input.<ext>`, `mask.<ext>`), the result (`result.png` + `result.json`, the sidecar
 * of `immunize protect`) and a `cancel` marker. Every path is built from a job id that matched
 * ID_RE and from fixed names — never from user input — and records are replaced atomically
 * (write a temporary, rename), so readers on other processes or machines (a shared mount) see
 * either the old or the new record, never half of one.
 */
import { readFile, readdir } from 'node:fs/promises';
import { writeFileAtomic } from '../io/atomic.js';
import type { ProtectRequest } from '../protect/index.js';
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
  accessSync,
  constants,
  openSync,
  closeSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';

export const ID_RE = /^[0-9a-f]{32}$/;

export type JobKind = 'immunization' | 'check' | 'edit';
export type JobStatus = 'queued' | 'running' | 'completed' | 'failed' | 'canceled';
export const TERMINAL: ReadonlySet<JobStatus> = new Set(['completed', 'failed', 'canceled']);

export interface JobProgress {
  step: number;
  steps: number;
  loss: number | null;
  fraction: number;
  etaMs: number | null;
}

/** The record on disk. `owner` and `completions` never leave the server (see publicRecord in api.ts). */
export interface JobRecord {
  id: string;
  kind: JobKind;
  /** Key id (a prefix of the key's hash) of the key that created it. */
  owner: string;
  status: JobStatus;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  expiresAt: string | null;
  attempts: number;
  /** host:pid of the process that ran (or runs) the last attempt. */
  worker?: string;
  /** How many times a worker marked it completed: exactly one for every completed job. */
  completions: number;
  /** Validated options, normalized for display (immunizations); { purifications } for checks. */
  options: Record<string, unknown>;
  /** The resolved protect request (immunizations; src/protect), the model as its id; the runner runs exactly this. */
  parameters?: ProtectRequest;
  input: {
    width: number;
    height: number;
    format: string;
    bytes: number;
    sha256: string;
    file: string;
    mask: string | null;
  } | null;
  /** The immunization a check is about. */
  parent: string | null;
  progress: JobProgress | null;
  error: { code: string; message: string } | null;
  result: Record<string, unknown> | null;
}

/** A new job, queued now, with nothing run yet. */
export function newJobRecord(kind: JobKind, owner: string): JobRecord {
  return {
    id: Storage.newId(),
    kind,
    owner,
    status: 'queued',
    createdAt: new Date().toISOString(),
    startedAt: null,
    finishedAt: null,
    expiresAt: null,
    attempts: 0,
    completions: 0,
    options: {},
    input: null,
    parent: null,
    progress: null,
    error: null,
    result: null,
  };
}

export class Storage {
  readonly root: string;
  readonly jobsDir: string;
  private secret: Buffer;

  constructor(root: string) {
    this.root = root;
    this.jobsDir = join(root, 'jobs');
    mkdirSync(this.jobsDir, { recursive: true });
    this.secret = this.loadSecret();
  }

  /** The HMAC key for read tokens, shared by every process using this storage (created once). */
  private loadSecret(): Buffer {
    const p = join(this.root, 'secret');
    if (!existsSync(p)) {
      try {
        const fd = openSync(p, 'wx', 0o600);
        writeSync(fd, randomBytes(32).toString('hex'));
        closeSync(fd);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
    }
    for (let i = 0; i < 50; i++) {
      const s = readFileSync(p, 'utf8').trim();
      if (s.length === 64) return Buffer.from(s, 'hex');
    }
    throw new Error(`storage secret ${p} is unreadable or truncated`);
  }

  static newId(): string {
    return randomBytes(16).toString('hex');
  }

  dir(id: string): string {
    if (!ID_RE.test(id)) throw new Error(`invalid job id ${JSON.stringify(id)}`);
    return join(this.jobsDir, id);
  }

  file(id: string, name: 'record.json' | 'result.png' | 'result.json' | 'cancel' | string): string {
    if (!/^[a-z]+(\.[a-z0-9]+)?$/.test(name)) throw new Error(`invalid job file name ${JSON.stringify(name)}`);
    return join(this.dir(id), name);
  }

  /** Creates the job folder with its files and record; the record is written last (it makes the job exist). */
  create(record: JobRecord, files: { name: string; data: Buffer }[]): void {
    const d = this.dir(record.id);
    mkdirSync(d, { recursive: true });
    for (const f of files) writeFileSync(this.file(record.id, f.name), f.data);
    this.write(record);
  }

  write(record: JobRecord): void {
    writeFileAtomic(this.file(record.id, 'record.json'), JSON.stringify(record, null, 2) + '\n');
  }

  read(id: string): JobRecord | null {
    if (!ID_RE.test(id)) return null;
    try {
      return JSON.parse(readFileSync(this.file(id, 'record.json'), 'utf8')) as JobRecord;
    } catch {
      return null;
    }
  }

  /** Read-modify-write of a record; `fn` returns null to leave it unchanged. Returns the record as written (or read). */
  update(id: string, fn: (r: JobRecord) => JobRecord | null): JobRecord | null {
    const r = this.read(id);
    if (r === null) return null;
    const next = fn(r);
    if (next === null) return r;
    this.write(next);
    return next;
  }

  ids(): string[] {
    try {
      return readdirSync(this.jobsDir).filter((n) => ID_RE.test(n));
    } catch {
      return [];
    }
  }

  all(): JobRecord[] {
    const out: JobRecord[] = [];
    for (const id of this.ids()) {
      const r = this.read(id);
      if (r !== null) out.push(r);
    }
    return out;
  }

  /**
   * Every record, read without blocking the event loop: listing reads every job of every key, and
   * a burst of lists must not hold up other callers' requests (the reads go to libuv's pool in
   * batches, and each batch is parsed between other work).
   */
  async allAsync(): Promise<JobRecord[]> {
    let ids: string[];
    try {
      ids = (await readdir(this.jobsDir)).filter((n) => ID_RE.test(n));
    } catch {
      return [];
    }
    const out: JobRecord[] = [];
    for (let i = 0; i < ids.length; i += 64) {
      const batch = await Promise.all(
        ids.slice(i, i + 64).map((id) => readFile(this.file(id, 'record.json'), 'utf8').catch(() => null)),
      );
      for (const text of batch) {
        if (text === null) continue;
        try {
          out.push(JSON.parse(text) as JobRecord);
        } catch {
          // a record being replaced or removed right now: not listed this time
        }
      }
    }
    return out;
  }

  remove(id: string): void {
    rmSync(this.dir(id), { recursive: true, force: true });
  }

  requestCancel(id: string): void {
    writeFileSync(this.file(id, 'cancel'), new Date().toISOString());
  }

  cancelRequested(id: string): boolean {
    return existsSync(this.file(id, 'cancel'));
  }

  exists(id: string, name: string): boolean {
    return existsSync(this.file(id, name));
  }

  size(id: string, name: string): number {
    return statSync(this.file(id, name)).size;
  }

  writable(): boolean {
    try {
      accessSync(this.jobsDir, constants.W_OK);
      return true;
    } catch {
      return false;
    }
  }

  /** A read-only token for one job: HMAC(secret, id), so any API process sharing the storage can check it. */
  token(id: string): string {
    return createHmac('sha256', this.secret).update(`read:${id}`).digest('base64url');
  }

  checkToken(id: string, token: string): boolean {
    const want = Buffer.from(this.token(id));
    const got = Buffer.from(token);
    return want.length === got.length && timingSafeEqual(want, got);
  }

  /** Deletes jobs whose expiresAt has passed; returns how many. */
  sweep(now = Date.now()): number {
    let n = 0;
    for (const r of this.all()) {
      if (r.expiresAt !== null && Date.parse(r.expiresAt) <= now) {
        this.remove(r.id);
        n++;
      }
    }
    return n;
  }
}
