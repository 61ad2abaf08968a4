// Errors: libtorch failures become TorchError naming the operator and carrying libtorch's message;
// argument conversion problems name the argument; nothing aborts the process, and the engine keeps
// giving correct values after every error.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ArgumentError, ImmunizeError, TorchError, describe as describeValue } from '../../src/errors.js';
import {
  F,
  Generator,
  Tensor,
  cat,
  fft,
  grad,
  hasOp,
  liveTensors,
  manualSeed,
  randint,
  randn,
  schemaOf,
  setNumThreads,
  stack,
  tensor,
  zeros,
} from '../../src/torch/index.js';
import { native, type GeneratorHandle, type Handle } from '../../src/torch/native.js';
import { op, registeredOpCount } from '../../src/torch/ops.js';
import { assertImmunizeError } from '../helpers/errors.js';

/** An ArgumentError (E_ARGUMENT) whose message matches `re`. */
function isArg(re: RegExp) {
  return (e: unknown): boolean => {
    assert.ok(
      e instanceof ArgumentError,
      `expected an ArgumentError, got ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`,
    );
    assert.equal(e.code, 'E_ARGUMENT');
    assert.equal(e.name, 'ArgumentError');
    assert.match(e.message, re);
    return true;
  };
}

/** After an error, a small computation must still give exact values. */
function assertStillWorks(where: string): void {
  const a = tensor([1, 2, 3, 4], [2, 2]);
  const b = tensor([5, 6, 7, 8], [2, 2]);
  assert.deepEqual(a.matmul(b).toArray(), [19, 22, 43, 50], `${where}: matmul after the error`);
  const x = tensor([1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 1, 3, 3]);
  assert.deepEqual(
    F.conv2d(x, zeros([1, 1, 2, 2]).add(1)).toArray(),
    [12, 16, 24, 28],
    `${where}: conv2d after the error`,
  );
}

function torchErr(opName: string, ...contains: RegExp[]) {
  return (e: unknown): boolean => {
    assertImmunizeError(e, TorchError, 'TorchError', 'E_TORCH');
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
    assert.throws(
      () => randn([2, 3]).matmul(randn([4, 5])),
      torchErr('aten::matmul', /cannot be multiplied/, /2x3 and 4x5/),
    );
    assert.throws(() => randn([2, 3, 4]).bmm(randn([2, 5, 6])), torchErr('aten::bmm'));
    assertStillWorks('matmul error');
  });

  test('view with a bad shape', () => {
    assert.throws(
      () => randn([2, 3]).view(4, 2),
      torchErr('aten::view', /shape '\[4, 2\]' is invalid for input of size 6/),
    );
    assert.throws(() => randn([2, 3]).view(-1, -1), torchErr('aten::view', /only one dimension can be inferred/));
    assert.throws(() => randn([4, 4]).transpose(0, 1).view(16), torchErr('aten::view', /stride|contiguous|reshape/i));
    assertStillWorks('view error');
  });

  test('index out of range (select, index with a tensor, narrow, gather)', () => {
    const x = randn([2, 3]);
    assert.throws(() => x.select(0, 5), torchErr('aten::select.int', /index 5 out of range/));
    assert.throws(() => x.select(3, 0), torchErr('aten::select.int', /[Dd]imension out of range/));
    assert.throws(
      () => x.index([tensor(new BigInt64Array([7n]))]),
      torchErr('aten::index.Tensor', /index 7 is out of bounds for dimension 0 with size 2/),
    );
    assert.throws(() => x.narrow(1, 2, 5), torchErr('aten::narrow', /exceeds|out of range|start/i));
    assert.throws(
      () => x.gather(1, tensor(new BigInt64Array([0n, 9n, 0n, 0n, 0n, 0n]), [2, 3])),
      torchErr('aten::gather', /out of bounds|index/i),
    );
    assertStillWorks('index error');
  });

  test('other libtorch failures: cat of mismatched shapes, dtype mismatch in-place, broadcasting', () => {
    assert.throws(() => cat([zeros([2, 3]), zeros([2, 4])]), torchErr('aten::cat', /[Ss]izes of tensors must match/));
    assert.throws(() => stack([zeros([2]), zeros([3])]), torchErr('aten::stack'));
    assert.throws(() => tensor(new Int32Array([1])).add_(0.5), torchErr('aten::add_.Scalar', /Float|Int|cast/));
    assert.throws(
      () => zeros([2, 3]).add(zeros([4])),
      torchErr('aten::add.Tensor', /size of tensor a \(3\) must match the size of tensor b \(4\)/),
    );
    assert.throws(
      () => grad(zeros([2], { requiresGrad: true }).sum().detach(), [zeros([1], { requiresGrad: true })]),
      (e: unknown) => e instanceof TorchError && /does not require grad|grad_fn/.test(e.message),
    );
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
    assert.throws(
      () => narrow(x.handle, 'a', 0, 1),
      torchErr('aten::narrow', /argument 'dim' expected an integer but received a of type string/),
    );
    assert.throws(
      () => narrow(x.handle, 0, 0.5, 1),
      torchErr('aten::narrow', /argument 'start' expected an integer but received 0\.5 of type number/),
    );
    assert.throws(
      () => narrow(x.handle, 0, 0, Infinity),
      torchErr('aten::narrow', /argument 'length' expected an integer but received Infinity of type number/),
    );
    assert.throws(
      () => narrow(x.handle, true, 0, 1),
      torchErr('aten::narrow', /argument 'dim' expected an integer but received true of type boolean/),
      'no boolean-as-int',
    );
    assert.throws(
      () => narrow(x.handle, 0n, 0, 1),
      torchErr('aten::narrow', /argument 'dim' expected an integer but received 0 of type bigint/),
    );
    assert.throws(
      () => narrow(x.handle, 0, 0, 2 ** 63),
      torchErr(
        'aten::narrow',
        /argument 'length' expected an integer within int64's range but received 9223372036854776000 of type number/,
      ),
    );
    assert.throws(
      () => x.sum([0], 'yes' as unknown as boolean),
      torchErr('aten::sum.dim_IntList', /argument 'keepdim' expected a boolean but received yes of type string/),
    );
    assert.throws(
      () => x.add('1' as unknown as number),
      torchErr('aten::add.Scalar', /argument 'other' expected a number but received 1 of type string/),
    );
    // The typed wrappers check integers before native code sees them (ArgumentError, not TorchError).
    assert.throws(
      () => x.narrow('0' as unknown as number, 0, 1),
      isArg(/^Expected an integer for dim but received 0 of type string$/),
      'through the typed wrapper',
    );
    assert.throws(
      () => x.transpose(0, null as unknown as number),
      isArg(/^Expected an integer for dim1 but received null$/),
    );
    assert.throws(
      () => x.reshape([2, 'x'] as unknown as number[]),
      isArg(/^Expected an integer for shape\[1\] but received x of type string$/),
    );
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
    assert.throws(
      () => addT(x.handle, {}),
      torchErr('aten::add.Tensor', /argument 'other' expected a Tensor but received an object/),
    );
    assert.throws(
      () => addT(x.handle, 3),
      torchErr('aten::add.Tensor', /argument 'other' expected a Tensor but received 3 of type number/),
    );
    assert.throws(
      () => addT(x.handle, 'x'),
      torchErr('aten::add.Tensor', /argument 'other' expected a Tensor but received x of type string/),
    );
    assert.throws(
      () => addT(x.handle, [x.handle]),
      torchErr('aten::add.Tensor', /argument 'other' expected a Tensor but received an array of length 1/),
    );
    assert.throws(
      () => addT(x, x.handle),
      torchErr('aten::add.Tensor', /argument 'self' expected a Tensor but received an object/),
      'a Tensor object is not a handle',
    );
    // another native object (a generator handle) is rejected by its type tag, not misread as a tensor
    assert.throws(
      () => addT(x.handle, new Generator({ seed: 1 }).handle),
      torchErr('aten::add.Tensor', /argument 'other' expected a Tensor but received a Generator/),
    );
    assert.throws(
      () => cat([x, {} as Tensor]),
      (e: unknown) =>
        e instanceof ArgumentError &&
        /cat: expected tensors\[1\] to be a Tensor but received an object/.test(e.message),
    );
    assert.throws(
      () => x.add({} as unknown as Tensor),
      torchErr('aten::add.Scalar', /argument 'other' expected a number but received an object/),
    );
    assert.throws(
      () => x.matmul({} as unknown as Tensor),
      (e: unknown) => e instanceof ImmunizeError && /'other'/.test(e.message),
      'an object without a handle',
    );
    assert.throws(() => x.matmul(null as unknown as Tensor), TypeError, 'null is a plain TypeError in the wrapper');
    assertStillWorks('non-tensor arguments');
  });

  test('options validated in TypeScript are ArgumentErrors saying what was expected and received', () => {
    const x = randn([1, 3, 5, 5]);
    const w = randn([2, 3, 3, 3]);
    assert.throws(
      () => F.conv2d(x, w, null, { stride: 'a' as unknown as number }),
      isArg(/Expected an integer or a pair of integers for stride but received a of type string/),
    );
    assert.throws(
      () => F.conv2d(x, w, null, { padding: [1, 2, 3] as unknown as [number, number] }),
      isArg(/padding.*an array of length 3/),
    );
    assert.throws(() => F.conv2d(x, w, null, { dilation: 1.5 }), isArg(/dilation.*1\.5 of type number/));
    assert.throws(() => zeros([2, 'x'] as unknown as number[]), isArg(/shape/));
    assert.throws(
      () => zeros([2], { dtype: 'float8' as 'float32' }),
      isArg(/Expected dtype to be one of .* but received float8 of type string/),
    );
    assert.throws(() => F.avgPool2d(x, [2] as unknown as [number, number]), isArg(/kernel/));
    assert.equal(describeValue([1, 2]), 'an array of length 2');
    assert.equal(describeValue(null), 'null');
    assert.equal(describeValue(new Map()), 'an object (Map)');
  });

  test('operator lookup of an unknown operator is a clean error', () => {
    const bogus = op('aten::definitely_not_an_op');
    assert.throws(
      () => bogus(),
      (e: unknown) =>
        e instanceof TorchError &&
        e.op === 'op' &&
        /no operator aten::definitely_not_an_op in this libtorch/.test(e.message),
    );
    const badOverload = op('aten::add', 'NoSuchOverload');
    assert.throws(
      () => badOverload(),
      (e: unknown) => e instanceof TorchError && /no operator aten::add\.NoSuchOverload/.test(e.message),
    );
    assertStillWorks('unknown operator');
  });
});

describe('native entry points: every failure is a JS error, never an abort', () => {
  /** An Error from the addon's boundary, naming `name` (E_TORCH, op, message prefix). */
  const nativeErr =
    (name: string, ...contains: RegExp[]) =>
    (e: unknown): boolean => {
      assert.ok(e instanceof Error, `${name}: expected an Error, got ${String(e)}`);
      const err = e as Error & { code?: string; op?: string };
      assert.equal(err.code, 'E_TORCH', `${name}: code`);
      assert.equal(err.op, name, `${name}: op`);
      assert.ok(
        err.message.startsWith(`${name}: `),
        `${name}: message must start with the function's name: ${err.message}`,
      );
      for (const re of contains) assert.match(err.message, re, name);
      return true;
    };
  // Functions that take no arguments (they ignore any given); every other one must refuse junk.
  const noArgs = new Set([
    'liveTensors',
    'opCount',
    'isGradEnabled',
    'getNumThreads',
    'cudaDeviceCount',
    'info',
    'defaultGenerator',
    'autocastState',
    'retainFreedMemory',
  ]);

  test('wrong argument types to each native function throw a named JS error', () => {
    const api = native as unknown as Record<string, (...a: unknown[]) => unknown>;
    const names = Object.keys(api).filter((k) => typeof api[k] === 'function');
    assert.ok(names.length >= 30, `the addon exports ${names.length} functions`);
    const checked: string[] = [];
    for (const name of names) {
      if (noArgs.has(name)) continue;
      // (no valid seed here: manualSeed must not succeed and reseed the default generator)
      for (const bad of [1.5, 'x', {}, [], null, Symbol('s')]) {
        const args = Array.from({ length: 6 }, () => bad);
        assert.throws(() => api[name]!(...args), nativeErr(name), `${name}(${String(bad)}, ...)`);
      }
      checked.push(name);
    }
    assert.ok(
      checked.includes('call') &&
        checked.includes('fromFile') &&
        checked.includes('manualSeed') &&
        checked.includes('setGradEnabled'),
      checked.join(', '),
    );
    assert.equal(native.isGradEnabled(), true, 'setGradEnabled(junk) changed nothing');
    assertStillWorks('junk arguments to every native function');
  });

  test('a JS exception raised while native code reads an argument becomes the cause of a named error', () => {
    const x = randn([2, 3]);
    const boom = new Error('boom');
    const shape = Object.defineProperty([2, 3], 1, {
      get: () => {
        throw boom;
      },
    }) as number[];
    assert.throws(
      () => native.fromBytes(new Float32Array(6), shape, 6),
      (e: unknown) => {
        nativeErr('fromBytes', /boom/)(e);
        assert.equal((e as Error).cause, boom);
        return true;
      },
    );
    const getter = Object.defineProperty([x.handle], 0, {
      get: () => {
        throw boom;
      },
    }) as unknown as Handle[];
    assert.throws(() => native.backward(getter, [], undefined, false), nativeErr('backward', /boom/));
    assertStillWorks('exception while reading an argument');
  });

  test('non-integers are refused natively, not truncated (shape, dtype, offsets, seeds, threads, op ids)', () => {
    const data = new Float32Array(2);
    assert.throws(
      () => native.fromBytes(data, [2.5], 6),
      nativeErr('fromBytes', /argument 'shape' expected an integer but received 2\.5 of type number/),
    );
    assert.throws(
      () => native.fromBytes(data, [-2], 6),
      nativeErr('fromBytes', /argument 'shape' expected non-negative sizes but received \[-2\]/),
    );
    assert.throws(() => native.fromBytes(data, [2 ** 64], 6), nativeErr('fromBytes', /within int64's range/));
    assert.throws(
      () => native.fromBytes(data, [2], 6.5),
      nativeErr('fromBytes', /argument 'dtype' expected an integer but received 6\.5/),
    );
    assert.throws(
      () => native.fromBytes(data, [2], 99),
      nativeErr('fromBytes', /argument 'dtype' expected an integer from 0 to \d+ but received 99 of type number/),
    );
    assert.throws(
      () => native.fromFile('/nonexistent', 0.5, 8, [2], 6),
      nativeErr('fromFile', /argument 'offset' expected an integer but received 0\.5/),
    );
    assert.throws(
      () => native.fromFile('/nonexistent', -1, 8, [2], 6),
      nativeErr('fromFile', /argument 'offset' expected an integer from 0 to/),
    );
    assert.throws(
      () => native.fromFile('/nonexistent', 0, 8.5, [2], 6),
      nativeErr('fromFile', /argument 'byteLength' expected an integer but received 8\.5/),
    );
    assert.throws(
      () => native.manualSeed(1.5),
      nativeErr('manualSeed', /argument 'seed' expected an integer but received 1\.5 of type number/),
    );
    assert.throws(
      () => native.manualSeed(2n ** 64n),
      nativeErr(
        'manualSeed',
        /argument 'seed' expected an integer from -2\^63 to 2\^64-1 but received 18446744073709551616 of type bigint/,
      ),
    );
    assert.throws(
      () => native.newGenerator(1.5, 'cpu'),
      nativeErr('newGenerator', /argument 'seed' expected an integer/),
    );
    const g = new Generator({ seed: 7 });
    assert.throws(() => native.generatorManualSeed(g.handle, 7.25), nativeErr('generatorManualSeed', /7\.25/));
    assert.equal(g.initialSeed(), 7n, 'the refused seed left the generator alone');
    const threads = native.getNumThreads();
    assert.throws(
      () => native.setNumThreads(1.5),
      nativeErr('setNumThreads', /argument 'threads' expected an integer but received 1\.5/),
    );
    assert.throws(
      () => native.setNumThreads(0),
      nativeErr('setNumThreads', /argument 'threads' expected an integer from 1 to 2147483647 but received 0/),
    );
    assert.equal(native.getNumThreads(), threads, 'thread count unchanged');
    const id = native.op('aten::neg', '');
    const x = tensor([1, 2]);
    assert.deepEqual(new Tensor(native.call(id, x.handle) as Handle).toArray(), [-1, -2], 'a valid id works');
    assert.throws(
      () => native.call(id + 0.5, x.handle),
      nativeErr('call', /argument 'id' expected an integer but received \d+\.5 of type number/),
      'not truncated to the id below',
    );
    assert.throws(
      () => native.call(-1, x.handle),
      nativeErr('call', /argument 'id' expected an integer from 0 to \d+ but received -1/),
    );
    assert.throws(
      () => native.call(native.opCount(), x.handle),
      nativeErr('call', /argument 'id' expected an integer from 0 to/),
    );
    assert.throws(() => native.schema(1.5), nativeErr('schema', /argument 'id' expected an integer but received 1\.5/));
    // enum codes (ScalarType) inside an operator call are range-checked before libtorch casts them
    assert.throws(
      () => op('aten::to', 'dtype')(x.handle, 99),
      torchErr('aten::to.dtype', /argument 'dtype' expected an integer from 0 to \d+ but received 99 of type number/),
    );
    assert.throws(
      () => op('aten::to', 'dtype')(x.handle, 6.5),
      torchErr('aten::to.dtype', /argument 'dtype' expected an integer but received 6\.5/),
    );
    assertStillWorks('non-integer arguments');
  });

  test('a disposed handle and the wrong kind of handle are named errors', () => {
    const t = tensor([1, 2]);
    const h = t.handle;
    t.dispose();
    assert.throws(() => native.shape(h), nativeErr('shape', /argument 'tensor' is a Tensor that was disposed/));
    assert.throws(
      () => native.generatorSeed(h as unknown as GeneratorHandle),
      nativeErr('generatorSeed', /argument 'generator' expected a Generator but received a Tensor/),
    );
    const g = new Generator({ seed: 1 });
    assert.throws(
      () => native.shape(g.handle as unknown as Handle),
      nativeErr('shape', /argument 'tensor' expected a Tensor but received a Generator/),
    );
    native.dispose(h);
    assert.equal(native.isDisposed(h), true, 'dispose stays idempotent on a disposed handle');
  });
});

describe('integer arguments are checked in TypeScript: 1.5 is refused with a clear message', () => {
  const x = randn([2, 3]);
  const image = randn([1, 2, 4, 4]);
  const weight = randn([2, 1, 3, 3]);
  const cases: [string, () => unknown, RegExp][] = [
    ['zeros shape', () => zeros([2, 1.5]), /^Expected an integer ≥ 0 for shape\[1\] but received 1\.5 of type number$/],
    [
      'tensor shape',
      () => tensor([1, 2], [1.5]),
      /^Expected an integer ≥ 0 for shape\[0\] but received 1\.5 of type number$/,
    ],
    ['randn shape', () => randn([-1]), /^Expected an integer ≥ 0 for shape\[0\] but received -1 of type number$/],
    ['sum dims', () => x.sum(1.5), /^Expected an integer for dims but received 1\.5 of type number$/],
    ['mean dims list', () => x.mean([0, 1.5]), /^Expected an integer for dims\[1\] but received 1\.5 of type number$/],
    ['softmax dim', () => x.softmax(1.5), /^Expected an integer for dim but received 1\.5 of type number$/],
    ['size', () => x.size(1.5), /^Expected an integer for dim but received 1\.5 of type number$/],
    ['narrow start', () => x.narrow(0, 1.5, 1), /^Expected an integer for start but received 1\.5 of type number$/],
    ['select index', () => x.select(0, 0.5), /^Expected an integer for index but received 0\.5 of type number$/],
    ['slice step', () => x.slice(1, 0, 2, 1.5), /^Expected an integer for step but received 1\.5 of type number$/],
    ['reshape', () => x.reshape(3, 1.5), /^Expected an integer for shape\[1\] but received 1\.5 of type number$/],
    ['permute', () => x.permute([1, 0.5]), /^Expected an integer for dims\[1\] but received 0\.5 of type number$/],
    ['topk k', () => x.topk(1.5), /^Expected an integer for k but received 1\.5 of type number$/],
    ['cat dim', () => cat([x, x], 1.5), /^Expected an integer for dim but received 1\.5 of type number$/],
    ['chunk', () => x.chunk(1.5), /^Expected an integer for chunks but received 1\.5 of type number$/],
    ['roll shifts', () => x.roll(1.5, 0), /^Expected an integer for shifts but received 1\.5 of type number$/],
    [
      'conv2d groups',
      () => F.conv2d(image, weight, null, { groups: 1.5 }),
      /^Expected an integer ≥ 1 for groups but received 1\.5 of type number$/,
    ],
    [
      'pixelShuffle',
      () => F.pixelShuffle(image, 1.5),
      /^Expected an integer ≥ 1 for factor but received 1\.5 of type number$/,
    ],
    ['fft n', () => fft.fft(x, { n: 1.5 }), /^Expected an integer ≥ 1 for n but received 1\.5 of type number$/],
    [
      'manualSeed',
      () => manualSeed(1.5),
      /^Expected an integer or a bigint for seed but received 1\.5 of type number$/,
    ],
    [
      'Generator seed',
      () => new Generator({ seed: 2 ** 53 }),
      /^Expected an integer or a bigint for seed but received 9007199254740992 of type number$/,
    ],
    [
      'setNumThreads',
      () => setNumThreads(1.5),
      /^Expected an integer from 1 to 2147483647 for threads but received 1\.5 of type number$/,
    ],
    ['randint high', () => randint(0, 1.5, [2]), /^Expected an integer for high but received 1\.5 of type number$/],
  ];
  for (const [what, fn, re] of cases) {
    test(what, () => {
      const before = liveTensors();
      assert.throws(fn, isArg(re));
      assert.equal(liveTensors(), before, `${what}: nothing was allocated before the check`);
    });
  }
});

describe('operator lookup by name does not grow a registry', () => {
  test('the same schema gets the same id however often it is looked up', () => {
    const first = native.op('aten::logaddexp2', '');
    const count = registeredOpCount();
    for (let i = 0; i < 1000; i++) assert.equal(native.op('aten::logaddexp2', ''), first);
    for (let i = 0; i < 100; i++) {
      assert.equal(hasOp('aten::logaddexp2'), true);
      assert.match(schemaOf('aten::logaddexp2'), /^aten::logaddexp2\(Tensor self, Tensor other\) -> Tensor$/);
    }
    assert.equal(registeredOpCount(), count, 'no entry added by repeated lookups');
  });

  test('a new schema adds exactly one entry; overloads are distinct; unknown names add none', () => {
    const before = registeredOpCount();
    const a = native.op('aten::hypot', '');
    assert.equal(registeredOpCount(), before + 1, 'first lookup of aten::hypot registers it');
    assert.equal(native.op('aten::hypot', ''), a);
    const b = native.op('aten::hypot', 'out');
    assert.notEqual(b, a, 'another overload is another operator');
    assert.equal(registeredOpCount(), before + 2);
    for (let i = 0; i < 100; i++) assert.equal(hasOp('aten::not_an_operator_at_all'), false);
    assert.equal(registeredOpCount(), before + 2, 'failed lookups add nothing');
    assert.match(native.schema(b), /^aten::hypot\.out\(/);
  });

  test('an op() caller used many times resolves its id once', () => {
    const neg = op('aten::neg');
    const x = tensor([1, 2]);
    neg(x.handle);
    const count = registeredOpCount();
    for (let i = 0; i < 200; i++) native.dispose(neg(x.handle) as Handle);
    assert.equal(registeredOpCount(), count);
  });
});
