// Tensor basics: creation for every dtype, metadata, views and shape ops, elementwise math with
// broadcasting, reductions, linear algebra, sorting, printing, scalar promotion and devices.
// Expected values are computed in plain JS, so each assertion can fail independently of libtorch.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ImmunizeError } from '../../src/errors.js';
import {
  F,
  Tensor,
  arange,
  cat,
  checkDevice,
  cudaDeviceCount,
  empty,
  eye,
  full,
  linspace,
  ones,
  stack,
  tensor,
  where,
  zeros,
  type DType,
} from '../../src/torch/index.js';
import { assertShape, assertValues, f64, jsRandom } from './helpers.js';

// ---- helpers --------------------------------------------------------------------------------

function i64(values: readonly number[], shape?: readonly number[]): Tensor {
  return tensor(
    BigInt64Array.from(values, (v) => BigInt(v)),
    shape ?? [values.length],
  );
}

/** Row-major flat index. */
function flatIndex(shape: readonly number[], idx: readonly number[]): number {
  let f = 0;
  for (let d = 0; d < shape.length; d++) f = f * shape[d]! + idx[d]!;
  return f;
}

/** Every multi-index of a shape, in row-major order. */
function* indices(shape: readonly number[]): Generator<number[]> {
  const n = shape.reduce((a, b) => a * b, 1);
  for (let f = 0; f < n; f++) {
    const idx: number[] = new Array<number>(shape.length);
    let r = f;
    for (let d = shape.length - 1; d >= 0; d--) {
      idx[d] = r % shape[d]!;
      r = Math.floor(r / shape[d]!);
    }
    yield idx;
  }
}

/** A JS reduction over `dims` of a row-major array (keepdim shape handling is the caller's). */
function reduceJs(
  data: readonly number[],
  shape: readonly number[],
  dims: readonly number[],
  fn: (vals: number[]) => number,
): number[] {
  const outShape = shape.map((s, d) => (dims.includes(d) ? 1 : s));
  const groups: number[][] = Array.from({ length: outShape.reduce((a, b) => a * b, 1) }, () => []);
  for (const idx of indices(shape)) {
    const o = idx.map((v, d) => (dims.includes(d) ? 0 : v));
    groups[flatIndex(outShape, o)]!.push(data[flatIndex(shape, idx)]!);
  }
  return groups.map(fn);
}

const jsSum = (v: number[]): number => v.reduce((a, b) => a + b, 0);
const jsMean = (v: number[]): number => jsSum(v) / v.length;
const jsVar =
  (corr: number) =>
  (v: number[]): number => {
    const m = jsMean(v);
    return v.reduce((a, b) => a + (b - m) ** 2, 0) / (v.length - corr);
  };

// ---- creation and read-back -----------------------------------------------------------------

describe('creation from typed arrays, for every dtype', () => {
  test('float32', () => {
    const src = new Float32Array([1.5, -2, 3.25, 0, 1e-3, -7]);
    const t = tensor(src, [2, 3]);
    assert.equal(t.dtype, 'float32');
    assert.equal(t.device, 'cpu');
    assertShape(t, [2, 3], 'float32 tensor');
    assert.equal(t.numel, 6);
    assert.equal(t.ndim, 2);
    assert.deepEqual(t.strides, [3, 1]);
    const out = t.toTypedArray();
    assert.ok(out instanceof Float32Array, `float32 comes back as ${out.constructor.name}`);
    assert.deepEqual(Array.from(out as Float32Array), Array.from(src));
    src[0] = 99; // the tensor owns a copy
    assert.equal(t.toArray()[0], 1.5, 'tensor() must copy its source data');
  });

  test('float64 keeps full precision', () => {
    const vals = [0.1, 1 / 3, -1e-300, 1e300, Math.PI];
    const t = tensor(new Float64Array(vals), [5]);
    assert.equal(t.dtype, 'float64');
    const out = t.toTypedArray();
    assert.ok(out instanceof Float64Array);
    assert.deepEqual(Array.from(out as Float64Array), vals);
    const fromList = tensor(vals, [5], { dtype: 'float64' });
    assert.equal(fromList.dtype, 'float64');
    assert.deepEqual(fromList.toArray(), vals);
  });

  test('number[] defaults to float32; a number gives a 0-d tensor', () => {
    const t = tensor([0.1, 2]);
    assert.equal(t.dtype, 'float32');
    assert.deepEqual(t.toArray(), [Math.fround(0.1), 2]);
    const s = tensor(2.5);
    assertShape(s, [], 'scalar tensor');
    assert.equal(s.numel, 1);
    assert.equal(s.item(), 2.5);
  });

  test('float16 from raw bits and by conversion', () => {
    // 0x3c00 = 1, 0xc000 = -2, 0x3555 = 0.333251953125, 0x7bff = 65504 (max half), 0x0001 = 2^-24
    const bits = new Uint16Array([0x3c00, 0xc000, 0x3555, 0x7bff, 0x0001]);
    const t = tensor(bits, [5]);
    assert.equal(t.dtype, 'float16');
    const out = t.toTypedArray();
    assert.ok(out instanceof Float32Array, 'float16 reads back as Float32Array');
    assert.deepEqual(Array.from(out as Float32Array), [1, -2, 0.333251953125, 65504, 2 ** -24]);
    assert.deepEqual(
      Array.from(new Uint16Array(t.toBytes().buffer.slice(0))),
      Array.from(bits),
      'toBytes gives the raw half bits',
    );
    const conv = tensor(new Float32Array([0.1, 70000, 1 + 2 ** -11]), [3], { dtype: 'float16' });
    assert.equal(conv.dtype, 'float16');
    // 0.1 rounds to 0.0999755859375; 70000 overflows to inf; 1 + 2^-11 is a tie and rounds to even (1).
    assert.deepEqual(conv.toArray(), [0.0999755859375, Infinity, 1]);
  });

  test('bfloat16 from raw bits and by conversion', () => {
    // 0x3f80 = 1, 0xc040 = -3, 0x3e80 = 0.25, 0x4049 = 3.140625
    const bits = new Uint16Array([0x3f80, 0xc040, 0x3e80, 0x4049]);
    const t = tensor(bits, [2, 2], { dtype: 'bfloat16' });
    assert.equal(t.dtype, 'bfloat16');
    assertShape(t, [2, 2], 'bfloat16');
    const out = t.toTypedArray();
    assert.ok(out instanceof Float32Array);
    assert.deepEqual(Array.from(out as Float32Array), [1, -3, 0.25, 3.140625]);
    assert.deepEqual(Array.from(new Uint16Array(t.toBytes().buffer.slice(0))), Array.from(bits));
    const conv = tensor(new Float32Array([Math.PI, 1e38]), [2], { dtype: 'bfloat16' });
    assert.equal(conv.toArray()[0], 3.140625, 'pi in bfloat16');
    assert.ok(Math.abs(conv.toArray()[1]! / 1e38 - 1) < 1 / 128, `1e38 in bfloat16 gave ${conv.toArray()[1]}`);
  });

  test('int64 keeps values beyond 2^32 exactly', () => {
    const src = new BigInt64Array([1n, -2n, 2n ** 40n + 3n, -(2n ** 62n)]);
    const t = tensor(src, [4]);
    assert.equal(t.dtype, 'int64');
    const out = t.toTypedArray();
    assert.ok(out instanceof BigInt64Array);
    assert.deepEqual(Array.from(out as BigInt64Array), Array.from(src));
    assert.deepEqual(t.toArray().slice(0, 3), [1, -2, 2 ** 40 + 3]);
  });

  const ints: [DType, Int32Array | Int16Array | Int8Array | Uint8Array, string][] = [
    ['int32', new Int32Array([-(2 ** 31), 2 ** 31 - 1, 0, -5]), 'Int32Array'],
    ['int16', new Int16Array([-32768, 32767, 0, -5]), 'Int16Array'],
    ['int8', new Int8Array([-128, 127, 0, -5]), 'Int8Array'],
    ['uint8', new Uint8Array([0, 255, 128, 5]), 'Uint8Array'],
  ];
  for (const [dtype, src, ctor] of ints) {
    test(`${dtype} round trip with extreme values`, () => {
      const t = tensor(src, [2, 2]);
      assert.equal(t.dtype, dtype);
      const out = t.toTypedArray();
      assert.equal(out.constructor.name, ctor);
      assert.deepEqual(Array.from(out as ArrayLike<number>), Array.from(src));
    });
  }

  test('Uint8ClampedArray is read as uint8', () => {
    const t = tensor(new Uint8ClampedArray([0, 200, 255]), [3]);
    assert.equal(t.dtype, 'uint8');
    assert.deepEqual(t.toArray(), [0, 200, 255]);
  });

  test('bool by conversion: non-zero is true', () => {
    const t = tensor(new Uint8Array([0, 1, 2, 255]), [4], { dtype: 'bool' });
    assert.equal(t.dtype, 'bool');
    const out = t.toTypedArray();
    assert.ok(out instanceof Uint8Array);
    assert.deepEqual(Array.from(out as Uint8Array), [0, 1, 1, 1]);
    const cmp = tensor([1, 5, 3]).gt(2);
    assert.equal(cmp.dtype, 'bool');
    assert.deepEqual(cmp.toArray(), [0, 1, 1]);
  });

  test('complex64 and complex128 via view_as_complex, with complex arithmetic', () => {
    const z = tensor(new Float32Array([1, 2, 3, 4]), [2, 2]).viewAsComplex(); // [1+2i, 3+4i]
    assert.equal(z.dtype, 'complex64');
    assertShape(z, [2], 'complex view');
    const raw = z.toTypedArray();
    assert.ok(raw instanceof Float32Array);
    assert.deepEqual(Array.from(raw as Float32Array), [1, 2, 3, 4], 'complex reads back interleaved (re, im)');
    assert.deepEqual(z.real().toArray(), [1, 3]);
    assert.deepEqual(z.imag().toArray(), [2, 4]);
    assertValues(z.abs(), [Math.sqrt(5), 5], 'complex abs');
    assertValues(z.angle(), [Math.atan2(2, 1), Math.atan2(4, 3)], 'complex angle');
    // (1+2i)^2 = -3+4i, (3+4i)^2 = -7+24i
    assert.deepEqual(Array.from(z.mul(z).toTypedArray() as Float32Array), [-3, 4, -7, 24]);
    assert.deepEqual(Array.from(z.conj().toTypedArray() as Float32Array), [1, -2, 3, -4]);
    assert.deepEqual(z.viewAsReal().toArray(), [1, 2, 3, 4]);
    assertShape(z.viewAsReal(), [2, 2], 'view_as_real');
    const z128 = tensor(new Float64Array([0.1, -0.2]), [1, 2]).viewAsComplex();
    assert.equal(z128.dtype, 'complex128');
    assert.ok(z128.toTypedArray() instanceof Float64Array);
    assert.deepEqual(Array.from(z128.toTypedArray() as Float64Array), [0.1, -0.2]);
    assert.match(z.toString(), /dtype=complex64/);
  });

  test('conversions between dtypes follow PyTorch (truncation toward zero, bool)', () => {
    const x = tensor([1.7, -1.7, 0, 2.5]);
    assert.deepEqual(x.to('int32').toArray(), [1, -1, 0, 2]);
    assert.equal(x.to('int32').dtype, 'int32');
    assert.deepEqual(x.to('bool').toArray(), [1, 1, 0, 1]);
    assert.equal(x.long().dtype, 'int64');
    assert.equal(x.double().dtype, 'float64');
    assert.equal(x.half().dtype, 'float16');
    assert.equal(x.to({ dtype: 'float64', device: 'cpu' }).dtype, 'float64');
    assert.equal(x.cpu().device, 'cpu');
  });

  test('bad data or shape is an ArgumentError', () => {
    assert.throws(
      () => tensor([1, 2, 3], [2, 2]),
      (e: unknown) => e instanceof ImmunizeError && e.code === 'E_ARGUMENT' && /3 elements/.test(e.message),
    );
    assert.throws(
      () => zeros([2, -1]),
      (e: unknown) => e instanceof ImmunizeError && e.code === 'E_ARGUMENT' && /-1/.test(e.message),
    );
    assert.throws(
      () => zeros([1.5]),
      (e: unknown) => e instanceof ImmunizeError && e.code === 'E_ARGUMENT',
    );
  });

  test('constant and range constructors', () => {
    assert.deepEqual(zeros([2, 2]).toArray(), [0, 0, 0, 0]);
    assert.equal(zeros([2]).dtype, 'float32');
    assert.deepEqual(ones([3], { dtype: 'int32' }).toArray(), [1, 1, 1]);
    assert.equal(ones([3], { dtype: 'int32' }).dtype, 'int32');
    assert.deepEqual(full([2], 7.5).toArray(), [7.5, 7.5]);
    assert.equal(full([2], 7).dtype, 'float32', 'full() infers float32 as torch.full does for a float fill');
    assertShape(empty([3, 0]), [3, 0], 'empty with a zero dim');
    const r = arange(5);
    assert.equal(r.dtype, 'int64');
    assert.deepEqual(r.toArray(), [0, 1, 2, 3, 4]);
    assert.deepEqual(arange(1, 2, 0.25).toArray(), [1, 1.25, 1.5, 1.75]);
    assert.equal(arange(1, 2, 0.25).dtype, 'float32');
    assert.deepEqual(arange(10, 0, -3).toArray(), [10, 7, 4, 1]);
    assertValues(linspace(0, 1, 5), [0, 0.25, 0.5, 0.75, 1], 'linspace');
    assert.deepEqual(eye(3).toArray(), [1, 0, 0, 0, 1, 0, 0, 0, 1]);
  });
});

// ---- metadata ---------------------------------------------------------------------------------

describe('metadata', () => {
  test('shape is a copy; size(d) accepts negatives and rejects out-of-range dims', () => {
    const t = zeros([2, 3, 4]);
    const s = t.shape;
    s[0] = 100;
    assertShape(t, [2, 3, 4], 'after mutating a returned shape');
    assert.equal(t.size(0), 2);
    assert.equal(t.size(-1), 4);
    assert.deepEqual(t.size(), [2, 3, 4]);
    assert.equal(t.dim(), 3);
    assert.throws(
      () => t.size(3),
      (e: unknown) => e instanceof ImmunizeError && e.code === 'E_ARGUMENT' && /size\(3\)/.test(e.message),
    );
    assert.throws(
      () => t.size(-4),
      (e: unknown) => e instanceof ImmunizeError && e.code === 'E_ARGUMENT',
    );
  });

  test('shape is refreshed after an in-place op that changes nothing but values', () => {
    const t = zeros([2, 2]);
    t.add_(3);
    assertShape(t, [2, 2], 'after add_');
    assert.deepEqual(t.toArray(), [3, 3, 3, 3]);
  });
});

// ---- views and shape ops ------------------------------------------------------------------------

describe('views and shape ops', () => {
  const X_SHAPE = [2, 3, 4] as const;
  const xData = Array.from({ length: 24 }, (_, i) => i);
  const mk = (): Tensor => arange(0, 24, 1, { dtype: 'float32' }).reshape(2, 3, 4);
  const at = (i: number, j: number, k: number): number => xData[flatIndex(X_SHAPE, [i, j, k])]!;
  /** The values of x[i, j, :]. */
  const row = (i: number, j: number): number[] => [0, 1, 2, 3].map((k) => at(i, j, k));

  test('reshape and view (with -1), and views share storage', () => {
    const x = mk();
    assertShape(x, [2, 3, 4], 'reshape');
    const v = x.view(6, -1);
    assertShape(v, [6, 4], 'view(6, -1)');
    assert.deepEqual(v.toArray(), xData);
    assertShape(x.reshape([4, 6]), [4, 6], 'reshape([4, 6])');
    assertShape(x.reshape(-1), [24], 'reshape(-1)');
    v.narrow(0, 0, 1).fill_(-1); // writes through two views into x
    assert.deepEqual(
      x.toArray().slice(0, 5),
      [-1, -1, -1, -1, 4],
      'writing through a view must change the base tensor',
    );
  });

  test('permute and transpose give strided views with the right values', () => {
    const x = mk();
    const p = x.permute(2, 0, 1);
    assertShape(p, [4, 2, 3], 'permute(2, 0, 1)');
    assert.deepEqual(p.strides, [1, 12, 4]);
    const expected: number[] = [];
    for (let k = 0; k < 4; k++) for (let i = 0; i < 2; i++) for (let j = 0; j < 3; j++) expected.push(at(i, j, k));
    assert.deepEqual(p.toArray(), expected, 'permute values (toTypedArray must read strided tensors in logical order)');
    assert.deepEqual(x.permute([2, 0, 1]).toArray(), expected, 'permute with an array');
    const c = p.contiguous();
    assert.deepEqual(c.strides, [6, 3, 1]);
    assert.deepEqual(c.toArray(), expected);
    const t = x.transpose(0, 2);
    assertShape(t, [4, 3, 2], 'transpose(0, 2)');
    const te: number[] = [];
    for (let k = 0; k < 4; k++) for (let j = 0; j < 3; j++) for (let i = 0; i < 2; i++) te.push(at(i, j, k));
    assert.deepEqual(t.toArray(), te);
    const m = tensor([1, 2, 3, 4, 5, 6], [2, 3]).mT;
    assertShape(m, [3, 2], 'mT');
    assert.deepEqual(m.toArray(), [1, 4, 2, 5, 3, 6]);
  });

  test('narrow, slice (with step and negatives) and select', () => {
    const x = mk();
    const n = x.narrow(1, 1, 2);
    assertShape(n, [2, 2, 4], 'narrow(1, 1, 2)');
    const ne: number[] = [];
    for (let i = 0; i < 2; i++) for (let j = 1; j < 3; j++) for (let k = 0; k < 4; k++) ne.push(at(i, j, k));
    assert.deepEqual(n.toArray(), ne);
    const s = x.slice(2, 1, null, 2);
    assertShape(s, [2, 3, 2], 'slice(2, 1, end, 2)');
    const se: number[] = [];
    for (let i = 0; i < 2; i++) for (let j = 0; j < 3; j++) for (const k of [1, 3]) se.push(at(i, j, k));
    assert.deepEqual(s.toArray(), se);
    const neg = x.slice(1, -2);
    assertShape(neg, [2, 2, 4], 'slice(1, -2)');
    assert.deepEqual(neg.toArray(), ne);
    const sel = x.select(1, 2);
    assertShape(sel, [2, 4], 'select(1, 2)');
    assert.deepEqual(sel.toArray(), [...row(0, 2), ...row(1, 2)]);
    assert.deepEqual(x.select(-1, -1).toArray(), [3, 7, 11, 15, 19, 23], 'select(-1, -1)');
  });

  test('advanced indexing with index tensors and masks', () => {
    const x = mk();
    const r = x.index([i64([1, 0]), i64([2, 0])]);
    assertShape(r, [2, 4], 'x[[1,0],[2,0]]');
    assert.deepEqual(r.toArray(), [...row(1, 2), ...row(0, 0)]);
    const r2 = x.index([null, i64([2, 2, 0])]);
    assertShape(r2, [2, 3, 4], 'x[:, [2,2,0]]');
    const r2e: number[] = [];
    for (let i = 0; i < 2; i++) for (const j of [2, 2, 0]) for (let k = 0; k < 4; k++) r2e.push(at(i, j, k));
    assert.deepEqual(r2.toArray(), r2e);
    const mask = x.select(2, 0).gt(10); // [2, 3] bool: rows with first element > 10
    const r3 = x.index([mask]);
    const rows: number[] = [];
    for (let i = 0; i < 2; i++)
      for (let j = 0; j < 3; j++) if (at(i, j, 0) > 10) for (let k = 0; k < 4; k++) rows.push(at(i, j, k));
    assertShape(r3, [rows.length / 4, 4], 'boolean mask index');
    assert.deepEqual(r3.toArray(), rows);
    assert.deepEqual(
      x
        .indexSelect(2, i64([3, 0]))
        .select(0, 0)
        .select(0, 0)
        .toArray(),
      [3, 0],
      'indexSelect',
    );
    assert.deepEqual(
      tensor([10, 20, 30, 40], [2, 2])
        .gather(1, i64([1, 0, 0, 0], [2, 2]))
        .toArray(),
      [20, 10, 30, 30],
      'gather',
    );
  });

  test('indexPut_ with and without accumulate', () => {
    const z = zeros([5]);
    z.indexPut_([i64([0, 2, 2])], tensor([1, 2, 3]), true);
    assert.deepEqual(z.toArray(), [1, 0, 5, 0, 0], 'accumulate sums repeated indices');
    const y = zeros([2, 3]);
    const ret = y.indexPut_([i64([1, 0]), i64([2, 1])], tensor([7, 8]));
    assert.equal(ret, y, 'indexPut_ returns this');
    assert.deepEqual(y.toArray(), [0, 8, 0, 0, 0, 7]);
    const m = arange(0, 6, 1, { dtype: 'float32' }).reshape(2, 3);
    m.indexPut_([m.gt(3)], tensor([-1]));
    assert.deepEqual(m.toArray(), [0, 1, 2, 3, -1, -1], 'put through a boolean mask with a broadcast value');
  });

  test('cat and stack', () => {
    const a = tensor([1, 2, 3, 4], [2, 2]);
    const b = tensor([5, 6], [1, 2]);
    const c0 = cat([a, b]);
    assertShape(c0, [3, 2], 'cat dim 0');
    assert.deepEqual(c0.toArray(), [1, 2, 3, 4, 5, 6]);
    const c1 = cat([a, tensor([9, 8], [2, 1])], 1);
    assertShape(c1, [2, 3], 'cat dim 1');
    assert.deepEqual(c1.toArray(), [1, 2, 9, 3, 4, 8]);
    const s0 = stack([tensor([1, 2]), tensor([3, 4])]);
    assertShape(s0, [2, 2], 'stack dim 0');
    assert.deepEqual(s0.toArray(), [1, 2, 3, 4]);
    const s1 = stack([tensor([1, 2]), tensor([3, 4])], -1);
    assertShape(s1, [2, 2], 'stack dim -1');
    assert.deepEqual(s1.toArray(), [1, 3, 2, 4]);
  });

  test('chunk and split', () => {
    const x = arange(7);
    const ch = x.chunk(3);
    assert.deepEqual(
      ch.map((t) => t.shape[0]),
      [3, 3, 1],
      'chunk(3) of 7',
    );
    assert.deepEqual(
      ch.map((t) => t.toArray()),
      [[0, 1, 2], [3, 4, 5], [6]],
    );
    const sp = x.split(2);
    assert.deepEqual(
      sp.map((t) => t.toArray()),
      [[0, 1], [2, 3], [4, 5], [6]],
      'split(2)',
    );
    const sv = x.split([1, 4, 2]);
    assert.deepEqual(
      sv.map((t) => t.toArray()),
      [[0], [1, 2, 3, 4], [5, 6]],
      'split([1, 4, 2])',
    );
    const m = arange(6).reshape(2, 3).chunk(3, 1);
    assert.deepEqual(
      m.map((t) => t.toArray()),
      [
        [0, 3],
        [1, 4],
        [2, 5],
      ],
      'chunk along dim 1',
    );
    assert.throws(() => x.split([1, 1]), /split/i, 'sizes that do not add up must throw');
  });

  test('expand (stride 0), expandAs and repeat', () => {
    const r = tensor([1, 2, 3, 4], [1, 4]);
    const e = r.expand(3, -1);
    assertShape(e, [3, 4], 'expand(3, -1)');
    assert.deepEqual(e.strides, [0, 1], 'expand is a stride-0 view');
    assert.deepEqual(e.toArray(), [1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4]);
    assertShape(r.expandAs(zeros([2, 4])), [2, 4], 'expandAs');
    const rep = tensor([1, 2], [1, 2]).repeat(2, 3);
    assertShape(rep, [2, 6], 'repeat(2, 3)');
    assert.deepEqual(rep.toArray(), [1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2]);
    assert.deepEqual(tensor([1, 2]).repeatInterleave(2).toArray(), [1, 1, 2, 2]);
  });

  test('flatten, unflatten, squeeze and unsqueeze', () => {
    const x = mk();
    assertShape(x.flatten(), [24], 'flatten()');
    assertShape(x.flatten(1), [2, 12], 'flatten(1)');
    assertShape(x.flatten(0, 1), [6, 4], 'flatten(0, 1)');
    assert.deepEqual(x.flatten(1).toArray(), xData);
    assertShape(x.flatten(1).unflatten(1, [3, 4]), [2, 3, 4], 'unflatten');
    const s = zeros([1, 3, 1, 2]);
    assertShape(s.squeeze(), [3, 2], 'squeeze()');
    assertShape(s.squeeze(2), [1, 3, 2], 'squeeze(2)');
    assertShape(s.squeeze(1), [1, 3, 1, 2], 'squeeze(1) of a size-3 dim is a no-op');
    assertShape(s.unsqueeze(0), [1, 1, 3, 1, 2], 'unsqueeze(0)');
    assertShape(s.unsqueeze(-1), [1, 3, 1, 2, 1], 'unsqueeze(-1)');
  });

  test('flip, roll, tril/triu', () => {
    const x = tensor([1, 2, 3, 4, 5, 6], [2, 3]);
    assert.deepEqual(x.flip(0).toArray(), [4, 5, 6, 1, 2, 3]);
    assert.deepEqual(x.flip(1).toArray(), [3, 2, 1, 6, 5, 4]);
    assert.deepEqual(x.flip([0, 1]).toArray(), [6, 5, 4, 3, 2, 1]);
    assert.deepEqual(x.roll(1, 1).toArray(), [3, 1, 2, 6, 4, 5]);
    const m = ones([3, 3]);
    assert.deepEqual(m.tril().toArray(), [1, 0, 0, 1, 1, 0, 1, 1, 1]);
    assert.deepEqual(m.triu(1).toArray(), [0, 1, 1, 0, 0, 1, 0, 0, 0]);
  });
});

// ---- elementwise ------------------------------------------------------------------------------

describe('elementwise math with broadcasting', () => {
  const A = jsRandom(6, 1, -2, 2); // [2, 3]
  const B = jsRandom(3, 2, 0.5, 2); // [3]
  const C = jsRandom(2, 3, 0.5, 2); // [2, 1]
  const a = (): Tensor => f64(A, [2, 3]);
  const b = (): Tensor => f64(B, [3]);
  const c = (): Tensor => f64(C, [2, 1]);
  const bin = (f: (x: number, y: number, col: number, row: number) => number): number[] =>
    A.map((x, i) => f(x, B[i % 3]!, i % 3, Math.floor(i / 3)));

  test('binary ops broadcast [2,3] with [3] and [2,1]', () => {
    const outer = c().add(b());
    assertShape(outer, [2, 3], '[2,1] + [3]');
    const cases: [string, Tensor, number[]][] = [
      ['add', a().add(b()), bin((x, y) => x + y)],
      ['add with alpha', a().add(b(), 2), bin((x, y) => x + 2 * y)],
      ['sub', a().sub(b()), bin((x, y) => x - y)],
      ['mul', a().mul(b()), bin((x, y) => x * y)],
      ['div', a().div(b()), bin((x, y) => x / y)],
      ['mul by [2,1]', a().mul(c()), A.map((x, i) => x * C[Math.floor(i / 3)]!)],
      ['[2,1] + [3]', outer, [0, 1].flatMap((i) => B.map((y) => C[i]! + y))],
      ['pow tensor', b().pow(c()), [0, 1].flatMap((i) => B.map((y) => y ** C[i]!))],
      ['pow 2', a().pow(2), A.map((x) => x * x)],
      ['remainder (Python sign convention)', a().remainder(1.5), A.map((x) => x - 1.5 * Math.floor(x / 1.5))],
      ['div floor', a().div(b(), 'floor'), bin((x, y) => Math.floor(x / y))],
      ['div trunc', a().div(b(), 'trunc'), bin((x, y) => Math.trunc(x / y))],
      ['rsub', a().rsub(1), A.map((x) => 1 - x)],
      ['minimum', a().minimum(b()), bin((x, y) => Math.min(x, y))],
      ['maximum', a().maximum(b()), bin((x, y) => Math.max(x, y))],
      ['atan2', a().atan2(b()), bin((x, y) => Math.atan2(x, y))],
      ['lerp', a().lerp(zeros([3], { dtype: 'float64' }), 0.25), A.map((x) => 0.75 * x)],
    ];
    for (const [name, t, want] of cases) assertValues(t, want, name);
    assert.throws(
      () => a().add(zeros([4], { dtype: 'float64' })),
      /size|shape|match/i,
      'non-broadcastable shapes must throw',
    );
  });

  test('in-place ops', () => {
    const t = a();
    t.add_(b()).mul_(2).sub_(1).div_(4);
    assertValues(
      t,
      bin((x, y) => ((x + y) * 2 - 1) / 4),
      'add_/mul_/sub_/div_ chain',
    );
  });

  test('unary math against Math.*', () => {
    const pos = B.concat(C); // positive values
    const p = f64(pos, [5]);
    const x = a();
    const cases: [string, Tensor, number[]][] = [
      ['neg', x.neg(), A.map((v) => -v)],
      ['exp', x.exp(), A.map(Math.exp)],
      ['expm1', x.expm1(), A.map(Math.expm1)],
      ['log', p.log(), pos.map(Math.log)],
      ['log2', p.log2(), pos.map(Math.log2)],
      ['log10', p.log10(), pos.map(Math.log10)],
      ['log1p', p.log1p(), pos.map(Math.log1p)],
      ['sqrt', p.sqrt(), pos.map(Math.sqrt)],
      ['rsqrt', p.rsqrt(), pos.map((v) => 1 / Math.sqrt(v))],
      ['square', x.square(), A.map((v) => v * v)],
      ['reciprocal', p.reciprocal(), pos.map((v) => 1 / v)],
      ['floor', x.floor(), A.map(Math.floor)],
      ['ceil', x.ceil(), A.map(Math.ceil)],
      ['trunc', x.trunc(), A.map(Math.trunc)],
      ['frac', x.frac(), A.map((v) => v - Math.trunc(v))],
      ['sin', x.sin(), A.map(Math.sin)],
      ['cos', x.cos(), A.map(Math.cos)],
      ['tan', x.tan(), A.map(Math.tan)],
      ['atan', x.atan(), A.map(Math.atan)],
      ['asin', x.mul(0.4).asin(), A.map((v) => Math.asin(v * 0.4))],
      ['acos', x.mul(0.4).acos(), A.map((v) => Math.acos(v * 0.4))],
      ['tanh', x.tanh(), A.map(Math.tanh)],
      ['sigmoid', x.sigmoid(), A.map((v) => 1 / (1 + Math.exp(-v)))],
    ];
    for (const [name, t, want] of cases) assertValues(t, want, name, 1e-12, 1e-12);
  });

  test('round is half-to-even, with decimals', () => {
    assert.deepEqual(tensor([0.5, 1.5, 2.5, -0.5, -1.5, 2.4]).round().toArray(), [0, 2, 2, -0, -2, 2]);
    assertValues(f64([1.2345, -2.5678], [2]).round(2), [1.23, -2.57], 'round(2)', 1e-12);
  });

  test('sign and abs', () => {
    const x = tensor([-2, 0, 3, -0.5, Infinity, -Infinity]);
    assert.deepEqual(x.sign().toArray(), [-1, 0, 1, -1, 1, -1]);
    assert.deepEqual(x.abs().toArray(), [2, 0, 3, 0.5, Infinity, Infinity]);
    const i = i64([-3, 0, 4]);
    assert.deepEqual(i.sign().toArray(), [-1, 0, 1]);
    assert.equal(i.abs().dtype, 'int64');
    assert.deepEqual(i.abs().toArray(), [3, 0, 4]);
  });

  test('comparisons give bool tensors, with tensors (broadcast) and scalars', () => {
    const x = a();
    const y = b();
    const checks: [string, Tensor, number[]][] = [
      ['eq', x.eq(x), A.map(() => 1)],
      ['ne', x.ne(y), bin((p, q) => Number(p !== q))],
      ['lt', x.lt(y), bin((p, q) => Number(p < q))],
      ['le', x.le(0), A.map((p) => Number(p <= 0))],
      ['gt', x.gt(y), bin((p, q) => Number(p > q))],
      ['ge', x.ge(0.5), A.map((p) => Number(p >= 0.5))],
      ['eqS', tensor([1, 2, 1]).eq(1), [1, 0, 1]],
    ];
    for (const [name, t, want] of checks) {
      assert.equal(t.dtype, 'bool', `${name} dtype`);
      assert.deepEqual(t.toArray(), want, `${name} values`);
    }
    const m1 = tensor(new Uint8Array([1, 1, 0, 0]), [4], { dtype: 'bool' });
    const m2 = tensor(new Uint8Array([1, 0, 1, 0]), [4], { dtype: 'bool' });
    assert.deepEqual(m1.logicalAnd(m2).toArray(), [1, 0, 0, 0]);
    assert.deepEqual(m1.logicalOr(m2).toArray(), [1, 1, 1, 0]);
    assert.deepEqual(m1.logicalXor(m2).toArray(), [0, 1, 1, 0]);
    assert.deepEqual(m1.logicalNot().toArray(), [0, 0, 1, 1]);
    const special = tensor([NaN, Infinity, 1]);
    assert.deepEqual(special.isnan().toArray(), [1, 0, 0]);
    assert.deepEqual(special.isinf().toArray(), [0, 1, 0]);
    assert.deepEqual(special.isfinite().toArray(), [0, 0, 1]);
    assert.deepEqual(special.nanToNum(0, 9).toArray(), [0, 9, 1]);
    assert.equal(tensor([1, 2]).equal(tensor([1, 2])), true);
    assert.equal(tensor([1, 2]).equal(tensor([1, 2.5])), false);
    assert.equal(tensor([1, 2]).allclose(tensor([1, 2 + 1e-7])), true);
    assert.equal(tensor([1, 2]).allclose(tensor([1, 2.1])), false);
  });

  test('where with tensors and scalars (broadcast)', () => {
    const cond = a().gt(0);
    const y = b().neg();
    assertValues(
      where(cond, a(), y),
      bin((p, q) => (p > 0 ? p : -q)),
      'where(cond, x, y)',
    );
    assertValues(
      where(cond, a(), 7),
      A.map((p) => (p > 0 ? p : 7)),
      'where(cond, x, 7)',
    );
    assertValues(
      where(cond, -7, a()),
      A.map((p) => (p > 0 ? -7 : p)),
      'where(cond, -7, x)',
    );
    assertValues(
      where(cond, 1, 0),
      A.map((p) => (p > 0 ? 1 : 0)),
      'where(cond, 1, 0)',
    );
    assertValues(
      a().where(cond, 0),
      A.map((p) => (p > 0 ? p : 0)),
      'x.where(cond, 0)',
    );
    assertValues(
      a().maskedFill(cond, -1),
      A.map((p) => (p > 0 ? -1 : p)),
      'maskedFill',
    );
    assertValues(
      a().maskedSelect(cond),
      A.filter((p) => p > 0),
      'maskedSelect',
    );
  });

  test('clamp with scalar and tensor bounds', () => {
    const lo = f64([-1, 0, 0.5], [3]);
    const hi = f64([1.5, 1.5, 1.5], [3]);
    const cases: [string, Tensor, number[]][] = [
      ['clamp(-0.5, 0.5)', a().clamp(-0.5, 0.5), A.map((v) => Math.min(0.5, Math.max(-0.5, v)))],
      ['clamp(0)', a().clamp(0), A.map((v) => Math.max(0, v))],
      ['clamp(null, 0)', a().clamp(null, 0), A.map((v) => Math.min(0, v))],
      ['clampMin', a().clampMin(0.2), A.map((v) => Math.max(0.2, v))],
      ['clampMax', a().clampMax(0.2), A.map((v) => Math.min(0.2, v))],
      [
        'clamp(tensor, tensor) broadcasting',
        a().clamp(lo, hi),
        bin((v, _y, col) => Math.min(1.5, Math.max([-1, 0, 0.5][col]!, v))),
      ],
      ['clamp(tensor min only)', a().clamp(lo), bin((v, _y, col) => Math.max([-1, 0, 0.5][col]!, v))],
      ['clamp(null, tensor max)', a().clamp(null, lo), bin((v, _y, col) => Math.min([-1, 0, 0.5][col]!, v))],
    ];
    for (const [name, t, want] of cases) assertValues(t, want, name);
    const t = a();
    t.clamp_(-0.1, 0.1);
    assertValues(
      t,
      A.map((v) => Math.min(0.1, Math.max(-0.1, v))),
      'clamp_',
    );
    assert.throws(
      () => a().clamp(),
      (e: unknown) => e instanceof ImmunizeError && e.code === 'E_ARGUMENT',
    );
    assert.throws(
      () => a().clamp(lo, 1),
      (e: unknown) => e instanceof ImmunizeError && e.code === 'E_ARGUMENT' && /tensor and number/.test(e.message),
    );
  });
});

// ---- integer scalar promotion -------------------------------------------------------------

describe('scalar type promotion as in Python', () => {
  test('int64 tensor + 1 stays int64; + 1.5 becomes float32', () => {
    const x = arange(4);
    const y = x.add(1);
    assert.equal(y.dtype, 'int64', 'int64 + 1');
    assert.deepEqual(y.toArray(), [1, 2, 3, 4]);
    const z = x.add(1.5);
    assert.equal(z.dtype, 'float32', 'int64 + 1.5');
    assert.deepEqual(z.toArray(), [1.5, 2.5, 3.5, 4.5]);
    assert.equal(x.mul(3).dtype, 'int64', 'int64 * 3');
    assert.equal(x.mul(0.5).dtype, 'float32', 'int64 * 0.5');
    assert.equal(x.div(2).dtype, 'float32', 'true division of ints gives float');
    assert.deepEqual(x.div(2).toArray(), [0, 0.5, 1, 1.5]);
    assert.equal(x.div(2, 'floor').dtype, 'int64', 'floor division of ints stays int');
  });

  test('narrower integer and float types keep their dtype with scalars', () => {
    assert.equal(tensor(new Int32Array([1, 2])).add(1).dtype, 'int32');
    assert.equal(
      tensor(new Uint8Array([250]))
        .add(10)
        .toArray()[0],
      4,
      'uint8 wraps around',
    );
    assert.equal(tensor(new Int32Array([1, 2])).add(0.5).dtype, 'float32');
    assert.equal(tensor(new Float64Array([1])).add(1).dtype, 'float64');
    assert.equal(tensor([1]).half().add(1.5).dtype, 'float16');
    assert.equal(arange(3).add(tensor([0.5, 0.5, 0.5])).dtype, 'float32', 'int64 tensor + float32 tensor');
    assert.equal(arange(3).add(true).dtype, 'int64');
  });
});

// ---- reductions ----------------------------------------------------------------------------

describe('reductions', () => {
  const SH = [2, 3, 4];
  const D = jsRandom(24, 11, -3, 3);
  const x = (): Tensor => f64(D, SH);

  test('sum and mean over dims with and without keepdim', () => {
    assertValues(x().sum(), [jsSum(D)], 'sum()', 1e-12);
    assertValues(x().mean(), [jsMean(D)], 'mean()', 1e-12);
    for (const dims of [[0], [1], [2], [0, 2], [-1]]) {
      const norm = dims.map((d) => (d < 0 ? d + 3 : d));
      const want = reduceJs(D, SH, norm, jsSum);
      const keep = x().sum(dims, true);
      assertShape(
        keep,
        SH.map((s, d) => (norm.includes(d) ? 1 : s)),
        `sum(${dims}, keepdim)`,
      );
      assertValues(keep, want, `sum(${dims}, keepdim)`, 1e-12);
      const drop = x().sum(dims);
      assertShape(
        drop,
        SH.filter((_, d) => !norm.includes(d)),
        `sum(${dims})`,
      );
      assertValues(drop, want, `sum(${dims})`, 1e-12);
      assertValues(x().mean(dims, true), reduceJs(D, SH, norm, jsMean), `mean(${dims})`, 1e-12);
    }
    assert.equal(arange(4).sum().dtype, 'int64', 'sum of int64 stays int64');
    assert.equal(arange(4).sum(undefined, false, 'float64').dtype, 'float64', 'sum with dtype');
    assertValues(
      x().prod(1),
      reduceJs(D, SH, [1], (v) => v.reduce((p, q) => p * q, 1)),
      'prod(1)',
      1e-12,
    );
  });

  test('var and std with correction 0 and 1', () => {
    assertValues(x().var(), [jsVar(1)(D)], 'var()', 1e-12);
    assertValues(x().var(undefined, { correction: 0 }), [jsVar(0)(D)], 'var(correction 0)', 1e-12);
    for (const corr of [0, 1]) {
      const v = x().var(2, { correction: corr, keepdim: true });
      assertShape(v, [2, 3, 1], `var(2, keepdim)`);
      assertValues(v, reduceJs(D, SH, [2], jsVar(corr)), `var(2, correction ${corr})`, 1e-12);
      assertValues(
        x().std([0, 1], { correction: corr }),
        reduceJs(D, SH, [0, 1], (g) => Math.sqrt(jsVar(corr)(g))),
        `std([0,1], correction ${corr})`,
        1e-12,
      );
    }
  });

  test('min/max return [values, indices]; amax/amin; argmax/argmin', () => {
    const [mx, ix] = x().max(1);
    assertShape(mx, [2, 4], 'max(1) values');
    assert.equal(ix.dtype, 'int64');
    const wantMax: number[] = [];
    const wantIx: number[] = [];
    const wantMin: number[] = [];
    const wantIn: number[] = [];
    for (let i = 0; i < 2; i++) {
      for (let k = 0; k < 4; k++) {
        const col = [0, 1, 2].map((j) => D[flatIndex(SH, [i, j, k])]!);
        wantMax.push(Math.max(...col));
        wantIx.push(col.indexOf(Math.max(...col)));
        wantMin.push(Math.min(...col));
        wantIn.push(col.indexOf(Math.min(...col)));
      }
    }
    assert.deepEqual(mx.toArray(), wantMax);
    assert.deepEqual(ix.toArray(), wantIx);
    const [mn, inn] = x().min(1, true);
    assertShape(mn, [2, 1, 4], 'min(1, keepdim)');
    assert.deepEqual(mn.toArray(), wantMin);
    assert.deepEqual(inn.toArray(), wantIn);
    assert.equal(x().max().item(), Math.max(...D));
    assert.equal(x().min().item(), Math.min(...D));
    assert.deepEqual(x().amax(1).toArray(), wantMax);
    assert.deepEqual(x().amin([1]).toArray(), wantMin);
    assert.deepEqual(x().argmax(1).toArray(), wantIx);
    assert.deepEqual(x().argmin(1).toArray(), wantIn);
    assert.equal(x().argmax().item(), D.indexOf(Math.max(...D)), 'global argmax is a flat index');
    assertShape(x().argmax(2, true), [2, 3, 1], 'argmax keepdim');
  });

  test('norm p = 1, 2, inf over dims', () => {
    assertValues(x().norm(), [Math.sqrt(jsSum(D.map((v) => v * v)))], 'norm()', 1e-12);
    assertValues(
      x().norm(1, 2),
      reduceJs(D, SH, [2], (v) => jsSum(v.map(Math.abs))),
      'norm(1, 2)',
      1e-12,
    );
    assertValues(
      x().norm(2, [0, 2], true),
      reduceJs(D, SH, [0, 2], (v) => Math.hypot(...v)),
      'norm(2, [0,2], keepdim)',
      1e-12,
    );
    assertShape(x().norm(2, [0, 2], true), [1, 3, 1], 'norm keepdim');
    assertValues(
      x().norm(Infinity, 1),
      reduceJs(D, SH, [1], (v) => Math.max(...v.map(Math.abs))),
      'norm(inf, 1)',
      1e-12,
    );
    assertValues(
      x().logsumexp(2),
      reduceJs(D, SH, [2], (v) => Math.log(jsSum(v.map(Math.exp)))),
      'logsumexp(2)',
      1e-12,
    );
  });

  test('all / any', () => {
    const m = tensor(new Uint8Array([1, 1, 0, 1]), [2, 2], { dtype: 'bool' });
    assert.equal(m.all().item(), 0);
    assert.equal(m.any().item(), 1);
    assert.deepEqual(m.all(1).toArray(), [1, 0]);
    assert.deepEqual(m.any(0).toArray(), [1, 1]);
  });
});

// ---- linear algebra ------------------------------------------------------------------------------

function jsMatmul(a: readonly number[], b: readonly number[], n: number, k: number, m: number): number[] {
  const out = new Array<number>(n * m).fill(0);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < m; j++) {
      let s = 0;
      for (let l = 0; l < k; l++) s += a[i * k + l]! * b[l * m + j]!;
      out[i * m + j] = s;
    }
  return out;
}

describe('linear algebra', () => {
  const A = jsRandom(2 * 3 * 4, 21);
  const B = jsRandom(2 * 4 * 5, 22);

  test('matmul (2-d and batched with broadcasting), mm, dot, outer', () => {
    const a2 = A.slice(0, 12);
    const b2 = B.slice(0, 20);
    const r = f64(a2, [3, 4]).matmul(f64(b2, [4, 5]));
    assertShape(r, [3, 5], 'matmul');
    assertValues(r, jsMatmul(a2, b2, 3, 4, 5), 'matmul', 1e-12);
    assertValues(f64(a2, [3, 4]).mm(f64(b2, [4, 5])), jsMatmul(a2, b2, 3, 4, 5), 'mm', 1e-12);
    const rb = f64(A, [2, 3, 4]).matmul(f64(b2, [4, 5]));
    assertShape(rb, [2, 3, 5], 'batched matmul with a broadcast right side');
    assertValues(
      rb,
      [...jsMatmul(A.slice(0, 12), b2, 3, 4, 5), ...jsMatmul(A.slice(12), b2, 3, 4, 5)],
      'batched matmul',
      1e-12,
    );
    const mv = f64(a2, [3, 4]).matmul(f64([1, 2, 3, 4], [4]));
    assertShape(mv, [3], 'matrix @ vector');
    assertValues(mv, jsMatmul(a2, [1, 2, 3, 4], 3, 4, 1), 'matrix @ vector', 1e-12);
    assert.equal(
      f64([1, 2, 3], [3])
        .dot(f64([4, 5, 6], [3]))
        .item(),
      32,
    );
    assert.deepEqual(
      tensor([1, 2])
        .outer(tensor([3, 4, 5]))
        .toArray(),
      [3, 4, 5, 6, 8, 10],
    );
  });

  test('bmm and baddbmm (beta = 1, 0.5 and 0)', () => {
    const want = [...jsMatmul(A.slice(0, 12), B.slice(0, 20), 3, 4, 5), ...jsMatmul(A.slice(12), B.slice(20), 3, 4, 5)];
    const a = f64(A, [2, 3, 4]);
    const b = f64(B, [2, 4, 5]);
    assertValues(a.bmm(b), want, 'bmm', 1e-12);
    const I = jsRandom(30, 23);
    const inp = f64(I, [2, 3, 5]);
    assertValues(
      inp.baddbmm(a, b),
      want.map((v, i) => I[i]! + v),
      'baddbmm default',
      1e-12,
    );
    assertValues(
      inp.baddbmm(a, b, { beta: 0.5, alpha: 2 }),
      want.map((v, i) => 0.5 * I[i]! + 2 * v),
      'baddbmm beta .5 alpha 2',
      1e-12,
    );
    const nanIn = full([2, 3, 5], NaN, { dtype: 'float64' });
    assertValues(
      nanIn.baddbmm(a, b, { beta: 0, alpha: 3 }),
      want.map((v) => 3 * v),
      'baddbmm beta 0 ignores a NaN input',
      1e-12,
    );
    const bc = f64(I.slice(0, 5), [5]);
    assertValues(
      bc.baddbmm(a, b),
      want.map((v, i) => I[i % 5]! + v),
      'baddbmm with a broadcast input',
      1e-12,
    );
    const m = f64(I.slice(0, 15), [3, 5]);
    assertValues(
      m.addmm(f64(A.slice(0, 12), [3, 4]), f64(B.slice(0, 20), [4, 5]), { beta: 2 }),
      jsMatmul(A.slice(0, 12), B.slice(0, 20), 3, 4, 5).map((v, i) => 2 * I[i]! + v),
      'addmm',
      1e-12,
    );
  });

  test('linear = x Wᵀ + b, with and without bias', () => {
    const X = jsRandom(2 * 4, 31);
    const W = jsRandom(3 * 4, 32);
    const Bv = [0.5, -1, 2];
    const wT: number[] = [];
    for (let l = 0; l < 4; l++) for (let o = 0; o < 3; o++) wT.push(W[o * 4 + l]!);
    const xw = jsMatmul(X, wT, 2, 4, 3);
    const y = F.linear(f64(X, [2, 4]), f64(W, [3, 4]), f64(Bv, [3]));
    assertShape(y, [2, 3], 'linear');
    assertValues(
      y,
      xw.map((v, i) => v + Bv[i % 3]!),
      'linear with bias',
      1e-12,
    );
    assertValues(F.linear(f64(X, [2, 4]), f64(W, [3, 4])), xw, 'linear without bias', 1e-12);
  });
});

// ---- sorting, scans ------------------------------------------------------------------------

describe('sort, topk, cumsum', () => {
  const V = [3, -1, 4, 1, -5, 9, 2, 6];
  test('sort ascending/descending with indices, and argsort', () => {
    const [vals, idx] = tensor(V).sort();
    const asc = [...V].sort((p, q) => p - q);
    assert.deepEqual(vals.toArray(), asc);
    assert.deepEqual(
      idx.toArray(),
      asc.map((v) => V.indexOf(v)),
    );
    assert.equal(idx.dtype, 'int64');
    const [dv, di] = tensor(V, [2, 4]).sort(1, true);
    assert.deepEqual(dv.toArray(), [4, 3, 1, -1, 9, 6, 2, -5]);
    assert.deepEqual(di.toArray(), [2, 0, 3, 1, 1, 3, 2, 0]);
    const [sv, si] = tensor([2, 1, 2, 1, 2]).sort(-1, false, true);
    assert.deepEqual(sv.toArray(), [1, 1, 2, 2, 2]);
    assert.deepEqual(si.toArray(), [1, 3, 0, 2, 4], 'stable sort keeps equal elements in order');
    assert.deepEqual(tensor(V).argsort(-1, true).toArray(), [5, 7, 2, 0, 6, 3, 1, 4]);
  });

  test('topk largest and smallest', () => {
    const [v, i] = tensor(V).topk(3);
    assert.deepEqual(v.toArray(), [9, 6, 4]);
    assert.deepEqual(i.toArray(), [5, 7, 2]);
    const [sv, si] = tensor(V, [2, 4]).topk(2, 1, false);
    assert.deepEqual(sv.toArray(), [-1, 1, -5, 2]);
    assert.deepEqual(si.toArray(), [1, 3, 0, 2]);
    const [kv, ki] = tensor(V).kthvalue(2);
    assert.equal(kv.item(), -1);
    assert.equal(ki.item(), 1);
    assert.equal(tensor([1, 3, 2, 4, 5]).median().item(), 3);
    assertValues(tensor([1, 2, 3, 4]).quantile(0.5), [2.5], 'quantile');
  });

  test('cumsum and cumprod along dims', () => {
    assert.deepEqual(tensor(V).cumsum(0).toArray(), [3, 2, 6, 7, 2, 11, 13, 19]);
    assert.deepEqual(tensor(V, [2, 4]).cumsum(1).toArray(), [3, 2, 6, 7, -5, 4, 6, 12]);
    assert.deepEqual(tensor(V, [2, 4]).cumsum(0).toArray(), [3, -1, 4, 1, -2, 8, 6, 7]);
    assert.equal(arange(4).cumsum(0).dtype, 'int64');
    assert.deepEqual(arange(4).cumsum(0, 'float32').toArray(), [0, 1, 3, 6]);
    assert.equal(arange(4).cumsum(0, 'float32').dtype, 'float32');
    assert.deepEqual(tensor([1, 2, 3, 4]).cumprod(0).toArray(), [1, 2, 6, 24]);
  });
});

// ---- item and printing ---------------------------------------------------------------------------

describe('item() and toString()', () => {
  test('item() of one-element tensors of several dtypes', () => {
    assert.equal(tensor([2.5]).item(), 2.5);
    assert.equal(tensor(2.5, [], { dtype: 'float64' }).item(), 2.5);
    assert.equal(tensor(new Float64Array([0.1]), [1, 1]).item(), 0.1);
    assert.equal(i64([2 ** 40]).item(), 2 ** 40);
    assert.equal(tensor([3]).gt(1).item(), 1, 'bool item is 1');
    assert.equal(tensor([0]).gt(1).item(), 0, 'bool item is 0');
    assert.equal(tensor(new Uint16Array([0x3c00]), [1]).item(), 1, 'float16 item');
    assert.throws(
      () => tensor([1, 2]).item(),
      (e: unknown) => e instanceof ImmunizeError && e.code === 'E_ARGUMENT' && /\[2\]/.test(e.message),
    );
  });

  test('toString shows values for small tensors and metadata always', () => {
    const s = tensor([1, 2.5], [2, 1]).toString();
    assert.equal(s, 'Tensor([1, 2.5], shape=[2, 1], dtype=float32, device=cpu)');
    const big = zeros([3, 4]).toString();
    assert.equal(big, 'Tensor(shape=[3, 4], dtype=float32, device=cpu)');
    const g = zeros([1], { requiresGrad: true }).toString();
    assert.match(g, /requiresGrad/);
    const i = arange(3).toString();
    assert.equal(i, 'Tensor([0, 1, 2], shape=[3], dtype=int64, device=cpu)');
    const d = zeros([2, 5], { dtype: 'float64' });
    d.dispose();
    assert.equal(d.toString(), 'Tensor(disposed: Tensor(float64, [2, 5], cpu))');
    assert.equal(
      `${tensor([1])}`,
      'Tensor([1], shape=[1], dtype=float32, device=cpu)',
      'template literal uses toString',
    );
  });
});

// ---- devices ---------------------------------------------------------------------------------------

describe('devices', () => {
  test(
    "checkDevice('cuda') throws E_NO_CUDA on a CPU-only libtorch",
    { skip: cudaDeviceCount() > 0 ? 'this libtorch has CUDA devices' : false },
    () => {
      for (const dev of ['cuda', 'cuda:0', 'cuda:3']) {
        assert.throws(
          () => checkDevice(dev),
          (e: unknown) => e instanceof ImmunizeError && e.code === 'E_NO_CUDA' && e.message.includes(`'${dev}'`),
          `checkDevice('${dev}') must throw E_NO_CUDA naming the device`,
        );
      }
      assert.throws(
        () => zeros([2], { device: 'cuda' }),
        (e: unknown) => e instanceof ImmunizeError && e.code === 'E_NO_CUDA',
      );
      assert.throws(
        () => tensor([1]).to('cuda'),
        (e: unknown) => e instanceof ImmunizeError && e.code === 'E_NO_CUDA',
      );
      assert.throws(
        () => tensor([1]).cuda(),
        (e: unknown) => e instanceof ImmunizeError && e.code === 'E_NO_CUDA',
      );
    },
  );

  test('unknown devices are argument errors', () => {
    for (const dev of ['tpu', 'cuda:x', 'CPU', '', 'mps']) {
      assert.throws(
        () => checkDevice(dev),
        (e: unknown) => e instanceof ImmunizeError && e.code === 'E_ARGUMENT',
        `checkDevice(${JSON.stringify(dev)}) must be E_ARGUMENT`,
      );
    }
    assert.throws(
      () => checkDevice(0),
      (e: unknown) => e instanceof ImmunizeError && e.code === 'E_ARGUMENT' && /0 of type number/.test(e.message),
    );
    assert.equal(checkDevice('cpu'), 'cpu');
  });

  test(
    'cuda:N beyond the device count is an error when CUDA exists',
    { skip: cudaDeviceCount() === 0 ? 'no CUDA devices' : false },
    () => {
      assert.throws(
        () => checkDevice(`cuda:${cudaDeviceCount()}`),
        (e: unknown) => e instanceof ImmunizeError && e.code === 'E_ARGUMENT',
      );
    },
  );
});
