// Errors: libtorch failures become TorchError naming the operator and carrying libtorch's message;
// argument conversion problems name the argument; nothing aborts the process, and the engine keeps
// giving correct values after every error.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ArgumentError, ImmunizeError, TorchError, describe as describeValue } from '../../src/errors.js';
import { F, Generator, Tensor, cat, grad, randn, tensor, zeros, stack } from '../../src/torch/index.js';
import { op } from '../../src/torch/ops.js';

/** After an error, a small computation must still give exact values. */
function assertStillWorks(where: string): void {
  const a = tensor([1, 2, 3, 4], [2, 2]);
  const b = tensor([5, 6, 7, 8], [2, 2]);
  assert.deepEqual(a.matmul(b).toArray(), [19, 22, 43, 50], `${where}: matmul after the error`);
  const x = tensor([1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 1, 3, 3]);
  assert.deepEqual(F.conv2d(x, zeros([1, 1, 2, 2]).add(1)).toArray(), [12, 16, 24, 28], `${where}: conv2d after the error`);
}

function torchErr(opName: string, ...contains: RegExp[]) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof TorchError, `expected a TorchError, got ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
    assert.ok(e instanceof ImmunizeError);
    assert.equal(e.name, 'TorchError');
    assert.equal(e.code, 'E_TORCH');
    assert.equal(e.op, opName, `e.op is '${e.op}'`);
    assert.ok(e.message.startsWith(`${opName}: `), `message must start with the op name: ${e.message}`);
    for (const re of contains) assert.match(e.message, re);
    assert.doesNotMatch(e.message, /Exception raised from|frame #\d/, 'no C++ backtrace in the message');
    return true;
  };
}

describe('libtorch errors become TorchError', () => {
  test('conv2d with mismatched channels', () => {
    const x = randn([1, 3, 8, 8]);
    const w = randn([4, 2, 3, 3]);
    assert.throws(() => F.conv2d(x, w), torchErr('aten::conv2d', /channels/, /\[4, 2, 3, 3\]/, /\[1, 3, 8, 8\]/));
    assertStillWorks('conv2d error');
  });

  test('matmul shape mismatch', () => {
    assert.throws(() => randn([2, 3]).matmul(randn([4, 5])), torchErr('aten::matmul', /cannot be multiplied/, /2x3 and 4x5/));
    assert.throws(() => randn([2, 3, 4]).bmm(randn([2, 5, 6])), torchErr('aten::bmm'));
    assertStillWorks('matmul error');
  });

  test('view with a bad shape', () => {
    assert.throws(() => randn([2, 3]).view(4, 2), torchErr('aten::view', /shape '\[4, 2\]' is invalid for input of size 6/));
    assert.throws(() => randn([2, 3]).view(-1, -1), torchErr('aten::view', /only one dimension can be inferred/));
    assert.throws(() => randn([4, 4]).transpose(0, 1).view(16), torchErr('aten::view', /stride|contiguous|reshape/i));
    assertStillWorks('view error');
  });

  test('index out of range (select, index with a tensor, narrow, gather)', () => {
    const x = randn([2, 3]);
    assert.throws(() => x.select(0, 5), torchErr('aten::select.int', /index 5 out of range/));
    assert.throws(() => x.select(3, 0), torchErr('aten::select.int', /[Dd]imension out of range/));
    assert.throws(() => x.index([tensor(new BigInt64Array([7n]))]), torchErr('aten::index.Tensor', /index 7 is out of bounds for dimension 0 with size 2/));
    assert.throws(() => x.narrow(1, 2, 5), torchErr('aten::narrow', /exceeds|out of range|start/i));
    assert.throws(() => x.gather(1, tensor(new BigInt64Array([0n, 9n, 0n, 0n, 0n, 0n]), [2, 3])), torchErr('aten::gather', /out of bounds|index/i));
    assertStillWorks('index error');
  });

  test('other libtorch failures: cat of mismatched shapes, dtype mismatch in-place, broadcasting', () => {
    assert.throws(() => cat([zeros([2, 3]), zeros([2, 4])]), torchErr('aten::cat', /[Ss]izes of tensors must match/));
    assert.throws(() => stack([zeros([2]), zeros([3])]), torchErr('aten::stack'));
    assert.throws(() => tensor(new Int32Array([1])).add_(0.5), torchErr('aten::add_.Scalar', /Float|Int|cast/));
    assert.throws(() => zeros([2, 3]).add(zeros([4])), torchErr('aten::add.Tensor', /size of tensor a \(3\) must match the size of tensor b \(4\)/));
    assert.throws(() => grad(zeros([2], { requiresGrad: true }).sum().detach(), [zeros([1], { requiresGrad: true })]), (e: unknown) => e instanceof TorchError && /does not require grad|grad_fn/.test(e.message));
    assertStillWorks('misc errors');
  });

  test('a hundred errors in a row leave the engine healthy', () => {
    for (let i = 0; i < 100; i++) {
      assert.throws(() => randn([2, 3]).matmul(randn([2, 3])), TorchError);
    }
    assertStillWorks('after 100 errors');
  });
});

describe('bad arguments name the argument', () => {
  const narrow = op('aten::narrow');
  const addT = op('aten::add', 'Tensor');

  test('wrong JS type for an int argument', () => {
    const x = randn([2, 3]);
    assert.throws(() => narrow(x.handle, 'a', 0, 1), torchErr('aten::narrow', /argument 'dim' expected an integer but received string/));
    assert.throws(() => narrow(x.handle, 0, 0.5, 1), torchErr('aten::narrow', /argument 'start' expected an integer but received 0\.5/));
    assert.throws(() => narrow(x.handle, 0, 0, Infinity), torchErr('aten::narrow', /argument 'length' expected an integer/));
    assert.throws(() => x.narrow('0' as unknown as number, 0, 1), torchErr('aten::narrow', /argument 'dim' expected an integer but received string/), 'through the typed wrapper');
    assert.throws(() => x.sum([0], 'yes' as unknown as boolean), torchErr('aten::sum.dim_IntList', /argument 'keepdim' expected a boolean but received string/));
    assert.throws(() => x.transpose(0, null as unknown as number), torchErr('aten::transpose.int', /argument 'dim1' expected an integer but received null|missing required argument 'dim1'/));
    assert.throws(() => x.reshape([2, 'x'] as unknown as number[]), torchErr('aten::reshape', /argument 'shape' expected an integer but received string/));
    assert.throws(() => x.add('1' as unknown as number), torchErr('aten::add.Scalar', /argument 'other' expected a number but received string/));
    assertStillWorks('bad int arguments');
  });

  test('missing required argument', () => {
    const x = randn([2, 3]);
    assert.throws(() => narrow(x.handle), torchErr('aten::narrow', /missing required argument 'dim'/));
    assert.throws(() => narrow(x.handle, 0, 0), torchErr('aten::narrow', /missing required argument 'length'/));
    assert.throws(() => narrow(), torchErr('aten::narrow', /missing required argument 'self'/));
    assert.throws(() => narrow(x.handle, 0, 0, 1, 5), torchErr('aten::narrow', /takes 4 arguments but received 5/));
    assertStillWorks('missing arguments');
  });

  test('a non-tensor where a tensor handle is needed is a clean error', () => {
    const x = randn([2, 3]);
    assert.throws(() => addT(x.handle, {}), torchErr('aten::add.Tensor', /argument 'other' expected a Tensor but received object/));
    assert.throws(() => addT(x.handle, 3), torchErr('aten::add.Tensor', /argument 'other' expected a Tensor but received number/));
    assert.throws(() => addT(x.handle, 'x'), torchErr('aten::add.Tensor', /argument 'other' expected a Tensor but received string/));
    assert.throws(() => addT(x.handle, [x.handle]), torchErr('aten::add.Tensor', /argument 'other' expected a Tensor but received array/));
    assert.throws(() => addT(x, x.handle), torchErr('aten::add.Tensor', /argument 'self' expected a Tensor but received object/), 'a Tensor object is not a handle');
    // another native object (a generator handle) is rejected by its type tag, not misread as a tensor
    assert.throws(() => addT(x.handle, new Generator({ seed: 1 }).handle), torchErr('aten::add.Tensor', /argument 'other' expected a Tensor but received generator/));
    assert.throws(() => cat([x, {} as Tensor]), (e: unknown) => e instanceof ArgumentError && /cat: expected tensors\[1\] to be a Tensor but received an object/.test(e.message));
    assert.throws(() => x.add({} as unknown as Tensor), torchErr('aten::add.Scalar', /argument 'other' expected a number but received object/));
    assert.throws(() => x.matmul({} as unknown as Tensor), (e: unknown) => e instanceof ImmunizeError && /'other'/.test(e.message), 'an object without a handle');
    assert.throws(() => x.matmul(null as unknown as Tensor), TypeError, 'null is a plain TypeError in the wrapper');
    assertStillWorks('non-tensor arguments');
  });

  test('options validated in TypeScript are ArgumentErrors saying what was expected and received', () => {
    const x = randn([1, 3, 5, 5]);
    const w = randn([2, 3, 3, 3]);
    const isArg = (re: RegExp) => (e: unknown): boolean => e instanceof ArgumentError && e.code === 'E_ARGUMENT' && e.name === 'ArgumentError' && re.test(e.message);
    assert.throws(() => F.conv2d(x, w, null, { stride: 'a' as unknown as number }), isArg(/Expected stride to be an integer or a pair of integers but received a of type string/));
    assert.throws(() => F.conv2d(x, w, null, { padding: [1, 2, 3] as unknown as [number, number] }), isArg(/padding.*an array of length 3/));
    assert.throws(() => F.conv2d(x, w, null, { dilation: 1.5 }), isArg(/dilation.*1\.5 of type number/));
    assert.throws(() => zeros([2, 'x'] as unknown as number[]), isArg(/shape/));
    assert.throws(() => zeros([2], { dtype: 'float8' as 'float32' }), isArg(/Expected dtype to be one of .* but received float8 of type string/));
    assert.throws(() => F.avgPool2d(x, [2] as unknown as [number, number]), isArg(/kernel/));
    assert.equal(describeValue([1, 2]), 'an array of length 2');
    assert.equal(describeValue(null), 'null');
    assert.equal(describeValue(new Map()), 'an object (Map)');
  });

  test('operator lookup of an unknown operator is a clean error', () => {
    const bogus = op('aten::definitely_not_an_op');
    assert.throws(() => bogus(), (e: unknown) => e instanceof TorchError && e.op === 'op' && /no operator aten::definitely_not_an_op in this libtorch/.test(e.message));
    const badOverload = op('aten::add', 'NoSuchOverload');
    assert.throws(() => badOverload(), (e: unknown) => e instanceof TorchError && /no operator aten::add\.NoSuchOverload/.test(e.message));
    assertStillWorks('unknown operator');
  });
});
