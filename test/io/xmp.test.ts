// The "immunized" XMP label: build, parse, round trip through sharp in PNG, JPEG and WebP.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import sharp from 'sharp';
import { IMMUNIZE_XMP_NS, buildImmunizeXmp, parseImmunizeXmp, type ImmunizeMarker } from '../../src/io/xmp.js';
import { encodeImage, probeImage } from '../../src/io/images.js';
import { full } from '../../src/torch/index.js';

const marker: ImmunizeMarker = {
  tool: 'immunize',
  toolVersion: '0.1.0',
  method: 'encoder',
  eps: 16 / 255,
  norm: 'linf',
  model: 'a "quoted" <model> & co',
  preset: 'paper',
  steps: 200,
  stepsTaken: 150,
  stepSize: 2 / 255,
  optimizer: 'sign',
  seed: 7,
  masked: true,
  date: '2025-01-02T03:04:05.000Z',
};

test('build → parse gives every field back with its type; XML is escaped', () => {
  const xmp = buildImmunizeXmp(marker);
  assert.ok(xmp.includes(IMMUNIZE_XMP_NS));
  assert.ok(xmp.includes('&quot;quoted&quot; &lt;model&gt; &amp; co'));
  assert.ok(xmp.includes('xmp:CreatorTool="immunize 0.1.0"'));
  assert.deepEqual(parseImmunizeXmp(xmp), marker);
});

test('null fields are left out; another prefix and the element form are understood', () => {
  const xmp = buildImmunizeXmp({ ...marker, model: null, optimizer: null });
  const back = parseImmunizeXmp(xmp)!;
  assert.equal(back.model, undefined);
  assert.equal(back.method, 'encoder');
  const rewritten = `<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description xmlns:imm='${IMMUNIZE_XMP_NS}'><imm:Method>noise</imm:Method><imm:Epsilon>0.03</imm:Epsilon><imm:Masked>False</imm:Masked></rdf:Description></rdf:RDF></x:xmpmeta>`;
  assert.deepEqual(parseImmunizeXmp(rewritten), { method: 'noise', eps: 0.03, masked: false });
});

test('no namespace → null', () => {
  assert.equal(parseImmunizeXmp(null), null);
  assert.equal(
    parseImmunizeXmp('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description immunize:Method="encoder"/></x:xmpmeta>'),
    null,
    'the prefix alone is not the namespace',
  );
});

test('sharp writes it into PNG (iTXt XML:com.adobe.xmp), JPEG and WebP and reads it back', async () => {
  using img = full([1, 3, 8, 8], 0.5);
  for (const format of ['png', 'jpeg', 'webp'] as const) {
    const bytes = await encodeImage(img, { format, xmp: buildImmunizeXmp(marker), warn: () => {} });
    if (format === 'png') assert.ok(bytes.includes('XML:com.adobe.xmp'), 'PNG iTXt keyword');
    assert.equal((await sharp(bytes).metadata()).format, format);
    assert.deepEqual(parseImmunizeXmp((await probeImage(bytes)).xmp), marker, format);
  }
  const plain = await encodeImage(img);
  assert.equal((await probeImage(plain)).xmp, null, 'no label unless asked');
});
