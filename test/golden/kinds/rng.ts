// kind "rng": each `calls` entry names a draw (e.g. seed0_randn_2x3x4x4, gen7_randn_16,
// seed1234_seq_then_rand_3x7, seed42_randint_0_100_10, seed9209_randn_1x4x64x64_first32);
// the stored tensor must come out bit for bit.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadSafetensors } from '../../../src/io/tensors.js';
import { Generator, manualSeed, rand, randint, randn, type Tensor } from '../../../src/torch/index.js';
import type { CaseRunner } from './types.js';

const NAME = /^(seed|gen)(\d+)_(seq_)?(then_)?(randn|rand|randint)_([0-9x_]+?)(?:_first(\d+))?$/;

interface Draw {
  source: 'seed' | 'gen';
  seed: number;
  continues: boolean;
  fn: string;
  args: string;
  first: number | null;
}

export function parseDraw(name: string): Draw {
  const m = NAME.exec(name);
  if (m === null)
    throw new Error(
      `rng: cannot parse call name '${name}' (expected e.g. seed0_randn_2x3, gen7_rand_16, seed42_randint_0_100_10)`,
    );
  return {
    source: m[1] as 'seed' | 'gen',
    seed: Number(m[2]),
    continues: m[4] !== undefined,
    fn: m[5]!,
    args: m[6]!,
    first: m[7] === undefined ? null : Number(m[7]),
  };
}

const sizeOf = (s: string): number[] => s.split('x').map(Number);

function firstDifference(a: Uint8Array, b: Uint8Array, itemSize: number): string {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if (a[i] !== b[i]) return `first difference at element ${Math.floor(i / itemSize)}`;
  }
  return 'equal';
}

const run: CaseRunner = async ({ dir, spec }, t) => {
  const io = loadSafetensors(join(dir, 'io.safetensors'));
  const calls = spec.calls as Record<string, string>;
  let generator: Generator | null = null;
  for (const [name, key] of Object.entries(calls)) {
    await t.test(name, () => {
      const d = parseDraw(name);
      const expected = io.get(key);
      assert.ok(expected, `io.safetensors has no tensor '${key}'`);
      if (!d.continues) {
        if (d.source === 'seed') {
          manualSeed(d.seed);
          generator = null;
        } else generator = new Generator({ seed: d.seed });
      }
      const opts = generator === null ? {} : { generator };
      let got: Tensor;
      if (d.fn === 'randint') {
        const [low, high, ...size] = d.args.split('_');
        got = randint(Number(low), Number(high), sizeOf(size.join('_')), opts);
      } else {
        got = (d.fn === 'randn' ? randn : rand)(sizeOf(d.args), opts);
      }
      if (d.first !== null) {
        const flat = got.reshape(-1).narrow(0, 0, d.first);
        got.dispose();
        got = flat;
      }
      assert.deepEqual(got.shape, expected.shape, `${name}: shape`);
      assert.equal(got.dtype, expected.dtype, `${name}: dtype`);
      const a = got.toBytes();
      const b = expected.toBytes();
      assert.ok(
        Buffer.compare(a, b) === 0,
        `${name}: not bit-identical to PyTorch (${firstDifference(a, b, a.length / Math.max(1, got.numel))})`,
      );
      got.dispose();
    });
  }
  for (const v of io.values()) v.dispose();
};
export default run;
