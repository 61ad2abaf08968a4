// Image I/O details the CLI relies on: header probes, EXIF orientation, aspect-keeping resize,
// exact-size masks, lossy-format warnings.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import sharp from 'sharp';
import { ImmunizeError } from '../../src/errors.js';
import { encodeImage, probeImage, readImage, readMask } from '../../src/io/images.js';
import { full } from '../../src/torch/index.js';

async function jpeg(w: number, h: number, orientation?: number): Promise<Buffer> {
  let s = sharp(Buffer.alloc(w * h * 3, 100), { raw: { width: w, height: h, channels: 3 } }).jpeg();
  if (orientation !== undefined) s = s.withMetadata({ orientation });
  return s.toBuffer();
}

test('probeImage: displayed size after EXIF orientation, nothing decoded; bad input is E_IMAGE', async () => {
  const p = await probeImage(await jpeg(30, 20, 6));
  assert.deepEqual([p.width, p.height, p.orientation, p.format], [20, 30, 6, 'jpeg']);
  await assert.rejects(
    probeImage(Buffer.from('hello')),
    (e: unknown) => e instanceof ImmunizeError && e.code === 'E_IMAGE' && /not a readable image/.test(e.message),
  );
  await assert.rejects(probeImage(Buffer.alloc(0)), /not a readable image \(the file is empty\)/);
});

test('readImage: orientation applied; fit inside keeps the aspect ratio and never enlarges', async () => {
  const buf = await jpeg(40, 20, 6);
  const a = await readImage(buf);
  assert.deepEqual(a.tensor.shape, [1, 3, 40, 20]);
  const b = await readImage(buf, { width: 10, height: 10, fit: 'inside', withoutEnlargement: true });
  assert.deepEqual([b.width, b.height], [5, 10]);
  const c = await readImage(buf, { width: 100, height: 100, fit: 'inside', withoutEnlargement: true });
  assert.deepEqual([c.width, c.height], [20, 40]);
  const d = await readImage(buf, { width: 10, height: 10 });
  assert.deepEqual([d.width, d.height], [10, 10], 'cover (the default) fills the box');
  await assert.rejects(
    readImage(buf, { maxPixels: 100 }),
    (e: unknown) => e instanceof ImmunizeError && e.code === 'E_IMAGE_TOO_LARGE' && /20×40/.test(e.message),
  );
  for (const i of [a, b, c, d]) i.tensor.dispose();
});

test('readMask exact: another size is E_IMAGE_SIZE naming both sizes; the default still scales', async () => {
  const m = await sharp({ create: { width: 8, height: 6, channels: 3, background: '#ffffff' } })
    .png()
    .toBuffer();
  await assert.rejects(
    readMask(m, 16, 12, { exact: true }),
    (e: unknown) =>
      e instanceof ImmunizeError && e.code === 'E_IMAGE_SIZE' && /mask is 8×6 but the image is 16×12/.test(e.message),
  );
  const scaled = await readMask(m, 16, 12);
  assert.deepEqual(scaled.shape, [1, 1, 12, 16]);
  assert.equal(scaled.min().item(), 1);
  scaled.dispose();
  const same = await readMask(m, 8, 6, { exact: true });
  assert.deepEqual(same.shape, [1, 1, 6, 8]);
  same.dispose();
});

test('encodeImage: PNG silently, lossy formats with a warning', async () => {
  using img = full([1, 3, 4, 4], 0.25);
  const warnings: string[] = [];
  await encodeImage(img, { warn: (w) => warnings.push(w) });
  assert.equal(warnings.length, 0);
  await encodeImage(img, { format: 'jpeg', warn: (w) => warnings.push(w) });
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /JPEG is lossy/);
});
