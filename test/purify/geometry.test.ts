// Geometric purifications (src/purify/geometry.ts) beyond the `transforms` golden: Pillow-style
// resampling matrices (bilinear, bicubic, lanczos), resize down/up, rotation, flips, crops,
// gradients and errors.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import sharp from 'sharp';
import {
  centerCrop,
  cropResize,
  hflip,
  pilResampleMatrix,
  resize,
  resizeDownUp,
  rotate,
  vflip,
} from '../../src/purify/geometry.js';
import { seededImage } from '../torch/helpers.js';
import { assertGradcheck, full, Generator, noGrad, rand, scope, tensor, type Tensor } from '../../src/torch/index.js';

const img = (seed: number, shape = [1, 3, 24, 32]): Tensor => seededImage(seed, shape);
const maxDiff = (a: Tensor, b: Tensor): number => noGrad(() => scope(() => a.sub(b).abs().max().item()));

describe('resize', () => {
  test('Pillow resampling matrices: rows sum to 1, supports widen when down-scaling', () => {
    for (const f of ['bilinear', 'bicubic', 'lanczos'] as const) {
      for (const [n, m] of [
        [32, 13],
        [13, 32],
        [10, 10],
      ] as const) {
        const mat = pilResampleMatrix(n, m, f);
        for (let r = 0; r < m; r++) {
          let s = 0;
          for (let c = 0; c < n; c++) s += mat[r * n + c]!;
          assert.ok(Math.abs(s - 1) < 1e-12, `${f} ${n}→${m} row ${r} sums to ${s}`);
        }
      }
      // Same size: the identity for every filter (Pillow's kernels vanish at nonzero integers).
      const id = pilResampleMatrix(6, 6, f);
      for (let i = 0; i < 6; i++)
        for (let j = 0; j < 6; j++) assert.ok(Math.abs(id[i * 6 + j]! - (i === j ? 1 : 0)) < 1e-12);
    }
    const taps = (mat: Float64Array, n: number) => Array.from(mat.subarray(5 * n, 6 * n)).filter((v) => v !== 0).length;
    assert.ok(taps(pilResampleMatrix(64, 16, 'lanczos'), 64) > taps(pilResampleMatrix(16, 64, 'lanczos'), 16));
  });

  test('lanczos down-scaling agrees with sharp (libvips lanczos3) to within a few grey levels', async () => {
    // Not the same code (libvips reduces in fixed point), so this bounds, not equals.
    const x = noGrad(() =>
      scope(() =>
        full([1, 3, 48, 64], 0.5).add(
          rand([1, 3, 48, 64], { generator: new Generator({ seed: 1 }) })
            .sub(0.5)
            .mul(0.2),
        ),
      ),
    );
    const bytes = noGrad(() =>
      scope(
        () => x.select(0, 0).mul(255).round().to('uint8').permute(1, 2, 0).contiguous().toTypedArray() as Uint8Array,
      ),
    );
    const q = noGrad(() => scope(() => x.mul(255).round().div(255)));
    const viaSharp = await sharp(Buffer.from(bytes), { raw: { width: 64, height: 48, channels: 3 } })
      .resize(32, 24, { kernel: 'lanczos3', fit: 'fill' })
      .raw()
      .toBuffer();
    const s = noGrad(() => tensor(new Uint8Array(viaSharp), [1, 24, 32, 3]).permute(0, 3, 1, 2).to('float32').div(255));
    const ours = resize(q, [24, 32], { mode: 'lanczos' });
    const mae = noGrad(() => ours.sub(s).abs().mean().item() * 255);
    assert.ok(mae < 1.5, `mean |ours − sharp| ${mae.toFixed(3)} grey levels`);
  });

  test('resize down/up: shape and constants kept, detail lost, in [0, 1], for every mode', () => {
    scope(() => {
      const x = img(2);
      for (const mode of ['bilinear', 'bicubic', 'lanczos'] as const) {
        const y = resizeDownUp(x, 0.5, mode);
        assert.deepEqual(y.shape, x.shape);
        assert.ok(y.min().item() >= 0 && y.max().item() <= 1, `${mode} leaves [0, 1]`);
        assert.ok(y.var().item() < x.var().item() * 0.8, `${mode}: variance ${y.var().item()} vs ${x.var().item()}`);
        assert.ok(maxDiff(resizeDownUp(full([1, 3, 20, 20], 0.3), 0.4, mode), full([1, 3, 20, 20], 0.3)) < 1e-5);
      }
      assert.ok(maxDiff(resizeDownUp(x, 1, 'bicubic'), x) < 1e-5, 'scale 1 keeps the image');
    });
  });

  test('bilinear down/up passes finite differences (float64)', () => {
    const x = noGrad(() => img(3, [1, 1, 8, 10]).mul(0.5).add(0.25).to('float64')).requiresGrad_();
    assertGradcheck((a) => resizeDownUp(a, 0.6, 'bilinear'), [x]);
    assertGradcheck((a) => resize(a, [5, 13], { mode: 'lanczos' }), [x]);
  });

  test('errors', () => {
    const x = img(4);
    assert.throws(() => resizeDownUp(x, 0), /scale/);
    assert.throws(() => resizeDownUp(x, 1.5), /scale/);
    assert.throws(() => resize(x, [0, 4]), /height/);
    assert.throws(() => resize(x, 8, { mode: 'area' as 'bilinear' }), /mode/);
  });
});

describe('rotate, flips, crop', () => {
  test('rotate by 90° is an exact quarter turn on a square image; 0° is the identity', () => {
    scope(() => {
      const x = img(5, [1, 3, 16, 16]);
      // Counter-clockwise: the top row becomes the left column, read bottom-up.
      const ccw = x.transpose(2, 3).flip(2);
      assert.ok(maxDiff(rotate(x, 90), ccw) < 1e-5);
      assert.ok(maxDiff(rotate(x, 0), x) < 1e-6);
      assert.ok(maxDiff(rotate(rotate(x, 90), -90), x) < 1e-5);
    });
  });

  test('rotate by 30° fills the corners with the fill value and is differentiable', () => {
    scope(() => {
      const x = full([1, 3, 16, 16], 0.6);
      const black = rotate(x, 30);
      assert.equal(black.narrow(2, 0, 1).narrow(3, 0, 1).max().item(), 0);
      assert.ok(
        Math.abs(black.narrow(2, 8, 1).narrow(3, 8, 1).max().item() - 0.6) < 1e-6,
        'the centre keeps its value',
      );
      const grey = rotate(x, 30, { fill: 0.2 });
      assert.ok(Math.abs(grey.narrow(2, 0, 1).narrow(3, 0, 1).max().item() - 0.2) < 1e-6);
    });
    const y = noGrad(() => img(6, [1, 1, 6, 6]).to('float64')).requiresGrad_();
    assertGradcheck((a) => rotate(a, 17), [y]);
  });

  test('flips are involutions and mirror the right axis', () => {
    scope(() => {
      const x = tensor([1, 2, 3, 4, 5, 6], [1, 1, 2, 3]);
      assert.deepEqual([...(hflip(x).toTypedArray() as Float32Array)], [3, 2, 1, 6, 5, 4]);
      assert.deepEqual([...(vflip(x).toTypedArray() as Float32Array)], [4, 5, 6, 1, 2, 3]);
      const y = img(7);
      assert.equal(maxDiff(hflip(hflip(y)), y), 0);
    });
  });

  test('crop keeps the centre (torchvision offsets) and crop-resize restores the size', () => {
    scope(() => {
      const x = noGrad(() =>
        tensor(
          Float32Array.from({ length: 100 }, (_, i) => i),
          [1, 1, 10, 10],
        ),
      );
      const c = centerCrop(x, 0.5); // 5×5 at offset round(2.5) = 2 (half to even)
      assert.deepEqual(c.shape, [1, 1, 5, 5]);
      assert.equal(c.narrow(2, 0, 1).narrow(3, 0, 1).item(), 22);
      const r = cropResize(img(8), 0.8);
      assert.deepEqual(r.shape, [1, 3, 24, 32]);
      assert.throws(() => centerCrop(x, 0), /fraction/);
    });
  });
});
