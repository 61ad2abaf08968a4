// Real codecs through sharp (src/purify/codecs.ts): JPEG (libjpeg-turbo and mozjpeg settings,
// 4:2:0 and 4:4:4) and WebP round trips — shapes, quality ordering, what the options change,
// and agreement with an independent encode/decode through sharp itself.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import sharp from 'sharp';
import { ArgumentError } from '../../src/errors.js';
import { jpeg, webp, type JpegEncoder } from '../../src/purify/codecs.js';
import { cat, Generator, noGrad, rand, scope, tensor, type Tensor } from '../../src/torch/index.js';

/** A smooth colourful image with some texture (JPEG behaves as on photos, not on pure noise). */
function photoLike(h = 48, w = 64, seed = 1): Tensor {
  return noGrad(() =>
    scope(() => {
      const y = tensor(
        Float32Array.from({ length: h * w }, (_, i) => Math.floor(i / w) / h),
        [1, 1, h, w],
      );
      const x = tensor(
        Float32Array.from({ length: h * w }, (_, i) => (i % w) / w),
        [1, 1, h, w],
      );
      const r = x.mul(6).sin().mul(0.3).add(0.5);
      const g = y.mul(4).cos().mul(0.3).add(0.5);
      const b = x.add(y).mul(0.5);
      const noise = rand([1, 3, h, w], { generator: new Generator({ seed }) })
        .sub(0.5)
        .mul(0.1);
      return cat([r, g, b], 1).add(noise).clamp(0, 1);
    }),
  );
}

function psnr(a: Tensor, b: Tensor): number {
  return noGrad(() => scope(() => 10 * Math.log10(1 / a.sub(b).square().mean().item())));
}

function bytesOf(x: Tensor): Buffer {
  const data = noGrad(() =>
    scope(() => x.select(0, 0).mul(255).round().to('uint8').permute(1, 2, 0).contiguous().toTypedArray() as Uint8Array),
  );
  return Buffer.from(data.buffer, data.byteOffset, data.length);
}

describe('jpeg', () => {
  test('shape, dtype and range kept; higher quality is closer; input unchanged', async () => {
    const x = photoLike();
    const before = x.clone();
    const [q30, q75, q95] = await Promise.all([30, 75, 95].map((quality) => jpeg(x, { quality })));
    assert.deepEqual(q75!.shape, x.shape);
    assert.equal(q75!.dtype, 'float32');
    const [a, b, c] = [psnr(q30!, x), psnr(q75!, x), psnr(q95!, x)];
    assert.ok(a < b && b < c, `PSNR q30 ${a.toFixed(2)}, q75 ${b.toFixed(2)}, q95 ${c.toFixed(2)} dB`);
    assert.ok(c > 30, `q95 only ${c.toFixed(2)} dB`);
    // Decoded bytes: every value a multiple of 1/255.
    const off = noGrad(() => q75!.mul(255).sub(q75!.mul(255).round()).abs().max().item());
    assert.ok(off < 1e-4);
    assert.equal(
      noGrad(() => x.sub(before).abs().max().item()),
      0,
    );
  });

  test('equals an independent sharp encode/decode of the same bytes (default settings)', async () => {
    const x = photoLike(40, 40, 2);
    const ours = await jpeg(x, { quality: 70 });
    const raw = await sharp(bytesOf(x), { raw: { width: 40, height: 40, channels: 3 } })
      .jpeg({ quality: 70 })
      .toBuffer();
    const dec = await sharp(raw).raw().toBuffer();
    assert.ok(bytesOf(ours).equals(dec), 'byte-identical to sharp with the same options');
  });

  test('4:4:4 keeps more colour than 4:2:0; mozjpeg differs from libjpeg-turbo mode', async () => {
    const x = photoLike(48, 48, 3);
    const s420 = await jpeg(x, { quality: 90, chromaSubsampling: '4:2:0' });
    const s444 = await jpeg(x, { quality: 90, chromaSubsampling: '4:4:4' });
    assert.ok(
      psnr(s444, x) > psnr(s420, x) + 0.5,
      `4:4:4 ${psnr(s444, x).toFixed(2)} dB vs 4:2:0 ${psnr(s420, x).toFixed(2)} dB`,
    );
    const moz = await jpeg(x, { quality: 75, encoder: 'mozjpeg' });
    const turbo = await jpeg(x, { quality: 75, encoder: 'libjpeg-turbo' });
    assert.ok(noGrad(() => moz.sub(turbo).abs().max().item()) > 0, 'mozjpeg settings change the result');
    // Both are real compressions of similar fidelity (mozjpeg's own tables at the same number).
    assert.ok(Math.abs(psnr(moz, x) - psnr(turbo, x)) < 3);
  });

  test('a batch is coded image by image', async () => {
    const a = photoLike(24, 32, 4);
    const b = photoLike(24, 32, 5);
    const both = await jpeg(
      noGrad(() => cat([a, b], 0)),
      { quality: 60 },
    );
    const one = await jpeg(b, { quality: 60 });
    assert.deepEqual(both.shape, [2, 3, 24, 32]);
    assert.equal(
      noGrad(() => both.narrow(0, 1, 1).sub(one).abs().max().item()),
      0,
    );
  });

  test('bad options and inputs give one clear error', async () => {
    const x = photoLike(16, 16);
    await assert.rejects(jpeg(x, { quality: 0 }), ArgumentError);
    await assert.rejects(jpeg(x, { quality: 101 }), /quality/);
    await assert.rejects(jpeg(x, { quality: 80, encoder: 'guetzli' as JpegEncoder }), /encoder/);
    await assert.rejects(jpeg(x, { quality: 80, chromaSubsampling: '4:1:1' as '4:2:0' }), /chromaSubsampling/);
    await assert.rejects(
      jpeg(
        noGrad(() => x.narrow(1, 0, 1)),
        { quality: 80 },
      ),
      /3 channels/,
    );
    await assert.rejects(jpeg(x, null as never), /options/);
  });
});

describe('webp', () => {
  test('lossy WebP: quality ordering, shape kept', async () => {
    const x = photoLike();
    const lo = await webp(x, { quality: 20 });
    const hi = await webp(x, { quality: 95 });
    assert.deepEqual(hi.shape, x.shape);
    assert.ok(psnr(hi, x) > psnr(lo, x) + 1, `q20 ${psnr(lo, x).toFixed(2)} dB, q95 ${psnr(hi, x).toFixed(2)} dB`);
    assert.ok(psnr(hi, x) < 60, 'lossy, not lossless');
    await assert.rejects(webp(x, { quality: 1.5 }), /integer/);
  });
});
