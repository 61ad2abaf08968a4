// The addon build finds libtorch in the documented order ($LIBTORCH, Debian's libtorch-dev, a
// pip torch) and, when none is there, fails with one message that says how to install it.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../helpers/shared.js';

interface Found { source?: string; libDir?: string; error?: string }
const { findLibtorch } = (await import(join(repoRoot, 'scripts', 'find-libtorch.mjs'))) as { findLibtorch: (env: Record<string, string | undefined>) => Found };

const triplet = spawnSync('gcc', ['-dumpmachine'], { encoding: 'utf8' }).stdout.trim() || 'x86_64-linux-gnu';

/** A fake libtorch prefix: the two headers the finder checks and an (empty) libtorch_cpu.so. */
function fakePrefix(libSubdir = 'lib'): string {
  const p = mkdtempSync(join(tmpdir(), 'immunize-libtorch-'));
  mkdirSync(join(p, 'include', 'ATen'), { recursive: true });
  mkdirSync(join(p, 'include', 'torch', 'csrc', 'autograd'), { recursive: true });
  mkdirSync(join(p, libSubdir), { recursive: true });
  writeFileSync(join(p, 'include', 'ATen', 'ATen.h'), '');
  writeFileSync(join(p, 'include', 'torch', 'csrc', 'autograd', 'autograd.h'), '');
  for (const l of ['libc10.so', 'libtorch_cpu.so', 'libtorch.so']) writeFileSync(join(p, libSubdir, l), '');
  return p;
}

/** A fake python3 that reports a pip torch at `prefix`. */
function fakePython(prefix: string): string {
  const p = join(mkdtempSync(join(tmpdir(), 'immunize-python-')), 'python3');
  writeFileSync(p, `#!/bin/sh\necho ${prefix}\necho 0\n`);
  chmodSync(p, 0o755);
  return p;
}

const nowhere = '/nonexistent-immunize-prefix';

test('$LIBTORCH wins over Debian and pip', () => {
  const mine = fakePrefix();
  const r = findLibtorch({ LIBTORCH: mine, IMMUNIZE_DEBIAN_PREFIX: fakePrefix(join('lib', triplet)), IMMUNIZE_PYTHON: fakePython(fakePrefix()) });
  assert.equal(r.error, undefined);
  assert.equal(r.source, `$LIBTORCH=${mine}`);
  assert.equal(r.libDir, join(mine, 'lib'));
});

test('Debian libtorch-dev comes second, before pip', () => {
  const deb = fakePrefix(join('lib', triplet));
  const r = findLibtorch({ IMMUNIZE_DEBIAN_PREFIX: deb, IMMUNIZE_PYTHON: fakePython(fakePrefix()) });
  assert.equal(r.source, 'Debian libtorch-dev');
  assert.equal(r.libDir, join(deb, 'lib', triplet));
});

test('a pip-installed torch comes third, with its C++ ABI', () => {
  const pip = fakePrefix();
  const r = findLibtorch({ IMMUNIZE_DEBIAN_PREFIX: nowhere, IMMUNIZE_PYTHON: fakePython(pip) }) as Found & { cxx11abi?: number };
  assert.equal(r.source, `pip torch at ${pip}`);
  assert.equal(r.cxx11abi, 0);
});

test('a broken $LIBTORCH is reported among what was tried', () => {
  const r = findLibtorch({ LIBTORCH: nowhere, IMMUNIZE_DEBIAN_PREFIX: nowhere, IMMUNIZE_PYTHON: join(nowhere, 'python3') });
  assert.match(r.error ?? '', new RegExp(`\\$LIBTORCH=${nowhere}: .*ATen\\.h`));
});

test('no libtorch anywhere: the build fails with one message saying how to install it', () => {
  const env = { ...process.env, LIBTORCH: '', IMMUNIZE_DEBIAN_PREFIX: nowhere, IMMUNIZE_PYTHON: join(nowhere, 'python3') };
  const r = spawnSync(process.execPath, [join(repoRoot, 'scripts', 'build-native.mjs')], { env, encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /libtorch \(PyTorch's C\+\+ library\) was not found/);
  assert.match(r.stderr, /apt-get install -y libtorch-dev/);
  assert.match(r.stderr, /export LIBTORCH=/);
  assert.match(r.stderr, /pip install torch/);
  assert.doesNotMatch(r.stderr, /gyp|Traceback|at .*\.mjs:\d+/, 'no stack traces or node-gyp noise');
});
