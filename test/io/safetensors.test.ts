// safetensors reader/writer (src/io/safetensors.ts) and its Tensor bridge (src/io/tensors.ts):
// round trips of every dtype, layout, every validation error, atomic writes, memory use on a big
// file, a fuzz test of corrupted files, and every .safetensors file in the shared folder.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, sep } from 'node:path';
import { after, describe, test } from 'node:test';
import fc from 'fast-check';
import {
  DTYPE_BYTES,
  MAX_HEADER_BYTES,
  SafetensorsError,
  SafetensorsFile,
  decodeValues,
  serialize,
  writeSafetensors,
  type RawTensor,
  type SafetensorsDType,
} from '../../src/io/safetensors.js';
import { loadSafetensors, saveSafetensors } from '../../src/io/tensors.js';
import { tensor, type Tensor } from '../../src/torch/index.js';
import { assertImmunizeError } from '../helpers/errors.js';
import { TORCH_DTYPE } from '../helpers/safetensors-dtypes.js';
import { repoRoot, sharedDir, skipReason } from '../helpers/shared.js';

const gc = (globalThis as { gc?: () => void }).gc;
const DTYPES = Object.keys(DTYPE_BYTES) as SafetensorsDType[];

const work = mkdtempSync(join(tmpdir(), 'immunize-safetensors-'));
after(() => rmSync(work, { recursive: true, force: true }));
let fileNo = 0;
const tmpPath = (name = 'f'): string => join(work, `${name}-${fileNo++}.safetensors`);

/** Deterministic pseudo-random bytes (a 32-bit LCG), so failures reproduce. */
function bytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s >>> 24;
  }
  return out;
}

const numel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** A file with exactly this header text (or bytes) and data; `length` overrides the 8-byte prefix. */
function rawFile(header: string | Uint8Array, data: Uint8Array = new Uint8Array(0), length?: bigint): string {
  const h = typeof header === 'string' ? Buffer.from(header, 'utf8') : Buffer.from(header);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(length ?? BigInt(h.length));
  const path = tmpPath('raw');
  writeFileSync(path, Buffer.concat([prefix, h, data]));
  return path;
}

/** Predicate for assert.throws: a SafetensorsError whose message names the file and, if given, the tensor and a pattern. */
function stError(path: string, tensorName?: string, pattern?: RegExp) {
  return (e: unknown): boolean => {
    assertImmunizeError(e, SafetensorsError, 'SafetensorsError', 'E_SAFETENSORS');
    assert.equal(e.file, path);
    assert.ok(e.message.includes(path), `message should name the file ${path}: ${e.message}`);
    if (tensorName !== undefined) {
      assert.equal(e.key, tensorName);
      assert.ok(e.message.includes(`"${tensorName}"`), `message should name tensor "${tensorName}": ${e.message}`);
    }
    if (pattern !== undefined) assert.match(e.message, pattern);
    return true;
  };
}

/** Opens and reads every tensor; the way a caller meets a bad file. */
function readAll(path: string): Map<string, Buffer> {
  using f = SafetensorsFile.open(path);
  return new Map(f.keys().map((k) => [k, f.readBytes(k)]));
}

function disposeAll(m: Map<string, Tensor>): void {
  for (const t of m.values()) t.dispose();
}

describe('round trips', () => {
  test('every dtype, as a matrix, a scalar and an empty tensor: serialize, writeSafetensors and the reader agree byte for byte', () => {
    const tensors: Record<string, RawTensor> = {};
    let seed = 1;
    for (const dtype of DTYPES) {
      for (const [suffix, shape] of [
        ['mat', [2, 3]],
        ['scalar', []],
        ['empty', [0, 3]],
      ] as const) {
        tensors[`${dtype}.${suffix}`] = { dtype, shape, data: bytes(numel(shape) * DTYPE_BYTES[dtype], seed++) };
      }
    }
    const metadata = { format: 'pt' };
    const buf = serialize(tensors, metadata);
    const path = tmpPath('all');
    writeSafetensors(path, tensors, metadata);
    assert.ok(readFileSync(path).equals(buf), 'writeSafetensors wrote different bytes from serialize');

    using f = SafetensorsFile.open(path);
    assert.deepEqual(f.metadata, metadata);
    assert.deepEqual(f.keys(), Object.keys(tensors), 'keys come back in data order, which is the order written');
    for (const [name, t] of Object.entries(tensors)) {
      const e = f.entry(name);
      assert.equal(e.dtype, t.dtype, `${name}: dtype`);
      assert.deepEqual(e.shape, t.shape, `${name}: shape`);
      assert.ok(f.readBytes(name).equals(t.data), `${name}: bytes differ`);
    }
  });

  test('saveSafetensors/loadSafetensors keep dtype, shape and values of real tensors', () => {
    const made: Record<string, Tensor> = {
      float32: tensor(new Float32Array([1.5, -0, Infinity, -3.25e-30, 3.4e38, NaN]), [2, 3]),
      float16: tensor(new Float32Array([0.5, -65504, 6.0e-8, 1024]), [4], { dtype: 'float16' }),
      bfloat16: tensor(new Float32Array([1, -2.5, 3.0e38, 1e-38, 0.0078125, 7]), [3, 2], { dtype: 'bfloat16' }),
      float64: tensor(new Float64Array([Math.PI, -Number.MAX_VALUE, Number.MIN_VALUE, 0.1, -0]), [5]),
      int64: tensor(new BigInt64Array([-(2n ** 62n), 0n, 2n ** 53n + 1n, 7n]), [2, 2]),
      int32: tensor(new Int32Array([-(2 ** 31), 2 ** 31 - 1, 0]), [3]),
      int16: tensor(new Int16Array([-32768, 32767]), [2]),
      int8: tensor(new Int8Array([-128, 127, 0]), [1, 3]),
      uint8: tensor(new Uint8Array([0, 255, 17, 128]), [2, 1, 2]),
      bool: tensor(new Uint8Array([1, 0, 1]), [3], { dtype: 'bool' }),
      scalar: tensor(2.5),
      empty: tensor(new Float32Array(0), [0, 4]),
    };
    // Non-contiguous input must be written in logical (row-major) order.
    made['transposed'] = made['float32']!.transpose(0, 1);
    const path = tmpPath('tensors');
    try {
      saveSafetensors(path, made, { source: 'test' });
      const loaded = loadSafetensors(path);
      try {
        assert.deepEqual([...loaded.keys()], Object.keys(made));
        for (const [name, want] of Object.entries(made)) {
          const got = loaded.get(name)!;
          assert.equal(got.dtype, want.dtype, `${name}: dtype`);
          assert.deepEqual(got.shape, want.shape, `${name}: shape`);
          // deepEqual on number[] uses Object.is semantics for NaN and -0.
          assert.deepEqual(got.toArray(), want.toArray(), `${name}: values`);
          assert.ok(Buffer.from(got.toBytes()).equals(Buffer.from(want.toBytes())), `${name}: bytes`);
        }
      } finally {
        disposeAll(loaded);
      }
      using f = SafetensorsFile.open(path);
      assert.deepEqual(f.metadata, { source: 'test' });
    } finally {
      for (const t of Object.values(made)) t.dispose();
    }
  });

  test('loadSafetensors: names picks tensors, floatDType converts floats only', () => {
    const path = tmpPath('opts');
    const a = tensor(new Float32Array([1, 2]), [2], { dtype: 'float16' });
    const b = tensor(new Int32Array([3]), [1]);
    try {
      saveSafetensors(
        path,
        new Map([
          ['a', a],
          ['b', b],
        ]),
      );
      const m = loadSafetensors(path, { floatDType: 'float32' });
      assert.equal(m.get('a')!.dtype, 'float32');
      assert.deepEqual(m.get('a')!.toArray(), [1, 2]);
      assert.equal(m.get('b')!.dtype, 'int32', 'integer tensors are left alone');
      disposeAll(m);
      const only = loadSafetensors(path, { names: ['b'] });
      assert.deepEqual([...only.keys()], ['b']);
      disposeAll(only);
    } finally {
      a.dispose();
      b.dispose();
    }
  });

  // Every float16/bfloat16 bit pattern: the JS decoder and libtorch's conversion must agree exactly.
  for (const dtype of ['F16', 'BF16'] as const) {
    test(`${dtype}: decodeValues matches libtorch on all 65536 bit patterns`, () => {
      const bits = new Uint16Array(65536).map((_, i) => i);
      const path = tmpPath(dtype);
      writeSafetensors(path, { all: { dtype, shape: [65536], data: new Uint8Array(bits.buffer) } });
      const m = loadSafetensors(path);
      const viaTorch = m.get('all')!.toArray();
      disposeAll(m);
      const viaJs = decodeValues(dtype, new Uint8Array(bits.buffer));
      for (let i = 0; i < 65536; i++) {
        assert.ok(
          Object.is(viaJs[i], viaTorch[i]),
          `${dtype} 0x${i.toString(16)}: decodeValues gives ${viaJs[i]}, libtorch ${viaTorch[i]}`,
        );
      }
    });
  }

  test('decodeValues: edge values of every dtype', () => {
    const le = (...v: number[]): Uint8Array => new Uint8Array(v);
    const cases: [SafetensorsDType, Uint8Array, number[]][] = [
      ['BOOL', le(0, 1, 2), [0, 1, 1]],
      ['U8', le(0, 255), [0, 255]],
      ['I8', le(0x80, 0x7f), [-128, 127]],
      ['I16', le(0x00, 0x80, 0xff, 0x7f), [-32768, 32767]],
      ['U16', le(0xff, 0xff), [65535]],
      ['I32', le(0, 0, 0, 0x80), [-(2 ** 31)]],
      ['U32', le(0xff, 0xff, 0xff, 0xff), [2 ** 32 - 1]],
      ['I64', le(0, 0, 0, 0, 0, 0xff, 0xff, 0xff), [-(2 ** 40)]],
      ['U64', le(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), [2 ** 64]],
      ['F16', le(0x00, 0x3c, 0x00, 0x80, 0x01, 0x00, 0x00, 0x7c, 0xff, 0x7b), [1, -0, 2 ** -24, Infinity, 65504]],
      ['BF16', le(0x80, 0x3f, 0x00, 0xc0, 0xc0, 0x7f), [1, -2, NaN]],
      ['F32', le(0x00, 0x00, 0xc0, 0x3f), [1.5]],
      ['F64', le(0, 0, 0, 0, 0, 0, 0xf0, 0xbf), [-1]],
      // OCP FP8: E4M3FN has no infinities and one NaN per sign (max 448); E5M2 is IEEE-like (max 57344).
      ['F8_E4M3', le(0x7e, 0x7f, 0xff, 0x08, 0x01, 0x80, 0x38), [448, NaN, NaN, 2 ** -6, 2 ** -9, -0, 1]],
      [
        'F8_E5M2',
        le(0x7b, 0x7c, 0xfc, 0x7d, 0x04, 0x01, 0x3c),
        [57344, Infinity, -Infinity, NaN, 2 ** -14, 2 ** -16, 1],
      ],
    ];
    for (const [dtype, data, want] of cases) assert.deepEqual(decodeValues(dtype, data), want, dtype);
    // A view into a bigger buffer decodes from its own offset.
    assert.deepEqual(decodeValues('I16', new Uint8Array([9, 0x01, 0x00, 9]).subarray(1, 3)), [1]);
  });

  test('metadata round trip: unicode, quotes, empty strings and a "__proto__" key', () => {
    const metadata: Record<string, string> = { format: 'pt', 'ünï©ødé ✓': 'line\n"quoted"\\', empty: '' };
    Object.defineProperty(metadata, '__proto__', {
      value: 'own key',
      enumerable: true,
      writable: true,
      configurable: true,
    });
    const path = tmpPath('meta');
    writeSafetensors(path, { x: { dtype: 'U8', shape: [1], data: new Uint8Array([1]) } }, metadata);
    using f = SafetensorsFile.open(path);
    assert.deepEqual(f.metadata, metadata);
    assert.equal(
      Object.getPrototypeOf(f.metadata),
      Object.prototype,
      'a "__proto__" key must not replace the prototype',
    );
    assert.equal(Object.getOwnPropertyDescriptor(f.metadata, '__proto__')?.value, 'own key');
  });

  test('a tensor named "__proto__" is written and read like any other', () => {
    const tensors = JSON.parse('{"__proto__": 1, "b": 2}') as Record<string, unknown>;
    tensors['__proto__'] = { dtype: 'U8', shape: [2], data: new Uint8Array([7, 8]) };
    tensors['b'] = { dtype: 'U8', shape: [1], data: new Uint8Array([9]) };
    const path = tmpPath('proto');
    writeSafetensors(path, tensors as Record<string, RawTensor>);
    using f = SafetensorsFile.open(path);
    assert.deepEqual(f.keys(), ['__proto__', 'b']);
    assert.deepEqual([...f.readBytes('__proto__')], [7, 8]);
  });

  test('"__metadata__": null reads as no metadata, as in the reference (Option<HashMap>)', () => {
    const path = rawFile(
      '{"__metadata__": null, "a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}',
      new Uint8Array([5]),
    );
    using f = SafetensorsFile.open(path);
    assert.deepEqual(f.metadata, {});
    assert.deepEqual([...f.readBytes('a')], [5]);
  });
});

describe('layout', () => {
  test('the header is padded with spaces so the data starts 8-byte aligned, for every name length', () => {
    for (let len = 0; len <= 16; len++) {
      for (const metadata of [undefined, { k: 'v'.repeat(len) }]) {
        const buf = serialize({ ['n'.repeat(len)]: { dtype: 'F32', shape: [1], data: new Uint8Array(4) } }, metadata);
        const n = Number(buf.readBigUInt64LE(0));
        assert.equal((8 + n) % 8, 0, `name length ${len}: data starts at ${8 + n}`);
        const text = buf.subarray(8, 8 + n).toString('utf8');
        assert.match(text, /^\{.*\} *$/, 'padding is trailing spaces only');
        assert.ok(text.length - text.trimEnd().length < 8, 'at most 7 bytes of padding');
        assert.equal(buf.length, 8 + n + 4);
      }
    }
  });

  test('an empty file (no tensors, no metadata) is 16 bytes and reads back empty', () => {
    const buf = serialize({});
    assert.equal(buf.length, 16);
    assert.equal(buf.subarray(8).toString('utf8'), '{}      ');
    const path = tmpPath('empty');
    writeSafetensors(path, {});
    using f = SafetensorsFile.open(path);
    assert.deepEqual(f.keys(), []);
    assert.deepEqual(f.metadata, {});
    const m = loadSafetensors(path);
    assert.equal(m.size, 0);
  });

  test('an unpadded header (other writers) is read too', () => {
    const path = rawFile('{"x":{"dtype":"I16","shape":[2],"data_offsets":[0,4]}}', new Uint8Array([1, 0, 0xff, 0xff]));
    using f = SafetensorsFile.open(path);
    assert.deepEqual(decodeValues('I16', f.readBytes('x')), [1, -1]);
  });
});

describe('validation errors', () => {
  const data16 = bytes(16, 99);
  /** A two-tensor header (a: bytes 0..8, b: bytes 8..16) with `edit` applied to it. */
  const header = (edit: (h: Record<string, Record<string, unknown>>) => void = () => {}): string => {
    const h: Record<string, Record<string, unknown>> = {
      a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      b: { dtype: 'I16', shape: [2, 2], data_offsets: [8, 16] },
    };
    edit(h);
    return JSON.stringify(h);
  };

  test('the two-tensor template itself is valid (so each case below fails for its one edit)', () => {
    const got = readAll(rawFile(header(), data16));
    assert.deepEqual([...got.keys()], ['a', 'b']);
  });

  const fileCases: [string, () => string, RegExp][] = [
    [
      'an empty file',
      () => {
        const p = tmpPath('e');
        writeFileSync(p, '');
        return p;
      },
      /file is 0 bytes/,
    ],
    [
      'a file shorter than the length prefix',
      () => {
        const p = tmpPath('s');
        writeFileSync(p, Buffer.from([16, 0, 0]));
        return p;
      },
      /file is 3 bytes/,
    ],
    [
      'a header length past the end of the file',
      () => rawFile('{}', undefined, 1000n),
      /header length 1000 runs past the end of the 10-byte file/,
    ],
    ['a huge header length (2^63)', () => rawFile('{}', undefined, 2n ** 63n), /exceeds the 100000000-byte limit/],
    ['a header length of 2^64 - 1', () => rawFile('{}', undefined, 2n ** 64n - 1n), /exceeds/],
    ['a header length one past the limit', () => rawFile('{}', undefined, BigInt(MAX_HEADER_BYTES) + 1n), /exceeds/],
    ['a zero header length', () => rawFile('', undefined, 0n), /not valid UTF-8 JSON/],
    ['a header that is not JSON', () => rawFile('not json'), /not valid UTF-8 JSON/],
    [
      'a header that is not UTF-8',
      () => rawFile(new Uint8Array([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d])),
      /not valid UTF-8 JSON/,
    ],
    ['a JSON array header', () => rawFile('[1, 2, 3]'), /must be a JSON object, found an array/],
    ['a JSON null header', () => rawFile('null'), /must be a JSON object, found null/],
    ['a JSON number header', () => rawFile('42'), /must be a JSON object, found number/],
    [
      'metadata values that are not strings',
      () => rawFile('{"__metadata__": {"k": 1}}'),
      /__metadata__\["k"\] must be a string, found number/,
    ],
    [
      'metadata that is not an object',
      () => rawFile('{"__metadata__": ["a"]}'),
      /__metadata__ must be an object of strings/,
    ],
  ];
  for (const [what, make, pattern] of fileCases) {
    test(`refuses ${what}`, () => {
      const path = make();
      assert.throws(() => readAll(path), stError(path, undefined, pattern));
      assert.throws(() => loadSafetensors(path), stError(path, undefined, pattern));
    });
  }

  // How fast it is refused: bench/safetensors.bench.ts.
  test('a huge header length is refused without allocating it', () => {
    const path = rawFile('{}', undefined, 2n ** 62n);
    const before = process.memoryUsage().arrayBuffers;
    assert.throws(() => SafetensorsFile.open(path), stError(path));
    assert.ok(process.memoryUsage().arrayBuffers - before < 1e6, 'nothing big was allocated');
  });

  const entryCases: [string, (h: Record<string, Record<string, unknown>>) => void, string, RegExp][] = [
    [
      'an entry that is not an object',
      (h) => {
        h['a'] = 3 as never;
      },
      'a',
      /entry must be an object/,
    ],
    [
      'an unknown dtype',
      (h) => {
        h['a']!['dtype'] = 'F12';
      },
      'a',
      /unknown dtype "F12"/,
    ],
    [
      'a lowercase dtype',
      (h) => {
        h['a']!['dtype'] = 'f32';
      },
      'a',
      /unknown dtype "f32"/,
    ],
    [
      'a missing dtype',
      (h) => {
        delete h['b']!['dtype'];
      },
      'b',
      /unknown dtype undefined/,
    ],
    [
      'a negative dimension',
      (h) => {
        h['a']!['shape'] = [-2];
      },
      'a',
      /shape must be a list of non-negative integers, found \[-2\]/,
    ],
    [
      'a non-integer dimension',
      (h) => {
        h['a']!['shape'] = [1.5];
      },
      'a',
      /non-negative integers, found \[1\.5\]/,
    ],
    [
      'a dimension given as a string',
      (h) => {
        h['a']!['shape'] = ['2'];
      },
      'a',
      /non-negative integers/,
    ],
    [
      'a shape that is not a list',
      (h) => {
        h['b']!['shape'] = '2x2';
      },
      'b',
      /shape must be a list/,
    ],
    [
      'a shape with too many elements',
      (h) => {
        h['a']!['shape'] = [2 ** 30, 2 ** 30, 2 ** 30];
      },
      'a',
      /too many elements/,
    ],
    [
      'missing data_offsets',
      (h) => {
        delete h['a']!['data_offsets'];
      },
      'a',
      /data_offsets must be \[begin, end\]/,
    ],
    [
      'data_offsets of the wrong length',
      (h) => {
        h['a']!['data_offsets'] = [0, 8, 16];
      },
      'a',
      /data_offsets must be/,
    ],
    [
      'non-integer data_offsets',
      (h) => {
        h['a']!['data_offsets'] = [0, 7.5];
      },
      'a',
      /data_offsets must be/,
    ],
    [
      'negative data_offsets',
      (h) => {
        h['a']!['data_offsets'] = [-8, 0];
      },
      'a',
      /data_offsets must be/,
    ],
    [
      'reversed data_offsets',
      (h) => {
        h['a']!['data_offsets'] = [8, 0];
      },
      'a',
      /data_offsets \[8, 0\] are reversed/,
    ],
    [
      'data_offsets past the data',
      (h) => {
        h['b']!['data_offsets'] = [8, 24];
        h['b']!['shape'] = [8];
      },
      'b',
      /run past the end of the data \(16 bytes\)/,
    ],
    [
      'a shape that does not match the byte range',
      (h) => {
        h['a']!['shape'] = [3];
      },
      'a',
      /is 12 bytes but data_offsets \[0, 8\] hold 8/,
    ],
    [
      'overlapping tensors',
      (h) => {
        h['b']!['data_offsets'] = [4, 12];
      },
      'b',
      /overlaps tensor "a"/,
    ],
    [
      'an empty tensor inside another one',
      (h) => {
        h['e'] = { dtype: 'F32', shape: [0], data_offsets: [4, 4] };
      },
      'e',
      /overlaps tensor "a"/,
    ],
  ];
  for (const [what, edit, name, pattern] of entryCases) {
    test(`refuses ${what}, naming the tensor`, () => {
      const path = rawFile(header(edit), data16);
      assert.throws(() => readAll(path), stError(path, name, pattern));
      assert.throws(() => loadSafetensors(path), stError(path, name, pattern));
    });
  }

  test('an unknown tensor name is an error naming the file, the tensor and what the file has', () => {
    const path = rawFile(header(), data16);
    using f = SafetensorsFile.open(path);
    assert.equal(f.has('nope'), false);
    assert.throws(() => f.entry('nope'), stError(path, 'nope', /no such tensor \(the file has 2: a, b\)/));
    assert.throws(() => f.readBytes('nope'), stError(path, 'nope'));
    assert.throws(() => loadSafetensors(path, { names: ['a', 'nope'] }), stError(path, 'nope'));
  });

  test('a missing file, a directory and a FIFO are refused (the FIFO without blocking)', () => {
    const missing = join(work, 'missing.safetensors');
    assert.throws(() => SafetensorsFile.open(missing), stError(missing, undefined, /no such file/));
    const dir = join(work, 'a-directory.safetensors');
    mkdirSync(dir);
    assert.throws(() => SafetensorsFile.open(dir), stError(dir, undefined, /not a regular file/));
    // open() on a FIFO blocks until a writer appears, so try it in a child process with a time limit.
    const fifo = join(work, 'fifo.safetensors');
    execFileSync('mkfifo', [fifo]);
    const module = join(repoRoot, 'dist', 'src', 'io', 'safetensors.js');
    const script = `import(${JSON.stringify(module)}).then((m) => { try { m.SafetensorsFile.open(${JSON.stringify(fifo)}); console.log('opened'); } catch (e) { console.log(e.code + ' ' + e.message); } });`;
    const r = spawnSync(process.execPath, ['-e', script], { timeout: 10_000, encoding: 'utf8' });
    assert.equal(r.signal, null, 'opening a FIFO hung');
    assert.equal(r.stdout.trim(), `E_SAFETENSORS ${fifo}: not a regular file`);
  });

  test('reading after close, and reading a file that shrank after it was opened, are clean errors', () => {
    const path = rawFile(header(), data16);
    const f = SafetensorsFile.open(path);
    truncateSync(path, statSync(path).size - 4);
    assert.deepEqual([...f.readBytes('a')], [...data16.subarray(0, 8)], 'a is still whole');
    assert.throws(() => f.readBytes('b'), stError(path, 'b', /file ended before the tensor data/));
    f.close();
    f.close();
    assert.throws(() => f.readBytes('a'), stError(path, 'a', /file is closed/));
  });

  test('loadSafetensors refuses dtypes libtorch lacks, naming the tensor', () => {
    const path = tmpPath('u16');
    writeSafetensors(path, {
      ok: { dtype: 'U8', shape: [1], data: new Uint8Array(1) },
      wide: { dtype: 'U16', shape: [1], data: new Uint8Array(2) },
    });
    assert.throws(() => loadSafetensors(path), stError(path, 'wide', /U16 has no libtorch equivalent/));
    assert.deepEqual([...readAll(path).keys()], ['ok', 'wide'], 'the byte reader still reads it');
  });

  test('the writer refuses bad input, naming the file and the tensor', () => {
    const path = tmpPath('bad-write');
    const u8 = (n: number): RawTensor => ({ dtype: 'U8', shape: [n], data: new Uint8Array(n) });
    assert.throws(() => writeSafetensors(path, { __metadata__: u8(1) }), stError(path, '__metadata__', /reserved/));
    assert.throws(
      () => writeSafetensors(path, { x: { ...u8(1), dtype: 'X9' as SafetensorsDType } }),
      stError(path, 'x', /unknown dtype "X9"/),
    );
    assert.throws(() => writeSafetensors(path, { x: { ...u8(1), shape: [-1] } }), stError(path, 'x', /bad shape/));
    assert.throws(
      () => writeSafetensors(path, { x: { ...u8(3), shape: [2] } }),
      stError(path, 'x', /is 2 bytes but 3 were given/),
    );
    assert.throws(
      () => writeSafetensors(path, { x: u8(1) }, { n: 1 as unknown as string }),
      stError(path, undefined, /metadata\["n"\] must be a string/),
    );
    assert.throws(() => serialize({ x: { ...u8(3), shape: [2] } }), stError('<buffer>', 'x'));
    assert.throws(() => statSync(path), /ENOENT/, 'nothing was written');
  });

  test('decodeValues refuses a byte count that is not a whole number of values', () => {
    assert.throws(
      () => decodeValues('F32', new Uint8Array(6)),
      stError('<buffer>', undefined, /6 bytes are not a whole number of F32 values/),
    );
    assert.throws(
      () => decodeValues('X' as SafetensorsDType, new Uint8Array(1)),
      stError('<buffer>', undefined, /unknown dtype/),
    );
  });
});

describe('atomic write', () => {
  const tensors = { x: { dtype: 'F32', shape: [4], data: bytes(16, 5) } } satisfies Record<string, RawTensor>;

  test('a write, and an overwrite, leave only the target file', () => {
    const dir = mkdtempSync(join(work, 'atomic-'));
    const path = join(dir, 'w.safetensors');
    writeSafetensors(path, tensors);
    assert.deepEqual(readdirSync(dir), ['w.safetensors']);
    writeSafetensors(path, { y: { dtype: 'U8', shape: [1], data: new Uint8Array([3]) } });
    assert.deepEqual(readdirSync(dir), ['w.safetensors']);
    assert.deepEqual([...readAll(path).keys()], ['y'], 'the overwrite replaced the whole file');
    const t = tensor(new Float32Array([1, 2]));
    saveSafetensors(join(dir, 't.safetensors'), { t });
    t.dispose();
    assert.deepEqual(readdirSync(dir).sort(), ['t.safetensors', 'w.safetensors']);
  });

  test('a failed write (the target is a non-empty directory) throws SafetensorsError and removes its temporary file', () => {
    const dir = mkdtempSync(join(work, 'atomic-fail-'));
    const target = join(dir, 'taken.safetensors');
    mkdirSync(target);
    writeFileSync(join(target, 'keep'), 'x');
    assert.throws(() => writeSafetensors(target, tensors), stError(target, undefined, /cannot write/));
    assert.deepEqual(readdirSync(dir), ['taken.safetensors'], 'no .tmp file left behind');
    assert.deepEqual(readdirSync(target), ['keep']);
  });

  test('a write into a missing folder throws SafetensorsError', () => {
    const path = join(work, 'no', 'such', 'folder.safetensors');
    assert.throws(() => writeSafetensors(path, tensors), stError(path, undefined, /cannot write.*ENOENT/));
  });
});

describe('memory', () => {
  test('loading a 200 MB tensor does not pass it through the JS heap', { timeout: 120_000 }, () => {
    const n = 50_000_000; // float32 -> 200 MB
    const path = tmpPath('big');
    // Written by hand in 4 MB chunks so the test itself never holds 200 MB either.
    let head = JSON.stringify({ big: { dtype: 'F32', shape: [n], data_offsets: [0, 4 * n] } });
    head += ' '.repeat((8 - ((head.length + 8) % 8)) % 8);
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(BigInt(head.length));
    const fd = openSync(path, 'w');
    try {
      writeSync(fd, Buffer.concat([prefix, Buffer.from(head)]));
      const chunk = new Float32Array(1 << 20);
      for (let start = 0; start < n; start += chunk.length) {
        const len = Math.min(chunk.length, n - start);
        for (let i = 0; i < len; i++) chunk[i] = (start + i) % 4099; // exact in float32
        writeSync(fd, new Uint8Array(chunk.buffer, 0, 4 * len));
      }
    } finally {
      closeSync(fd);
    }
    gc?.();
    const before = process.memoryUsage();
    const m = loadSafetensors(path);
    const afterLoad = process.memoryUsage();
    try {
      const heapMB = (afterLoad.heapUsed - before.heapUsed) / 2 ** 20;
      const buffersMB = (afterLoad.arrayBuffers - before.arrayBuffers) / 2 ** 20;
      assert.ok(heapMB < 50, `JS heap grew by ${heapMB.toFixed(1)} MB loading a 200 MB tensor`);
      assert.ok(buffersMB < 50, `ArrayBuffer memory grew by ${buffersMB.toFixed(1)} MB loading a 200 MB tensor`);
      const t = m.get('big')!;
      assert.deepEqual(t.shape, [n]);
      assert.equal(t.dtype, 'float32');
      for (const at of [0, 4095, 12_345_678, n - 8]) {
        using s = t.narrow(0, at, 8);
        assert.deepEqual(
          s.toArray(),
          Array.from({ length: 8 }, (_, i) => (at + i) % 4099),
          `values at ${at}`,
        );
      }
    } finally {
      disposeAll(m);
      rmSync(path);
    }
  });
});

describe('corrupted files (fuzz)', () => {
  const base = serialize(
    {
      a: { dtype: 'F32', shape: [2, 3], data: bytes(24, 1) },
      b: { dtype: 'I64', shape: [2], data: bytes(16, 2) },
      c: { dtype: 'BF16', shape: [3], data: bytes(6, 3) },
      e: { dtype: 'F32', shape: [0, 2], data: new Uint8Array(0) },
      d: { dtype: 'U8', shape: [5], data: bytes(5, 4) },
      s: { dtype: 'F16', shape: [], data: bytes(2, 5) },
      w: { dtype: 'U16', shape: [2], data: bytes(4, 6) },
    },
    { k: 'v' },
  );
  const headerLen = Number(base.readBigUInt64LE(0));
  const names = ['a', 'b', 'c', 'e', 'd', 's', 'w'];

  type Mutation = (b: Buffer) => Buffer;
  const withLength = (b: Buffer, n: bigint): Buffer => {
    const c = Buffer.from(b);
    c.writeBigUInt64LE(n);
    return c;
  };
  /** The header object of `b` when it still parses (so edits compose), else the original one; and the data after it. */
  const split = (b: Buffer): [Record<string, unknown>, Buffer] => {
    const n = b.length >= 8 ? Number(b.readBigUInt64LE(0)) : Infinity;
    if (8 + n <= b.length) {
      try {
        const h: unknown = JSON.parse(b.subarray(8, 8 + n).toString('utf8'));
        if (h !== null && typeof h === 'object' && !Array.isArray(h))
          return [h as Record<string, unknown>, b.subarray(8 + n)];
      } catch {
        /* fall back to the original header */
      }
    }
    return [
      JSON.parse(base.subarray(8, 8 + headerLen).toString('utf8')) as Record<string, unknown>,
      b.subarray(Math.min(b.length, 8 + headerLen)),
    ];
  };
  /** Re-encodes the header after editing its JSON, keeping the data section as it is. */
  const editHeader =
    (edit: (h: Record<string, unknown>) => void): Mutation =>
    (b) => {
      const [h, data] = split(b);
      edit(h);
      const json = Buffer.from(JSON.stringify(h));
      return Buffer.concat([withLength(Buffer.alloc(8), BigInt(json.length)), json, data]);
    };
  const entryOf = (h: Record<string, unknown>, name: string): Record<string, unknown> => {
    const e = h[name];
    if (e !== null && typeof e === 'object' && !Array.isArray(e)) return e as Record<string, unknown>;
    return (h[name] = {});
  };
  /** Sets `field` of one tensor's header entry to a value drawn from `value`. */
  const setField = (field: string, value: fc.Arbitrary<unknown>): fc.Arbitrary<Mutation> =>
    fc.tuple(fc.constantFrom(...names), value).map(([name, v]) =>
      editHeader((h) => {
        entryOf(h, name)[field] = v;
      }),
    );

  const jsonish = fc.jsonValue({ maxDepth: 2 });
  const smallInt = fc.integer({ min: -4, max: 200 });
  const mutation: fc.Arbitrary<Mutation> = fc.oneof(
    fc
      .array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 8 })
      .map((flips): Mutation => (b) => {
        const c = Buffer.from(b);
        for (const [p, x] of flips) if (c.length) c[p % c.length] = c[p % c.length]! ^ x;
        return c;
      }),
    fc.nat().map(
      (n): Mutation =>
        (b) =>
          b.subarray(0, n % (b.length + 1)),
    ),
    fc.uint8Array({ minLength: 1, maxLength: 64 }).map(
      (extra): Mutation =>
        (b) =>
          Buffer.concat([b, extra]),
    ),
    fc
      .oneof(
        fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
        smallInt.map((d) => BigInt(Math.max(0, headerLen + d))),
      )
      .map(
        (n): Mutation =>
          (b) =>
            b.length >= 8 ? withLength(b, n) : b,
      ),
    setField('dtype', fc.oneof(fc.constantFrom<unknown>(...DTYPES, 'F12', '', 'f32'), jsonish)),
    setField(
      'shape',
      fc.oneof(
        fc.array(smallInt, { maxLength: 4 }),
        fc.array(fc.oneof(fc.double(), fc.constantFrom(0, 2 ** 31, 2 ** 53 - 1, 2 ** 53), fc.string()), {
          maxLength: 4,
        }),
        jsonish,
      ),
    ),
    setField(
      'data_offsets',
      fc.oneof(fc.tuple(smallInt, smallInt), fc.array(fc.oneof(fc.integer(), fc.double()), { maxLength: 3 }), jsonish),
    ),
    fc
      .tuple(fc.constantFrom(...names, '__metadata__'), fc.constantFrom('dtype', 'shape', 'data_offsets', 'all'))
      .map(([name, field]) =>
        editHeader((h) => {
          if (field === 'all') delete h[name];
          else delete entryOf(h, name)[field];
        }),
      ),
    fc.tuple(fc.constantFrom(...names, '__metadata__', 'new'), jsonish).map(([name, value]) =>
      editHeader((h) => {
        h[name] = value;
      }),
    ),
  );

  test(
    'any corruption gives SafetensorsError or tensors whose sizes match their shapes (2000 runs)',
    { timeout: 300_000 },
    (t) => {
      const path = tmpPath('fuzz');
      let accepted = 0;
      let refused = 0;
      fc.assert(
        fc.property(fc.array(mutation, { minLength: 1, maxLength: 3 }), (mutations) => {
          writeFileSync(
            path,
            mutations.reduce((b, m) => m(b), base),
          );
          let file: SafetensorsFile;
          try {
            file = SafetensorsFile.open(path);
          } catch (e) {
            stError(path)(e);
            refused++;
            return;
          }
          try {
            // Once the header is accepted, every read must succeed and match the header.
            for (const e of file.entries) {
              const raw = file.readBytes(e.name);
              assert.equal(
                raw.length,
                numel(e.shape) * DTYPE_BYTES[e.dtype],
                `${e.name}: ${raw.length} bytes for shape [${e.shape}] ${e.dtype}`,
              );
              assert.equal(decodeValues(e.dtype, raw).length, numel(e.shape));
            }
            const supported = file.entries.filter((e) => TORCH_DTYPE[e.dtype] !== undefined);
            const loaded = loadSafetensors(path, { names: supported.map((e) => e.name) });
            try {
              for (const e of supported) {
                const t = loaded.get(e.name)!;
                assert.deepEqual(t.shape, e.shape);
                assert.equal(t.dtype, TORCH_DTYPE[e.dtype]);
                assert.ok(
                  Buffer.from(t.toBytes()).equals(file.readBytes(e.name)),
                  `${e.name}: libtorch read other bytes`,
                );
              }
            } finally {
              disposeAll(loaded);
            }
            accepted++;
          } finally {
            file.close();
          }
        }),
        { numRuns: 2000, seed: 20240601 },
      );
      t.diagnostic(`accepted ${accepted}, refused ${refused}`);
      // Both outcomes must actually occur, or the mutations are not exercising the reader.
      assert.ok(accepted > 50 && refused > 500, `accepted ${accepted}, refused ${refused}`);
    },
  );
});

const shared = sharedDir();
describe('every .safetensors file in the shared folder', { skip: shared === null ? skipReason() : false }, () => {
  const walk = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true })
      .flatMap((d) => {
        const p = join(dir, d.name);
        return d.isDirectory() ? walk(p) : d.isFile() && d.name.endsWith('.safetensors') ? [p] : [];
      })
      .sort();
  const files = shared === null ? [] : walk(shared);

  test('the shared folder holds some', () => assert.ok(files.length > 0, `no .safetensors under ${shared}`));

  for (const path of files) {
    const rel = path.slice(shared!.length + 1);
    // golden/safetensors/invalid/ holds deliberately broken files: they must be refused instead.
    if (rel.split(sep).includes('invalid')) {
      test(`${rel} is refused`, () => assert.throws(() => readAll(path), stError(path)));
      continue;
    }
    test(`${rel} reads`, () => {
      using file = SafetensorsFile.open(path);
      for (const e of file.entries) {
        assert.equal(e.end - e.begin, numel(e.shape) * DTYPE_BYTES[e.dtype], `${e.name}: byte range vs shape`);
      }
      if (statSync(path).size >= 50 * 2 ** 20) return;
      const supported = file.entries.filter((e) => TORCH_DTYPE[e.dtype] !== undefined);
      const loaded = loadSafetensors(path, { names: supported.map((e) => e.name) });
      try {
        assert.equal(loaded.size, supported.length);
        for (const e of supported) {
          const t = loaded.get(e.name)!;
          assert.deepEqual(t.shape, e.shape, `${e.name}: shape`);
          assert.ok(
            Buffer.from(t.toBytes()).equals(file.readBytes(e.name)),
            `${e.name}: libtorch and the byte reader disagree`,
          );
        }
      } finally {
        disposeAll(loaded);
      }
    });
  }
});
