// kind "safetensors": every file named in `valid` must read exactly as case.json describes it
// (metadata, dtype, shape, values, sum, first), both through the byte-level reader and, for dtypes
// libtorch has, through loadSafetensors; every file named in `invalid` must be refused with a
// SafetensorsError naming the file (how fast: bench/safetensors.bench.ts).
import assert from 'node:assert/strict';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ImmunizeError } from '../../../src/errors.js';
import { SafetensorsError, SafetensorsFile, decodeValues, type SafetensorsDType } from '../../../src/io/safetensors.js';
import { loadSafetensors } from '../../../src/io/tensors.js';
import { TORCH_DTYPE } from '../../helpers/safetensors-dtypes.js';
import { dataCheck } from '../io.js';
import type { CaseRunner } from './types.js';

interface ExpectedTensor {
  dtype: SafetensorsDType;
  shape: number[];
  values?: number[] | null;
  sum?: number;
  first?: number | null;
}
interface ExpectedFile {
  metadata?: Record<string, string>;
  tensors: Record<string, ExpectedTensor>;
}

const withExt = (name: string): string => (name.endsWith('.safetensors') ? name : `${name}.safetensors`);

/** `invalid` may be a list of names or an object name -> description | {error: substring}. */
function invalidEntries(spec: unknown): [string, string | undefined][] {
  if (Array.isArray(spec)) return spec.map((n) => [withExt(String(n)), undefined]);
  if (spec !== null && typeof spec === 'object') {
    return Object.entries(spec).map(([n, v]) => {
      const err = v !== null && typeof v === 'object' ? (v as { error?: unknown }).error : undefined;
      return [withExt(n), typeof err === 'string' ? err : undefined];
    });
  }
  throw new Error(`case.json: "invalid" must be a list or an object, found ${JSON.stringify(spec)}`);
}

/** Index of the first element where `got` and `want` differ under Object.is (so -0 ≠ 0, NaN = NaN), or -1. */
function firstMismatch(got: readonly number[], want: readonly number[]): number {
  for (let i = 0; i < Math.max(got.length, want.length); i++) if (!Object.is(got[i], want[i])) return i;
  return -1;
}

function assertValues(got: readonly number[], want: readonly number[], label: string): void {
  assert.equal(got.length, want.length, `${label}: ${got.length} values, expected ${want.length}`);
  const i = firstMismatch(got, want);
  assert.equal(i, -1, `${label}: element ${i} is ${got[i]}, expected ${want[i]}`);
}

function checkTensor(file: SafetensorsFile, name: string, want: ExpectedTensor): void {
  const where = `${file.path} "${name}"`;
  const e = file.entry(name);
  assert.equal(e.dtype, want.dtype, `${where}: dtype`);
  assert.deepEqual(e.shape, want.shape, `${where}: shape`);
  const values = decodeValues(e.dtype, file.readBytes(name));
  assert.equal(
    values.length,
    want.shape.reduce((a, b) => a * b, 1),
    `${where}: element count`,
  );
  // Values are stored as the exact doubles of the stored numbers (F16/BF16 included), so exact equality.
  if (Array.isArray(want.values)) assertValues(values, want.values, `${where}: values`);
  if (typeof want.sum === 'number') {
    const sum = values.reduce((a, b) => a + b, 0);
    // A floor of 1 on the scale keeps sums that cancel to ~0 from demanding agreement on summation order.
    const tol = 1e-6 * Math.max(1, Math.abs(want.sum));
    assert.ok(
      Math.abs(sum - want.sum) <= tol,
      `${where}: sum ${sum}, expected ${want.sum} (|diff| ${Math.abs(sum - want.sum)} > ${tol})`,
    );
  }
  if (want.first !== undefined) {
    if (want.first === null) assert.equal(values.length, 0, `${where}: first is null, so the tensor should be empty`);
    else assert.ok(Object.is(values[0], want.first), `${where}: first element ${values[0]}, expected ${want.first}`);
  }

  // Same file through the native loader: same dtype, shape and values.
  const torchDType = TORCH_DTYPE[e.dtype];
  if (torchDType === undefined) {
    assert.throws(
      () => loadSafetensors(file.path, { names: [name] }),
      (err: unknown) => err instanceof SafetensorsError && err.message.includes(name),
      `${where}: loadSafetensors should refuse ${e.dtype} with a SafetensorsError`,
    );
    return;
  }
  const loaded = loadSafetensors(file.path, { names: [name] });
  const t = loaded.get(name);
  try {
    assert.ok(t, `${where}: loadSafetensors did not return it`);
    assert.equal(t.dtype, torchDType, `${where}: loaded dtype`);
    assert.deepEqual(t.shape, want.shape, `${where}: loaded shape`);
    assertValues(t.toArray(), values, `${where}: loadSafetensors values vs the byte reader`);
  } finally {
    for (const x of loaded.values()) x.dispose();
  }
}

const run: CaseRunner = async ({ dir, spec }, t) => {
  const valid = spec.valid as Record<string, ExpectedFile> | undefined;
  assert.ok(valid !== undefined && typeof valid === 'object', 'case.json: "valid" must map file names to expectations');
  const invalid = invalidEntries(spec.invalid);

  // A file dropped into valid/ or invalid/ without an expectation would otherwise go untested.
  await dataCheck(t, 'every file in valid/ and invalid/ is described in case.json', () => {
    for (const [sub, names] of [
      ['valid', Object.keys(valid).map(withExt)],
      ['invalid', invalid.map(([n]) => n)],
    ] as const) {
      const onDisk = readdirSync(join(dir, sub))
        .filter((f) => f.endsWith('.safetensors'))
        .sort();
      assert.deepEqual(onDisk, [...names].sort(), `${sub}/ and case.json list different files`);
    }
  });

  for (const [fileName, want] of Object.entries(valid)) {
    await t.test(`valid/${fileName}`, async (ft) => {
      const path = join(dir, 'valid', withExt(fileName));
      using file = SafetensorsFile.open(path);
      await ft.test('metadata and tensor names', () => {
        assert.deepEqual(file.metadata, want.metadata ?? {}, `${path}: metadata`);
        assert.deepEqual([...file.keys()].sort(), Object.keys(want.tensors).sort(), `${path}: tensor names`);
      });
      for (const [name, tensor] of Object.entries(want.tensors)) {
        await ft.test(name, () => checkTensor(file, name, tensor));
      }
    });
  }

  for (const [fileName, expectedError] of invalid) {
    await t.test(`invalid/${fileName}`, () => {
      const path = join(dir, 'invalid', fileName);
      // A missing file would be refused too ("no such file"), which must not count as a pass.
      assert.ok(statSync(path).isFile(), `${path} is listed in case.json but is not a file`);
      const isClean = (e: unknown): boolean => {
        assert.ok(
          e instanceof SafetensorsError && e instanceof ImmunizeError,
          `${path}: expected a SafetensorsError, got ${String(e)}`,
        );
        assert.equal(e.code, 'E_SAFETENSORS');
        assert.ok(e.message.includes(path), `${path}: the message should name the file: ${e.message}`);
        if (expectedError !== undefined)
          assert.ok(
            e.message.includes(expectedError),
            `${path}: message should contain "${expectedError}": ${e.message}`,
          );
        return true;
      };
      assert.throws(
        () => {
          using file = SafetensorsFile.open(path);
          for (const name of file.keys()) file.readBytes(name);
        },
        isClean,
        `${path}: SafetensorsFile accepted an invalid file`,
      );
      assert.throws(() => loadSafetensors(path), isClean, `${path}: loadSafetensors accepted an invalid file`);
    });
  }
};
export default run;
