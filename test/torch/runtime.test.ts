// Runtime: thread settings, build information, and that every operator the wrappers declare exists
// in this libtorch (scaled_dot_product_attention only from 2.0, composed otherwise).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { ImmunizeError } from '../../src/errors.js';
import {
  F,
  cudaDeviceCount,
  getNumThreads,
  hasOp,
  isCudaAvailable,
  liveTensors,
  randn,
  schemaOf,
  setNumThreads,
  torchInfo,
} from '../../src/torch/index.js';
import { declaredOps } from '../../src/torch/ops.js';
import { defaultThreads } from '../../src/torch/runtime.js';
import { repoRoot } from '../helpers/shared.js';

const envThreads = process.env['IMMUNIZE_NUM_THREADS'];

// Must run before any test changes the thread count.
test('the default thread count is os.availableParallelism() unless IMMUNIZE_NUM_THREADS is set', () => {
  const want = envThreads !== undefined && envThreads !== '' ? Number(envThreads) : availableParallelism();
  assert.equal(
    getNumThreads(),
    want,
    `getNumThreads() at start is ${getNumThreads()}, expected ${want} (IMMUNIZE_NUM_THREADS=${envThreads ?? 'unset'})`,
  );
  assert.equal(torchInfo().threads, want);
});

test('IMMUNIZE_NUM_THREADS sets the default at import (child process)', () => {
  const url = pathToFileURL(join(repoRoot, 'dist', 'src', 'torch', 'index.js')).href;
  const script = `import { getNumThreads } from ${JSON.stringify(url)}; console.log(getNumThreads());`;
  const run = (value: string | undefined): ReturnType<typeof spawnSync> => {
    const env = { ...process.env };
    if (value === undefined) delete env['IMMUNIZE_NUM_THREADS'];
    else env['IMMUNIZE_NUM_THREADS'] = value;
    return spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      env,
      encoding: 'utf8',
      timeout: 60_000,
    });
  };
  const one = run('1');
  assert.equal(one.status, 0, `child failed: ${String(one.stderr)}`);
  assert.equal(String(one.stdout).trim(), '1', 'IMMUNIZE_NUM_THREADS=1');
  const unset = run(undefined);
  assert.equal(unset.status, 0, `child failed: ${String(unset.stderr)}`);
  assert.equal(String(unset.stdout).trim(), String(availableParallelism()), 'unset gives every core');
  const bad = run('zero');
  assert.notEqual(bad.status, 0, 'an invalid IMMUNIZE_NUM_THREADS must fail loudly');
  assert.match(String(bad.stderr), /IMMUNIZE_NUM_THREADS must be a positive integer but is 'zero'/);
});

test('defaultThreads() reads IMMUNIZE_NUM_THREADS and validates it', () => {
  const saved = process.env['IMMUNIZE_NUM_THREADS'];
  try {
    process.env['IMMUNIZE_NUM_THREADS'] = '3';
    assert.equal(defaultThreads(), 3);
    process.env['IMMUNIZE_NUM_THREADS'] = '';
    assert.equal(defaultThreads(), availableParallelism(), 'an empty value means unset');
    delete process.env['IMMUNIZE_NUM_THREADS'];
    assert.equal(defaultThreads(), availableParallelism());
    for (const bad of ['0', '-2', '1.5', 'many']) {
      process.env['IMMUNIZE_NUM_THREADS'] = bad;
      assert.throws(
        () => defaultThreads(),
        (e: unknown) => e instanceof ImmunizeError && e.code === 'E_ARGUMENT' && e.message.includes(`'${bad}'`),
        `IMMUNIZE_NUM_THREADS=${bad}`,
      );
    }
  } finally {
    if (saved === undefined) delete process.env['IMMUNIZE_NUM_THREADS'];
    else process.env['IMMUNIZE_NUM_THREADS'] = saved;
  }
});

test('setNumThreads / getNumThreads round trip, restored afterwards', () => {
  const before = getNumThreads();
  try {
    for (const n of [1, 2, 3, 1]) {
      setNumThreads(n);
      assert.equal(getNumThreads(), n, `after setNumThreads(${n})`);
      // ops still compute correctly with this many threads
      const x = randn([64, 64], { dtype: 'float64' });
      const s1 = x.matmul(x).sum().item();
      const s2 = x.matmul(x).sum().item();
      assert.ok(
        Math.abs(s1 - s2) <= 1e-9 * Math.max(1, Math.abs(s1)),
        `matmul with ${n} threads is not repeatable: ${s1} vs ${s2}`,
      );
    }
  } finally {
    setNumThreads(before);
  }
  assert.equal(getNumThreads(), before, 'restored');
});

test('setNumThreads rejects 0, negatives, fractions and non-numbers with E_ARGUMENT', () => {
  const before = getNumThreads();
  for (const bad of [0, -1, 1.5, NaN, Infinity, '2', null]) {
    assert.throws(
      () => setNumThreads(bad as number),
      (e: unknown) =>
        e instanceof ImmunizeError &&
        e.code === 'E_ARGUMENT' &&
        /^Expected an integer from 1 to 2147483647 for threads but received /.test(e.message),
      `setNumThreads(${String(bad)}) must throw E_ARGUMENT`,
    );
  }
  assert.equal(getNumThreads(), before, 'a rejected value changes nothing');
});

test('torchInfo reports the libtorch version and a consistent CUDA flag', () => {
  const info = torchInfo();
  assert.match(info.torchVersion, /^\d+\.\d+\.\d+/);
  assert.equal(typeof info.hasCuda, 'boolean');
  assert.match(info.parallelInfo, /ATen\/Parallel/);
  assert.equal(isCudaAvailable(), cudaDeviceCount() > 0);
  if (!info.hasCuda) assert.equal(cudaDeviceCount(), 0, 'no CUDA support means no CUDA devices');
  assert.ok(Number.isSafeInteger(liveTensors()) && liveTensors() >= 0);
});

test('every operator declared by the wrappers exists in this libtorch', () => {
  const ops = declaredOps();
  assert.ok(ops.length > 150, `only ${ops.length} operators declared — are all wrappers imported?`);
  const major = Number(torchInfo().torchVersion.split('.')[0]);
  const missing: string[] = [];
  for (const [name, overload] of ops) {
    if (hasOp(name, overload)) continue;
    if (name === 'aten::scaled_dot_product_attention' && major < 2) continue;
    missing.push(overload ? `${name}.${overload}` : name);
  }
  assert.deepEqual(
    missing,
    [],
    `operators declared by the wrappers but missing from libtorch ${torchInfo().torchVersion}: ${missing.join(', ')}`,
  );
  assert.equal(hasOp('aten::no_such_op'), false, 'hasOp must be able to say no');
  assert.equal(hasOp('aten::add', 'NoSuchOverload'), false);
  assert.match(
    schemaOf('aten::add', 'Tensor'),
    /^aten::add\.Tensor\(Tensor self, Tensor other, \*, Scalar alpha=1\) -> Tensor/,
  );
  assert.match(schemaOf('aten::conv2d'), /^aten::conv2d\(Tensor input, Tensor weight, Tensor\? bias=None/);
});

test('scaled_dot_product_attention: native from libtorch 2.0, composed fallback before', () => {
  const major = Number(torchInfo().torchVersion.split('.')[0]);
  const native = hasOp('aten::scaled_dot_product_attention');
  assert.equal(
    native,
    major >= 2,
    `libtorch ${torchInfo().torchVersion} ${native ? 'has' : 'lacks'} aten::scaled_dot_product_attention`,
  );
  const q = randn([1, 2, 3, 4], { dtype: 'float64', requiresGrad: true });
  const k = randn([1, 2, 5, 4], { dtype: 'float64' });
  const v = randn([1, 2, 5, 4], { dtype: 'float64' });
  const out = F.scaledDotProductAttention(q, k, v);
  const composed = F.scaledDotProductAttention(q, k, v, { composed: true });
  assert.deepEqual(out.shape, [1, 2, 3, 4]);
  // An oracle independent of both paths (on libtorch 1.x they are one path): softmax(q·kᵀ/√d)·v in plain JS.
  const want = attentionByHand(q.toArray(), k.toArray(), v.toArray(), 2, 3, 5, 4);
  out.toArray().forEach((x, i) => assert.ok(Math.abs(x - want[i]!) <= 1e-12, `entry ${i}: ${x} vs ${want[i]}`));
  assert.ok(out.allclose(composed, 1e-10, 1e-12), 'fused and composed attention agree');
  if (!native) {
    assert.equal(out.equal(composed), true, 'without the native op the composed path is used (bit-identical results)');
    assert.doesNotMatch(
      out.gradFn ?? '',
      /ScaledDotProduct|Flash|Efficient/i,
      `gradFn ${out.gradFn} must come from the composed matmul`,
    );
    assert.match(out.gradFn ?? '', /View|Bmm|MmBackward/, `composed attention ends in a matmul (gradFn ${out.gradFn})`);
  }
});

/** softmax(q·kᵀ/√d)·v for flat [1, heads, L, d] q and [1, heads, S, d] k, v; flat [1, heads, L, d] out. */
function attentionByHand(
  q: number[],
  k: number[],
  v: number[],
  heads: number,
  L: number,
  S: number,
  d: number,
): number[] {
  const out: number[] = [];
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < L; i++) {
      const scores = Array.from({ length: S }, (_, j) => {
        let dot = 0;
        for (let c = 0; c < d; c++) dot += q[(h * L + i) * d + c]! * k[(h * S + j) * d + c]!;
        return dot / Math.sqrt(d);
      });
      const top = Math.max(...scores);
      const w = scores.map((x) => Math.exp(x - top));
      const total = w.reduce((a, b) => a + b, 0);
      for (let c = 0; c < d; c++) out.push(w.reduce((acc, wj, j) => acc + (wj / total) * v[(h * S + j) * d + c]!, 0));
    }
  }
  return out;
}

/** In a child: RSS (MB) after filling and freeing a 256 MB tensor, relative to just before. */
function rssKeptAfterFree(allocator: string | undefined): { policy: string; keptMB: number } {
  const url = pathToFileURL(join(repoRoot, 'dist', 'src', 'torch', 'index.js')).href;
  const script = `import { allocatorPolicy, ones } from ${JSON.stringify(url)};
    const rss = () => process.memoryUsage().rss / 2 ** 20;
    const before = rss();
    const t = ones([64, 1024, 1024]); // 256 MB, every page written
    t.dispose();
    console.log(JSON.stringify({ policy: allocatorPolicy(), keptMB: rss() - before }));`;
  const env = { ...process.env };
  if (allocator === undefined) delete env['IMMUNIZE_ALLOCATOR'];
  else env['IMMUNIZE_ALLOCATOR'] = allocator;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    env,
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(r.status, 0, `child failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as { policy: string; keptMB: number };
}

test('freed tensor memory is kept for reuse by default, handed back with IMMUNIZE_ALLOCATOR=system (child processes)', () => {
  // Kept, the next step reuses it instead of faulting in fresh pages (docs/engine.md#memory).
  const retain = rssKeptAfterFree(undefined);
  assert.equal(retain.policy, 'retain');
  assert.ok(retain.keptMB > 200, `default: ${retain.keptMB.toFixed(0)} MB of the freed 256 MB still resident`);
  const system = rssKeptAfterFree('system');
  assert.equal(system.policy, 'system');
  assert.ok(system.keptMB < 50, `system: ${system.keptMB.toFixed(0)} MB of the freed 256 MB still resident`);
  const bad = spawnSync(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `import ${JSON.stringify(pathToFileURL(join(repoRoot, 'dist', 'src', 'torch', 'index.js')).href)};`,
    ],
    {
      env: { ...process.env, IMMUNIZE_ALLOCATOR: 'jemalloc' },
      encoding: 'utf8',
    },
  );
  assert.notEqual(bad.status, 0, 'an unknown IMMUNIZE_ALLOCATOR must fail loudly');
  assert.match(bad.stderr, /IMMUNIZE_ALLOCATOR must be retain or system but is 'jemalloc'/);
});
