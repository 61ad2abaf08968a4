// The learned immunizer's network G (src/models/immunizer.ts): config validation, loading from
// config.json + safetensors (round trip), any image size, determinism, and clear errors.
import assert from 'node:assert/strict';
import { writeFileSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ImmunizeError } from '../../src/errors.js';
import { ImmunizerNet, loadImmunizer, parseImmunizerConfig, saveImmunizer } from '../../src/models/immunizer.js';
import { F, Generator, noGrad, rand, scope, type Tensor } from '../../src/torch/index.js';
import { tempDir } from '../helpers/temp.js';

const tiny = { hidden_channels: 8, num_blocks: 2, norm_groups: 0, target_model: 'taef2', eps: 16 / 255 };

function image(h: number, w: number, seed = 1): Tensor {
  return noGrad(() => rand([1, 3, h, w], { generator: new Generator({ seed }) }));
}

function isCode(code: string, text?: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof ImmunizeError, `expected an ImmunizeError, got ${String(e)}`);
    assert.equal(e.code, code);
    if (text) assert.match(e.message, text);
    return true;
  };
}

describe('ImmunizerNet', () => {
  test('odd sizes and aspect ratios give an output of exactly the input shape', () => {
    using net = new ImmunizerNet(tiny).initRandom(0);
    for (const [h, w] of [
      [8, 8],
      [13, 29],
      [37, 5],
      [64, 48],
      [3, 3],
    ] as const) {
      using x = image(h, w);
      using y = noGrad(() => net.forward(x));
      assert.deepEqual(y.shape, [1, 3, h, w], `${h}×${w}`);
      assert.ok(noGrad(() => scope(() => y.isfinite().all().item())) === 1, `${h}×${w}: finite`);
    }
  });

  test('a side that is not a multiple of 8 is reflection-padded, run and cropped back', () => {
    using net = new ImmunizerNet(tiny).initRandom(0);
    using x = image(21, 37);
    using y = noGrad(() => net.forward(x));
    using padded = noGrad(() => F.pad(x, [0, 3, 0, 3], 'reflect'));
    using full = noGrad(() => net.forward(padded));
    using top = noGrad(() => scope(() => full.narrow(2, 0, 21).narrow(3, 0, 37).contiguous()));
    assert.ok(y.allclose(top, 1e-5, 1e-6));
  });

  test('the output is deterministic for the same weights and input', () => {
    using a = new ImmunizerNet(tiny).initRandom(3);
    using b = new ImmunizerNet(tiny).initRandom(3);
    using x = image(20, 33);
    using ya = noGrad(() => a.forward(x));
    using yb = noGrad(() => b.forward(x));
    assert.ok(ya.equal(yb));
    using c = new ImmunizerNet(tiny).initRandom(4);
    using yc = noGrad(() => c.forward(x));
    assert.ok(!ya.equal(yc), 'another seed gives other weights');
  });

  test('a non-image input is refused with a message naming the shape', () => {
    using net = new ImmunizerNet(tiny).initRandom(0);
    using x = noGrad(() => rand([1, 4, 8, 8]));
    assert.throws(() => net.forward(x), /N×3×H×W.*\[1, 4, 8, 8\]/);
  });
});

describe('config and loading', () => {
  test('save then load round-trips config and weights (fp32 and fp16 storage)', () => {
    const dir = tempDir('immunizer');
    using net = new ImmunizerNet(tiny).initRandom(7);
    using x = image(16, 24);
    using y = noGrad(() => net.forward(x));
    saveImmunizer(join(dir, 'fp32'), net);
    using back = loadImmunizer(join(dir, 'fp32'));
    assert.deepEqual(back.config, net.config);
    using y2 = noGrad(() => back.forward(x));
    assert.ok(y.equal(y2), 'fp32 storage is exact');
    saveImmunizer(join(dir, 'fp16'), net, { dtype: 'float16' });
    using half = loadImmunizer(join(dir, 'fp16', 'model.safetensors'));
    assert.equal(half.parameters()[0]!.dtype, 'float32', 'fp16 on disk loads as fp32');
    using y3 = noGrad(() => half.forward(x));
    assert.ok(y.allclose(y3, 1e-2, 1e-2), 'fp16 storage is close');
  });

  test('bad configs are refused with the key and the file named', () => {
    assert.throws(
      () => parseImmunizerConfig({ hidden_channels: 0 }, 'c.json'),
      isCode('E_CONFIG', /c\.json: hidden_channels/),
    );
    assert.throws(
      () => parseImmunizerConfig({ eps: 2 }, 'c.json'),
      isCode('E_CONFIG', /eps must be a number in \(0, 1\]/),
    );
    assert.throws(
      () => parseImmunizerConfig({ hidden_channels: 10, norm_groups: 4 }),
      isCode('E_CONFIG', /multiple of norm_groups/),
    );
    assert.throws(
      () => parseImmunizerConfig({ _class_name: 'AutoencoderTiny' }),
      isCode('E_CONFIG', /expected LearnedImmunizer/),
    );
    assert.throws(() => parseImmunizerConfig({ target_model: '' }), isCode('E_CONFIG', /target_model/));
  });

  test('missing folder, config or weights, and mismatched weights give clear errors', () => {
    const dir = tempDir('immunizer-bad');
    assert.throws(() => loadImmunizer(join(dir, 'nope')), isCode('E_MODEL_FILE', /does not exist/));
    mkdirSync(join(dir, 'a'));
    assert.throws(() => loadImmunizer(join(dir, 'a')), isCode('E_MODEL_FILE', /no config\.json/));
    writeFileSync(join(dir, 'a', 'config.json'), JSON.stringify({ _class_name: 'LearnedImmunizer', ...tiny }));
    assert.throws(() => loadImmunizer(join(dir, 'a')), isCode('E_MODEL_FILE', /no \.safetensors/));
    writeFileSync(join(dir, 'a', 'config.json'), JSON.stringify({ _class_name: 'AutoencoderKL' }));
    assert.throws(() => loadImmunizer(join(dir, 'a')), isCode('E_CONFIG', /is this a learned immunizer/));
    using net = new ImmunizerNet(tiny).initRandom(0);
    saveImmunizer(join(dir, 'b'), net);
    writeFileSync(
      join(dir, 'b', 'config.json'),
      JSON.stringify({ _class_name: 'LearnedImmunizer', ...tiny, hidden_channels: 16 }),
    );
    assert.throws(() => loadImmunizer(join(dir, 'b')), isCode('E_WEIGHTS_SHAPE'));
    rmSync(join(dir, 'b', 'model.safetensors'));
    assert.throws(() => loadImmunizer(join(dir, 'b')), isCode('E_MODEL_FILE'));
  });
});
