// The evaluation dataset file: defaults (photoguard's editing settings), overrides, and errors
// that name the file, the item index and the key; purification sweeps; statistics; cache keys.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { canonicalJson, modelFingerprint, WorkDir } from '../../src/eval/cache.js';
import { loadDataset, parseDataset, PHOTOGUARD_EDIT } from '../../src/eval/dataset.js';
import { quantile, summarize } from '../../src/eval/stats.js';
import { expandSweep, sweepFamilies } from '../../src/eval/sweep.js';

function folder(): string {
  const dir = mkdtempSync(join(tmpdir(), 'immunize-dataset-'));
  writeFileSync(join(dir, 'a.png'), 'not really a png: only its existence is checked here');
  writeFileSync(join(dir, 'm.png'), 'x');
  return dir;
}

function write(dir: string, data: unknown, name = 'data.json'): string {
  const p = join(dir, name);
  writeFileSync(p, typeof data === 'string' ? data : JSON.stringify(data));
  return p;
}

test("dataset: defaults are photoguard's (guidance 7.5, 100 steps, η 1, strength 0.7, seed 9209, 512²); relative paths resolve beside the file", () => {
  const dir = folder();
  const ds = loadDataset(
    write(dir, {
      items: [
        { image: 'a.png', prompt: 'a cat' },
        { image: 'a.png', mask: 'm.png', prompt: 'a dog', seed: 3 },
      ],
    }),
  );
  assert.deepEqual([ds.edit.steps, ds.edit.guidance, ds.edit.eta, ds.edit.strength], [100, 7.5, 1, 0.7]);
  assert.equal(ds.size, 512);
  assert.equal(ds.items[0]!.seed, PHOTOGUARD_EDIT.seed);
  assert.equal(ds.items[0]!.image, join(dir, 'a.png'));
  assert.equal(ds.items[1]!.mask, join(dir, 'm.png'));
  assert.deepEqual(
    ds.items.map((i) => i.id),
    ['a', 'a-2'],
    'ids default to the image name, de-duplicated',
  );
  assert.deepEqual(ds.immunize.methods, ['encoder', 'noise']);
  assert.equal(ds.immunize.eps, 16 / 255);
  assert.equal(ds.name, 'data');
  assert.deepEqual(ds.purify, ['jpeg:75', 'impress:20'], 'the default sweep: a JPEG re-save and the adaptive purifier');
  assert.equal(ds.models.clip, null);
  assert.equal(ds.models.inception, null);
  // A bare array of items is a dataset too; overrides win over the file.
  assert.equal(
    parseDataset(
      { immunize: { eps: '8/255' }, items: [{ image: 'a.png', prompt: 'p' }] },
      { file: join(dir, 'x.json') },
    ).immunize.eps,
    8 / 255,
  );
  const o = parseDataset(
    [{ image: 'a.png', prompt: 'p' }],
    { file: join(dir, 'x.json') },
    { size: 64, edit: { steps: 3 }, purify: ['jpeg:95,75'], immunize: { methods: ['noise'] } },
  );
  assert.deepEqual([o.size, o.edit.steps, o.edit.guidance], [64, 3, 7.5]);
  assert.deepEqual(o.purify, ['jpeg:95', 'jpeg:75']);
  assert.deepEqual(o.immunize.methods, ['noise']);
  // No sweep when asked for none, in the file or on the command line.
  const file = { file: join(dir, 'x.json') };
  assert.deepEqual(parseDataset({ purify: [], items: [{ image: 'a.png', prompt: 'p' }] }, file).purify, []);
  assert.deepEqual(parseDataset([{ image: 'a.png', prompt: 'p' }], file, { purify: ['none'] }).purify, []);
});

test("dataset: the old preset name 'default' is strong", () => {
  const dir = folder();
  const file = write(dir, { immunize: { preset: 'default' }, items: [{ image: 'a.png', prompt: 'x' }] });
  assert.equal(loadDataset(file).immunize.preset, 'strong');
});

test('dataset: errors name the file, the item index and the key', () => {
  const dir = folder();
  const cases: [unknown, RegExp][] = [
    ['{"items": [', /data\.json: not valid JSON/],
    [{ items: [] }, /data\.json: items: the dataset has no items/],
    [{ itemz: [] }, /data\.json: unknown key 'itemz' \(expected version, name, size/],
    [{ items: [{ image: 'a.png' }] }, /data\.json: items\[0\]: missing key 'prompt'/],
    [
      {
        items: [
          { image: 'a.png', prompt: 'x' },
          { image: 'a.png', prompt: 42 },
        ],
      },
      /data\.json: items\[1\]\.prompt: expected a non-empty string but received 42 of type number/,
    ],
    [{ items: [{ image: 'nope.png', prompt: 'x' }] }, /items\[0\]\.image: file not found: .*nope\.png/],
    [{ items: [{ image: 'a.png', prompt: 'x', mask: 'gone.png' }] }, /items\[0\]\.mask: file not found/],
    [
      { items: [{ image: 'a.png', prompt: 'x', seed: -1 }] },
      /items\[0\]\.seed: expected an integer ≥ 0 but received -1/,
    ],
    [{ items: [{ image: 'a.png', prompt: 'x', promt: 'y' }] }, /items\[0\]: unknown key 'promt'/],
    [
      { immunize: { preset: 'balanced' }, items: [{ image: 'a.png', prompt: 'x' }] },
      /immunize\.preset: 'balanced' uses a texture budget and a visibility target, which the evaluation does not run yet; use one of strong, paper/,
    ],
    [
      {
        items: [
          { image: 'a.png', prompt: 'x', id: 'a' },
          { image: 'a.png', prompt: 'y', id: 'a' },
        ],
      },
      /items\[1\]\.id: 'a' is used by an earlier item/,
    ],
    [
      { items: [{ image: 'a.png', prompt: 'x', immunized: { encoder: 'missing.png' } }] },
      /items\[0\]\.immunized\.encoder: file not found/,
    ],
    [{ size: 60, items: [{ image: 'a.png', prompt: 'x' }] }, /data\.json: size: must be a multiple of 8/],
    [
      { edit: { steps: 0 }, items: [{ image: 'a.png', prompt: 'x' }] },
      /edit\.steps: expected an integer ≥ 1 and ≤ 1000 but received 0/,
    ],
    [
      { immunize: { methods: ['encoder', 'pgd'] }, items: [{ image: 'a.png', prompt: 'x' }] },
      /immunize\.methods\[1\]: expected one of encoder, robust, diffusion, noise but received pgd/,
    ],
    [
      { immunize: { methods: ['diffusion'] }, items: [{ image: 'a.png', prompt: 'x' }] },
      /'diffusion' .* needs items with a 'mask'/,
    ],
    [
      { purify: ['jpeg:101'], items: [{ image: 'a.png', prompt: 'x' }] },
      /data\.json: purify: invalid purification 'jpeg:101'.*quality/,
    ],
    [{ models: { clip: './no-such-clip' }, items: [{ image: 'a.png', prompt: 'x' }] }, /models\.clip: not found/],
  ];
  for (const [data, re] of cases)
    assert.throws(
      () => loadDataset(write(dir, data)),
      (e: Error & { code?: string }) => {
        assert.equal(e.code, 'E_DATASET', `${e.message} should be E_DATASET`);
        assert.match(e.message, re);
        return true;
      },
    );
  assert.throws(() => loadDataset(join(dir, 'absent.json')), /absent\.json: dataset file not found/);
});

test('purification sweeps: comma lists expand (canonical specs), families group by the first argument', () => {
  assert.deepEqual(expandSweep('jpeg:95,85,75,65,50'), ['jpeg:95', 'jpeg:85', 'jpeg:75', 'jpeg:65', 'jpeg:50']);
  assert.deepEqual(expandSweep('blur:1'), ['blur:1']);
  assert.deepEqual(expandSweep('jpeg:90,50+blur:1,2'), [
    'jpeg:90+blur:1',
    'jpeg:90+blur:2',
    'jpeg:50+blur:1',
    'jpeg:50+blur:2',
  ]);
  assert.throws(() => expandSweep('jpeg:90,,50'), /empty value/);
  assert.throws(() => expandSweep('jpge:90'), /unknown purification 'jpge'/);
  const fams = sweepFamilies([
    'jpeg:95',
    'jpeg:50',
    'jpeg:75',
    'blur:1',
    'jpeg:75:444',
    'jpeg:90:444',
    'hflip',
    'jpeg:90+blur:1',
  ]);
  assert.deepEqual(
    fams.map((f) => [f.key, f.parameter, f.points.map((p) => p.x)]),
    [
      ['jpeg', 'quality', [50, 75, 95]],
      ['jpeg:…:444', 'quality', [75, 90]],
    ],
  );
});

test('statistics as numpy: population std, linear quantiles, non-finite values left out', () => {
  assert.equal(quantile([1, 2, 3, 4], 0.25), 1.75);
  assert.equal(quantile([4, 1, 3, 2], 0.75), 3.25);
  const s = summarize([1, 2, 3, 4, null, Infinity])!;
  assert.deepEqual([s.n, s.mean, s.median, s.q1, s.q3, s.iqr], [4, 2.5, 2.5, 1.75, 3.25, 1.5]);
  assert.ok(Math.abs(s.std - Math.sqrt(1.25)) < 1e-15);
  assert.equal(summarize([null, NaN]), null);
});

test('cache keys: parameters in any order hash equally; a changed parameter changes the key; models fingerprint by files', () => {
  assert.equal(canonicalJson({ b: 1, a: [1, { d: 2, c: 3 }] }), '{"a":[1,{"c":3,"d":2}],"b":1}');
  const w = new WorkDir(mkdtempSync(join(tmpdir(), 'immunize-work-')));
  assert.equal(w.key('edit', { a: 1, b: 2 }), w.key('edit', { b: 2, a: 1 }));
  assert.notEqual(w.key('edit', { a: 1, b: 2 }), w.key('edit', { a: 1, b: 3 }));
  assert.notEqual(w.key('edit', { a: 1 }), w.key('purify', { a: 1 }));
  const dir = folder();
  const f1 = modelFingerprint(dir);
  assert.match(f1!, /^local:/);
  writeFileSync(join(dir, 'extra.json'), '{}');
  assert.notEqual(modelFingerprint(dir), f1);
  assert.equal(modelFingerprint('owner/repo'), 'hub:owner/repo');
  const key = w.key('metrics', { x: 1 });
  assert.equal(w.lookup(key, false), null);
  w.store(key, { metrics: { psnr: 3 } });
  assert.deepEqual(w.lookup(key, false), { metrics: { psnr: 3 } });
});
