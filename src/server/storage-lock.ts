/**
 * Who may use a storage directory. An embedded `immunize serve` runs every open job it finds
 * there, so it must be alone on it: it holds `owner.lock` exclusively. In Redis mode any number of
 * API and worker processes share one storage (docs/service.md) and BullMQ decides who runs what;
 * each of them holds a member file `members/<pid>@<host>.lock`, and an embedded server and they
 * refuse to start beside each other.
 *
 * A lock file holds { pid, host, start }. It is stale when its process is gone: on this host, its
 * pid is dead or now belongs to a later process (another start time in /proc), so a server killed
 * with SIGKILL does not block its restart. A process on another host cannot be asked: its holder
 * touches the file every LOCK_REFRESH_MS, and a file from another host left untouched for
 * FOREIGN_STALE_MS is stale (a container rescheduled under a new host name takes its storage back).
 * Lock files are created with link(2), atomic also on NFS: a reader never sees half of one.
 */
import {
  linkSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmdirSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { ImmunizeError } from '../errors.js';

export type LockMode = 'exclusive' | 'shared';

/** How often a holder touches its lock file, so that other hosts can tell it is alive. */
export const LOCK_REFRESH_MS = 15_000;
/** A lock file of another host untouched this long is stale (hosts' clocks may differ by less). */
export const FOREIGN_STALE_MS = 120_000;

export interface LockHolder {
  pid: number;
  host: string;
  /** The process's start time (/proc/PID/stat field 22), null where /proc is absent. */
  start: string | null;
  mode: LockMode;
  since: string;
  /** When the file was last touched (its mtime, ms), as read; absent where it was not read from a file. */
  touchedMs?: number;
}

/** Another process uses the storage in a way that excludes this one. */
export class StorageLockedError extends ImmunizeError {
  constructor(message: string) {
    super('E_STORAGE_LOCKED', message);
    this.name = 'StorageLockedError';
  }
}

export interface StorageLock {
  readonly file: string;
  /** Removes the lock file if it is still this process's (also done at process exit). */
  release(): void;
}

/**
 * Takes the storage at `root` for this process: 'exclusive' for an embedded server, 'shared' for
 * the processes of a Redis deployment. Throws StorageLockedError, having changed nothing, when a
 * live process holds it in a way that excludes `mode`.
 */
export function lockStorage(root: string, mode: LockMode): StorageLock {
  mkdirSync(root, { recursive: true });
  const owner = join(root, 'owner.lock');
  const members = join(root, 'members');
  const me = JSON.stringify({
    pid: process.pid,
    host: hostname(),
    start: processStart(process.pid),
    mode,
    since: new Date().toISOString(),
  } satisfies LockHolder);
  // Each mode writes its own file first and then looks for the other's, so of two processes
  // starting at once at least one sees the other.
  let mine: string;
  if (mode === 'exclusive') {
    const holder = acquire(owner, me);
    if (holder !== null) throw new StorageLockedError(refusal(root, owner, holder));
    mine = owner;
    const member = liveMember(members);
    if (member !== null) {
      releaseFile(owner, me);
      throw new StorageLockedError(refusal(root, member.file, member.holder));
    }
  } else {
    mkdirSync(members, { recursive: true });
    mine = join(members, `${process.pid}@${hostname().replace(/[^A-Za-z0-9.-]/g, '_')}.lock`);
    writeFileSync(`${mine}.tmp`, me);
    renameSync(`${mine}.tmp`, mine);
    const holder = readHolder(owner);
    if (holder !== null && !gone(holder)) {
      releaseFile(mine, me);
      try {
        rmdirSync(members); // only if empty: leave the storage as it was
      } catch {
        /* other members */
      }
      throw new StorageLockedError(refusal(root, owner, holder));
    }
  }
  const refresh = setInterval(() => {
    const now = new Date();
    try {
      utimesSync(mine, now, now);
    } catch {
      /* storage briefly unreachable: the next tick tries again */
    }
  }, LOCK_REFRESH_MS).unref();
  const release = (): void => {
    clearInterval(refresh);
    process.off('exit', release);
    releaseFile(mine, me);
  };
  process.on('exit', release);
  return { file: mine, release };
}

/**
 * Whether the process that wrote `holder` has certainly ended. On another host: only when its lock
 * file went untouched for FOREIGN_STALE_MS (false when there is no file to tell).
 */
export function gone(holder: Pick<LockHolder, 'pid' | 'host' | 'start' | 'touchedMs'>): boolean {
  if (holder.host !== hostname())
    return holder.touchedMs !== undefined && Date.now() - holder.touchedMs > FOREIGN_STALE_MS;
  // Our own pid in a lock we have not taken yet: a previous process of a restarted container.
  if (holder.pid === process.pid) return true;
  try {
    process.kill(holder.pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ESRCH') return true;
  }
  const start = processStart(holder.pid);
  return holder.start !== null && start !== null && start !== holder.start;
}

/** Creates `file` holding `me`, breaking a stale lock; returns the live holder when it cannot. */
function acquire(file: string, me: string): LockHolder | null {
  for (let attempt = 0; attempt < 3; attempt++) {
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, me);
    try {
      linkSync(tmp, file);
      return null;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    } finally {
      rmSync(tmp, { force: true });
    }
    const text = readText(file);
    if (text === null) continue; // released meanwhile
    const holder = parseHolder(text, touched(file));
    if (holder !== null && !gone(holder)) return holder;
    // Stale: move it aside under a name only this process uses, and check that the file moved is
    // the stale one — another process may have broken it and taken the lock in between.
    const aside = `${file}.${process.pid}.stale`;
    try {
      renameSync(file, aside);
    } catch {
      continue;
    }
    const moved = readText(aside);
    if (moved !== text) {
      try {
        linkSync(aside, file); // put the newer lock back
      } catch {
        /* a third process holds it now */
      }
      rmSync(aside, { force: true });
      const other = moved === null ? null : parseHolder(moved);
      if (other !== null) return other;
      continue;
    }
    rmSync(aside, { force: true });
  }
  return readHolder(file) ?? { pid: 0, host: '?', start: null, mode: 'exclusive', since: '?' };
}

/** A live member of a Redis deployment; members whose process ended on this host are removed. */
function liveMember(dir: string): { file: string; holder: LockHolder } | null {
  let names: string[] = [];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith('.lock'));
  } catch {
    return null;
  }
  for (const n of names) {
    const file = join(dir, n);
    const holder = readHolder(file);
    if (holder === null) continue;
    if (!gone(holder)) return { file, holder };
    rmSync(file, { force: true });
  }
  return null;
}

function refusal(root: string, file: string, h: LockHolder): string {
  const who = `${h.mode === 'exclusive' ? 'an embedded immunize serve' : 'a process of a Redis deployment (serve --redis or worker)'} (pid ${h.pid} on ${h.host}, since ${h.since})`;
  const why =
    h.mode === 'exclusive'
      ? 'an embedded server runs every job in its storage, so it must be the only process on it'
      : 'an embedded server would run the jobs that the Redis workers run';
  const foreign =
    h.host === hostname()
      ? ''
      : `; a lock from another host is stale once unrefreshed for ${FOREIGN_STALE_MS / 60_000} min (or delete ${file} once that process is known to be gone)`;
  return `storage ${root} is in use by ${who}: ${why}. Stop that process or choose another --storage${foreign}`;
}

function releaseFile(file: string, me: string): void {
  if (readText(file) === me) rmSync(file, { force: true });
}

function readText(file: string): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

function readHolder(file: string): LockHolder | null {
  const text = readText(file);
  return text === null ? null : parseHolder(text, touched(file));
}

function parseHolder(text: string, touchedMs?: number): LockHolder | null {
  try {
    const h = JSON.parse(text) as LockHolder;
    if (!Number.isSafeInteger(h.pid) || typeof h.host !== 'string') return null;
    return touchedMs === undefined ? h : { ...h, touchedMs };
  } catch {
    return null;
  }
}

function touched(file: string): number | undefined {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return undefined;
  }
}

/** A process's start time in clock ticks since boot, or null where /proc is absent. */
function processStart(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) state ppid …": comm may hold spaces, so count fields after the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}
