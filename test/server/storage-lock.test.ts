/**
 * The storage lock (src/server/storage-lock.ts) in this process, with a `sleep` child as the other
 * live process: who excludes whom, and when a lock left behind is stale.
 */
import { mock, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import {
  FOREIGN_STALE_MS,
  LOCK_REFRESH_MS,
  lockStorage,
  StorageLockedError,
  type LockHolder,
} from '../../src/server/storage-lock.js';
import { killedAfter, stop, tempDir } from './harness.js';

const procs = killedAfter();

function liveProcess(): ChildProcess {
  const p = spawn('sleep', ['600'], { stdio: 'ignore' });
  procs.push(p);
  return p;
}

function holder(pid: number, mode: LockHolder['mode'], more: Partial<LockHolder> = {}): string {
  return JSON.stringify({ pid, host: hostname(), start: null, mode, since: 'then', ...more });
}

const refused = (fn: () => unknown, pattern: RegExp): void =>
  assert.throws(
    fn,
    (e: unknown) => e instanceof StorageLockedError && e.code === 'E_STORAGE_LOCKED' && pattern.test(e.message),
  );

test('a live embedded owner refuses both modes, naming its pid; once it is killed its lock is taken over', async () => {
  const root = tempDir('lock-owner');
  const other = liveProcess();
  const owner = join(root, 'owner.lock');
  writeFileSync(owner, holder(other.pid!, 'exclusive'));
  refused(() => lockStorage(root, 'exclusive'), new RegExp(`embedded immunize serve \\(pid ${other.pid}`));
  refused(() => lockStorage(root, 'shared'), new RegExp(`pid ${other.pid}`));
  assert.equal(readFileSync(owner, 'utf8'), holder(other.pid!, 'exclusive'), 'a refusal changed the lock');
  assert.equal(existsSync(join(root, 'members')), false, 'a refused member left its folder');

  await stop(other, 'SIGKILL');
  const lock = lockStorage(root, 'exclusive');
  assert.equal((JSON.parse(readFileSync(owner, 'utf8')) as LockHolder).pid, process.pid);
  lock.release();
  assert.equal(existsSync(owner), false, 'release removes the lock file');
});

test('a lock whose pid now belongs to a later process (another start time) is stale', () => {
  const root = tempDir('lock-reused');
  const other = liveProcess();
  writeFileSync(join(root, 'owner.lock'), holder(other.pid!, 'exclusive', { start: '1' }));
  lockStorage(root, 'exclusive').release();
});

test('live members of a Redis deployment refuse an embedded server and coexist with each other; dead ones are cleared', async () => {
  const root = tempDir('lock-members');
  const members = join(root, 'members');
  mkdirSync(members);
  const other = liveProcess();
  const member = join(members, `${other.pid}@x.lock`);
  writeFileSync(member, holder(other.pid!, 'shared'));
  refused(() => lockStorage(root, 'exclusive'), /in use by a process of a Redis deployment/);
  assert.equal(existsSync(join(root, 'owner.lock')), false, 'the refused owner left its lock');
  const mine = lockStorage(root, 'shared');
  assert.ok(existsSync(mine.file));
  mine.release();

  await stop(other, 'SIGKILL');
  lockStorage(root, 'exclusive').release();
  assert.equal(existsSync(member), false, "a dead member's file is removed");
});

test('a lock from another host holds while it is refreshed and is stale once left untouched for FOREIGN_STALE_MS', () => {
  const root = tempDir('lock-foreign');
  const owner = join(root, 'owner.lock');
  writeFileSync(owner, holder(4242, 'exclusive', { host: 'elsewhere.example' }));
  refused(() => lockStorage(root, 'exclusive'), /elsewhere\.example.*stale once unrefreshed/);
  const old = new Date(Date.now() - FOREIGN_STALE_MS - 5000);
  utimesSync(owner, old, old);
  lockStorage(root, 'exclusive').release();
});

test('a holder touches its lock file every LOCK_REFRESH_MS', () => {
  mock.timers.enable({ apis: ['setInterval'] });
  try {
    const root = tempDir('lock-refresh');
    const lock = lockStorage(root, 'shared');
    const old = new Date(Date.now() - FOREIGN_STALE_MS - 5000);
    utimesSync(lock.file, old, old);
    mock.timers.tick(LOCK_REFRESH_MS);
    assert.ok(Date.now() - statSync(lock.file).mtimeMs < FOREIGN_STALE_MS / 2, 'the lock was not refreshed');
    lock.release();
  } finally {
    mock.timers.reset();
  }
});
