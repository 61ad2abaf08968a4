// Tensor lifetime: dispose(), `using`, scope()/keep(), disposed-tensor errors, the finalizer, and
// the required flat-memory check — 10,000 forward+backward steps of a small conv net.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ImmunizeError } from '../../src/errors.js';
import {
  F,
  Tensor,
  TensorDisposedError,
  cat,
  grad,
  keep,
  liveTensors,
  manualSeed,
  noGrad,
  ones,
  randn,
  scope,
  tensor,
  zeros,
} from '../../src/torch/index.js';
import { op } from '../../src/torch/ops.js';
import { scopeDepth } from '../../src/torch/scope.js';

const gc = (globalThis as { gc?: () => void }).gc;

/** Collects garbage and lets pending finalizers run, so liveTensors() is stable before a count. */
async function settle(rounds = 4): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    gc?.();
    await new Promise((r) => setImmediate(r));
  }
}

const isDisposedErr =
  (what: RegExp) =>
  (e: unknown): boolean =>
    e instanceof TensorDisposedError &&
    e.code === 'E_DISPOSED' &&
    e.name === 'TensorDisposedError' &&
    what.test(e.message);

describe('dispose and disposed tensors', () => {
  test('dispose() frees the handle once and is idempotent', async () => {
    await settle();
    const before = liveTensors();
    const t = zeros([3]);
    assert.equal(liveTensors(), before + 1, 'creating a tensor adds one live handle');
    assert.equal(t.isDisposed, false);
    t.dispose();
    assert.equal(t.isDisposed, true);
    assert.equal(liveTensors(), before, 'dispose frees it');
    t.dispose();
    t[Symbol.dispose]();
    assert.equal(liveTensors(), before, 'a second dispose changes nothing');
  });

  test('using a disposed tensor throws TensorDisposedError naming dtype and shape — methods, getters and op arguments', () => {
    const t = zeros([2, 3], { dtype: 'float64' });
    const ok = ones([2, 3], { dtype: 'float64' });
    t.dispose();
    const named = /Tensor\(float64, \[2, 3\], cpu\) was disposed/;
    assert.throws(() => t.add(1), isDisposedErr(named), 'method call');
    assert.throws(() => t.toArray(), isDisposedErr(named), 'toArray');
    assert.throws(() => t.shape, isDisposedErr(named), 'shape getter');
    assert.throws(() => t.dtype, isDisposedErr(named), 'dtype getter');
    assert.throws(() => t.item(), isDisposedErr(named), 'item');
    assert.throws(() => t.handle, isDisposedErr(named), 'handle');
    assert.throws(() => ok.add(t), isDisposedErr(named), 'as an op argument');
    assert.throws(() => ok.matmul(t), isDisposedErr(named), 'as a matmul argument');
    assert.throws(() => cat([ok, t]), isDisposedErr(named), 'inside a tensor list');
    assert.throws(() => F.conv2d(ok.reshape(1, 1, 2, 3), t.reshape(1, 1, 2, 3)), isDisposedErr(named), 'functional op');
    assert.throws(() => grad(ok.sum(), [t]), isDisposedErr(named), 'autograd');
    assert.equal(
      t.toString(),
      'Tensor(disposed: Tensor(float64, [2, 3], cpu))',
      'toString of a disposed tensor still works',
    );
    assert.deepEqual(ok.add(1).toArray(), [2, 2, 2, 2, 2, 2], 'other tensors keep working');
    assert.ok(new TensorDisposedError('x') instanceof ImmunizeError);
  });

  test('native code checks a disposed handle too (no use-after-free through raw handles)', () => {
    const t = tensor([1, 2, 3]);
    const h = t.handle;
    t.dispose();
    const neg = op('aten::neg');
    assert.throws(
      () => neg(h),
      (e: unknown) => e instanceof ImmunizeError && e.code === 'E_TORCH' && /disposed/.test(e.message),
    );
  });

  test('aliases and views keep the storage alive after the original handle is disposed', () => {
    const x = tensor([1, 2, 3, 4]);
    const a = x.alias();
    const v = x.narrow(0, 1, 2);
    x.dispose();
    assert.deepEqual(a.toArray(), [1, 2, 3, 4]);
    assert.deepEqual(v.toArray(), [2, 3]);
    v.fill_(9);
    assert.deepEqual(a.toArray(), [1, 9, 9, 4], 'the alias and the view still share storage');
  });

  test('`using` declarations dispose at block end, also when the block throws', async () => {
    await settle();
    const before = liveTensors();
    {
      using a = zeros([4]);
      using b = a.add(1);
      assert.equal(liveTensors(), before + 2, 'two tensors alive inside the block');
      assert.deepEqual(b.toArray(), [1, 1, 1, 1]);
    }
    assert.equal(liveTensors(), before, 'both disposed at block end');
    let inner: Tensor | undefined;
    assert.throws(() => {
      using c = ones([2]);
      inner = c;
      throw new Error('boom');
    }, /boom/);
    assert.equal(inner?.isDisposed, true, '`using` disposes on throw');
    assert.equal(liveTensors(), before);
  });
});

describe('scope() and keep()', () => {
  test('frees temporaries and keeps a returned tensor', async () => {
    await settle();
    const before = liveTensors();
    let tmp: Tensor | undefined;
    const r = scope(() => {
      tmp = zeros([3]);
      const y = tmp.add(2).mul(3);
      return y.sub(1);
    });
    assert.equal(tmp?.isDisposed, true, 'temporary disposed');
    assert.equal(r.isDisposed, false, 'result kept');
    assert.deepEqual(r.toArray(), [5, 5, 5]);
    assert.equal(liveTensors(), before + 1, 'only the result is alive');
    r.dispose();
    assert.equal(liveTensors(), before);
  });

  test('keeps tensors returned in arrays, plain objects, nested structures and Maps', async () => {
    await settle();
    const before = liveTensors();
    const r = scope(() => {
      const a = zeros([1]);
      const b = ones([1]);
      const c = tensor([7]);
      const d = tensor([8]);
      zeros([100]); // dropped
      return { list: [a, b], nested: { deep: [c] }, map: new Map([['d', d]]), n: 3 };
    });
    assert.deepEqual(
      [r.list[0]!.toArray(), r.list[1]!.toArray(), r.nested.deep[0]!.toArray(), r.map.get('d')!.toArray()],
      [[0], [1], [7], [8]],
    );
    assert.equal(r.n, 3);
    assert.equal(liveTensors(), before + 4, 'four returned tensors alive, the dropped one freed');
    for (const t of [...r.list, ...r.nested.deep, r.map.get('d')!]) t.dispose();
    assert.equal(liveTensors(), before);
    const arr = scope(() => [zeros([1]), 'x', 1] as const);
    assert.equal(arr[0].isDisposed, false);
    arr[0].dispose();
  });

  test('tensors created outside a scope are not disposed by it, even when used inside', () => {
    const outside = tensor([1, 2]);
    const r = scope(() => outside.add(1).sum().item());
    assert.equal(r, 5);
    assert.equal(outside.isDisposed, false);
    const same = scope(() => outside);
    assert.equal(same, outside);
    assert.equal(outside.isDisposed, false, 'returning an outer tensor does not dispose it');
  });

  test('nested scopes: a tensor returned by the inner scope moves to the outer one', async () => {
    await settle();
    const before = liveTensors();
    let fromInner: Tensor | undefined;
    let innerTmp: Tensor | undefined;
    const r = scope(() => {
      assert.equal(scopeDepth(), 1);
      fromInner = scope(() => {
        assert.equal(scopeDepth(), 2);
        innerTmp = zeros([2]);
        return innerTmp.add(1);
      });
      assert.equal(innerTmp?.isDisposed, true, 'inner temporary freed at inner scope end');
      assert.equal(fromInner.isDisposed, false, 'inner result alive in the outer scope');
      return fromInner.mul(2);
    });
    assert.equal(scopeDepth(), 0);
    assert.equal(fromInner?.isDisposed, true, 'inner result freed when the outer scope ends without returning it');
    assert.deepEqual(r.toArray(), [2, 2]);
    r.dispose();
    assert.equal(liveTensors(), before);
  });

  test('when fn throws, everything created inside is freed and the error propagates', async () => {
    await settle();
    const before = liveTensors();
    let a: Tensor | undefined;
    let inner: Tensor | undefined;
    assert.throws(
      () =>
        scope(() => {
          a = zeros([5]);
          inner = scope(() => ones([2]));
          throw new RangeError('inside scope');
        }),
      RangeError,
    );
    assert.equal(a?.isDisposed, true);
    assert.equal(inner?.isDisposed, true, 'a tensor moved up from an inner scope is freed too');
    assert.equal(scopeDepth(), 0, 'the scope stack is unwound');
    assert.equal(liveTensors(), before);
    // a libtorch error inside a scope behaves the same
    assert.throws(
      () => scope(() => zeros([2, 3]).matmul(zeros([2, 3]))),
      (e: unknown) => e instanceof ImmunizeError && e.code === 'E_TORCH',
    );
    assert.equal(liveTensors(), before);
  });

  test('a scope returning a Promise throws E_ASYNC_SCOPE and frees its tensors', async () => {
    await settle();
    const before = liveTensors();
    let a: Tensor | undefined;
    assert.throws(
      () =>
        scope(() => {
          a = zeros([2]);
          return Promise.resolve(a);
        }),
      (e: unknown) => e instanceof ImmunizeError && e.code === 'E_ASYNC_SCOPE' && /Promise/.test(e.message),
    );
    assert.equal(a?.isDisposed, true);
    assert.throws(
      () => scope(async () => 1),
      (e: unknown) => e instanceof ImmunizeError && e.code === 'E_ASYNC_SCOPE',
    );
    assert.equal(scopeDepth(), 0);
    assert.equal(liveTensors(), before);
  });

  test('keep() exempts a tensor from every enclosing scope', async () => {
    await settle();
    const before = liveTensors();
    let kept: Tensor | undefined;
    scope(() => {
      scope(() => {
        kept = keep(zeros([3]).add(4));
        ones([1]);
      });
      assert.equal(kept?.isDisposed, false);
    });
    assert.equal(kept?.isDisposed, false, 'kept past both scopes');
    assert.deepEqual(kept!.toArray(), [4, 4, 4]);
    assert.equal(liveTensors(), before + 1);
    kept!.dispose();
    assert.equal(liveTensors(), before);
  });
});

describe('no leaks', () => {
  test('10,000 forward+backward steps of a small conv net keep memory flat', { timeout: 120_000 }, async (t) => {
    manualSeed(0);
    const x = randn([1, 3, 16, 16]);
    const target = randn([1, 3, 16, 16]);
    const w1 = randn([8, 3, 3, 3]).mul(0.2).requiresGrad_();
    const b1 = zeros([8], { requiresGrad: true });
    const w2 = randn([3, 8, 3, 3]).mul(0.2).requiresGrad_();
    const b2 = zeros([3], { requiresGrad: true });
    const params = [w1, b1, w2, b2];
    const step = (): number =>
      scope(() => {
        const h = F.conv2d(x, w1, b1, { padding: 1 }).silu();
        const y = F.conv2d(h, w2, b2, { padding: 1 });
        const loss = y.sub(target).square().mean();
        const grads = grad(loss, params);
        noGrad(() => params.forEach((p, i) => p.sub_(grads[i]!, 1e-3)));
        return loss.item();
      });

    // Fully synchronous, as an attack loop is: nothing may rely on the event loop turning.
    for (let i = 0; i < 200; i++) step(); // warm-up: allocator pools, op lookups, JIT
    await settle();
    const liveStart = liveTensors();
    const rssStart = process.memoryUsage().rss;
    let rssPeak = rssStart;
    const t0 = performance.now();
    const first = step();
    let last = first;
    for (let i = 1; i < 10_000; i++) {
      last = step();
      if (!Number.isFinite(last)) assert.fail(`loss is ${last} at step ${i}`);
      if (i % 100 === 0) rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
      if (i % 2500 === 0) {
        const live = liveTensors();
        assert.ok(live <= liveStart, `step ${i}: ${live} live tensors, started with ${liveStart} (a scope leaks)`);
      }
    }
    const seconds = (performance.now() - t0) / 1000;
    await settle();
    const liveEnd = liveTensors();
    const rssEnd = process.memoryUsage().rss;
    const growthMB = (rssEnd - rssStart) / 2 ** 20;
    t.diagnostic(
      `10,000 steps in ${seconds.toFixed(1)} s (${(seconds / 10).toFixed(3)} ms/step); loss ${first.toFixed(4)} -> ${last.toFixed(4)}; ` +
        `live tensors ${liveStart} -> ${liveEnd}; RSS ${(rssStart / 2 ** 20).toFixed(1)} -> ${(rssEnd / 2 ** 20).toFixed(1)} MB ` +
        `(+${growthMB.toFixed(1)} MB, peak +${((rssPeak - rssStart) / 2 ** 20).toFixed(1)} MB)`,
    );
    assert.equal(
      liveEnd,
      liveStart,
      `live tensors must return exactly to the starting count (${liveStart}) but are ${liveEnd}`,
    );
    assert.ok(growthMB < 50, `RSS grew by ${growthMB.toFixed(1)} MB over 10,000 steps (limit 50 MB)`);
    assert.ok(
      last < first,
      `the descent steps must lower the loss (${first} -> ${last}), proving the gradients were real`,
    );
    for (const p of params) assert.equal(p.grad, null, 'grad() must not populate .grad');
  });

  test(
    'forgotten tensors are freed by the finalizer',
    { skip: gc === undefined ? 'run node with --expose-gc' : false },
    async (t) => {
      await settle();
      const before = liveTensors();
      (() => {
        for (let i = 0; i < 2000; i++) zeros([4, 4]).add(i); // two handles each, never disposed
      })();
      const peak = liveTensors();
      assert.ok(peak - before >= 2000, `expected at least 2000 new live tensors, got ${peak - before}`);
      await settle(6);
      const after = liveTensors();
      t.diagnostic(`live tensors: ${before} before, ${peak} at peak, ${after} after gc`);
      const created = peak - before;
      assert.ok(
        peak - after >= created / 2,
        `the finalizer freed only ${peak - after} of ${created} forgotten tensors`,
      );
    },
  );

  // Node 20 runs N-API finalizers only when the event loop turns; dispose() therefore removes the
  // handle's wrap (and its finalizer record) at once, so a synchronous attack loop stays flat.
  test(
    'a long synchronous loop of disposed tensors does not grow memory',
    { skip: gc === undefined ? 'run node with --expose-gc' : false },
    async (t) => {
      await settle();
      const x = zeros([1]);
      const rssStart = process.memoryUsage().rss;
      for (let i = 0; i < 300_000; i++) x.add(1).dispose();
      const rssSync = process.memoryUsage().rss;
      await settle();
      const rssAfter = process.memoryUsage().rss;
      const mb = (v: number): string => (v / 2 ** 20).toFixed(1);
      t.diagnostic(
        `300,000 created+disposed tensors in one synchronous loop: RSS +${mb(rssSync - rssStart)} MB before yielding, +${mb(rssAfter - rssStart)} MB after`,
      );
      assert.ok(
        rssSync - rssStart < 10 * 2 ** 20,
        `RSS grew by ${mb(rssSync - rssStart)} MB during a synchronous loop of disposed tensors`,
      );
    },
  );
});
