// The HTML report on synthetic results (no models): images copied or embedded, every reference
// checked, text escaped, nothing fetched from the network; the SVG helpers' edge cases.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { sha256File } from '../../src/eval/cache.js';
import type { EvaluationResults, ItemResult } from '../../src/eval/protocol.js';
import { verifyReportAssets, writeReport } from '../../src/eval/report.js';
import { summarize } from '../../src/eval/stats.js';
import { boxPlot, iqrBars, lineChart, niceTicks } from '../../src/eval/svg.js';

async function png(path: string, color: string): Promise<{ file: string; sha256: string }> {
  await sharp({ create: { width: 16, height: 16, channels: 3, background: color } })
    .png()
    .toFile(path);
  return { file: path, sha256: sha256File(path) };
}

async function synthetic(dir: string): Promise<EvaluationResults> {
  const methods = ['clean', 'noise', 'encoder'];
  const files = {
    clean: await png(join(dir, 'c.png'), '#808080'),
    noise: await png(join(dir, 'n.png'), '#907050'),
    encoder: await png(join(dir, 'e.png'), '#2050a0'),
  };
  const items: ItemResult[] = [0, 1, 2].map((i) => ({
    id: `item${i}`,
    image: `/x/${i}.png`,
    mask: null,
    prompt: `a <b>cat</b> & "dog" ${i}`,
    negativePrompt: '',
    seed: i,
    mode: 'img2img',
    inputs: Object.fromEntries(
      methods.map((m) => [
        m,
        {
          ...files[m as keyof typeof files],
          origin: m === 'clean' ? 'source' : 'computed',
          linf255: m === 'clean' ? 0 : 16,
          psnr: m === 'clean' ? Infinity : 30,
        },
      ]),
    ) as ItemResult['inputs'],
    variants: Object.fromEntries(
      methods.flatMap((m) =>
        [null, 'jpeg:50', 'jpeg:90'].map((p) => {
          const key = p === null ? m : `${m}@${p}`;
          return [
            key,
            {
              key,
              method: m,
              purification: p,
              input: files[m as keyof typeof files],
              edit: files[m as keyof typeof files],
              metrics: {
                psnr: m === 'clean' ? 80 : 20 + i + (p === 'jpeg:90' ? 5 : 0),
                ssim: m === 'clean' ? 1 : 0.5 + i / 10,
              },
              clip: 0.2 + i / 100,
            },
          ];
        }),
      ),
    ),
    skipped: {},
  }));
  const variants = [null, 'jpeg:50', 'jpeg:90'].flatMap((p) =>
    methods.map((m) => ({ key: p === null ? m : `${m}@${p}`, method: m, purification: p })),
  );
  const aggregates = Object.fromEntries(
    variants.map((v) => [
      v.key,
      {
        ...v,
        items: 3,
        fid: v.method === 'clean' ? -1e-13 : 12.5,
        precision: 0.5,
        recall: 0.4,
        metrics: {
          psnr: summarize(items.map((it) => it.variants[v.key]!.metrics['psnr']!)),
          ssim: summarize(items.map((it) => it.variants[v.key]!.metrics['ssim']!)),
        },
        clip: summarize(items.map((it) => it.variants[v.key]!.clip)),
      },
    ]),
  );
  return {
    tool: { name: 'immunize', protocol: 1, libtorch: '1.13', node: process.version },
    createdAt: '2025-01-01T00:00:00Z',
    dataset: { path: '/x/d.json', name: 'synthetic <test>', sha256: '0', items: 3 },
    settings: {
      size: 16,
      models: { img2img: 'a/b', inpaint: 'a/c', encoder: null, clip: 'tiny', inception: null },
      edit: { steps: 4, guidance: 7.5, eta: 1, strength: 0.7, scheduler: null },
      immunize: {
        methods: ['encoder', 'noise'],
        preset: 'paper',
        eps: 16 / 255,
        stepSize: 2 / 255,
        steps: 2,
        diffusionSteps: 4,
        gradReps: 1,
        seed: 0,
      },
      purify: ['jpeg:50', 'jpeg:90'],
      fid: { dims: 2048, nearestK: 3 },
    },
    methods,
    purifications: ['jpeg:50', 'jpeg:90'],
    variants,
    metrics: [
      { name: 'psnr', better: 'higher', ideal: 80 },
      { name: 'ssim', better: 'higher', ideal: 1 },
    ],
    items,
    aggregates,
    sweeps: [
      {
        key: 'jpeg',
        parameter: 'quality',
        points: [
          { spec: 'jpeg:50', x: 50 },
          { spec: 'jpeg:90', x: 90 },
        ],
      },
    ],
    notes: ['a note with <angle brackets>'],
    work: { dir: '/x/work', computed: {}, cached: {} },
    timing: { totalMs: 1 },
  };
}

test('report: images copied beside the page and referenced relatively, all present; text escaped; a CSP forbids network', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'immunize-report-'));
  const results = await synthetic(dir);
  const page = await writeReport(results, join(dir, 'report'));
  const html = readFileSync(page, 'utf8');
  assert.match(html, /<table id="summary">/);
  assert.match(html, /Content-Security-Policy" content="default-src 'none'/);
  assert.doesNotMatch(html, /<script/i);
  assert.match(html, /a &lt;b&gt;cat&lt;\/b&gt; &amp; &quot;dog&quot; 0/);
  assert.match(html, /synthetic &lt;test&gt;/);
  assert.match(html, /data-sweep="jpeg"/);
  assert.match(html, /-1\.00e-13/, 'a tiny FID keeps its significant digits');
  const refs = verifyReportAssets(page);
  assert.equal(refs.embedded, 0);
  assert.ok(refs.images >= 3 * 3 * 2);
  // Three distinct images, each copied once.
  assert.equal(new Set([...html.matchAll(/src="(images\/[^"]+)"/g)].map((m) => m[1])).size, 3);
  // A missing image, or a reference to the network, is caught.
  const first = /src="(images\/[^"]+)"/.exec(html)![1]!;
  rmSync(join(dir, 'report', first));
  assert.throws(
    () => verifyReportAssets(page),
    (e: Error & { code?: string }) =>
      e.code === 'E_REPORT' && e.message.includes(`references ${first}, which does not exist`),
  );
  writeFileSync(join(dir, 'net.html'), '<img src="https://example.com/x.png">');
  assert.throws(() => verifyReportAssets(join(dir, 'net.html')), /which is not a local file/);
});

test('report: --embed-images puts every image into the page as a data: URI', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'immunize-report-'));
  const page = await writeReport(await synthetic(dir), join(dir, 'embedded'), { embedImages: true });
  const refs = verifyReportAssets(page);
  assert.equal(refs.embedded, refs.images);
  assert.ok(!existsSync(join(dir, 'embedded', 'images')));
});

test('charts: round ticks, constant and empty data do not break them', () => {
  assert.deepEqual(niceTicks(0, 10), [0, 2, 4, 6, 8, 10]);
  assert.ok(niceTicks(5, 5).length >= 2, 'a constant series still gets an axis');
  assert.deepEqual(niceTicks(NaN, 1), []);
  assert.match(boxPlot('t', 'y', [{ label: 'a', color: '#000', values: [] }]), /no finite values/);
  assert.match(boxPlot('t', 'y', [{ label: 'a', color: '#000', values: [1, 1, 1] }]), /<rect/);
  assert.match(iqrBars('t', 'y', [{ label: 'a', color: '#000', median: 0.2, q1: 0.1, q3: 0.3, mean: 0.2 }]), /<svg/);
  assert.match(
    lineChart('t', 'x', 'y', [{ label: 'a', color: '#000', points: [{ x: 1, y: NaN }] }]),
    /no finite values/,
  );
  assert.doesNotMatch(
    lineChart('t', 'x', 'y', [
      {
        label: 'a',
        color: '#000',
        points: [
          { x: 1, y: 2 },
          { x: 3, y: 4, lo: 3, hi: 5 },
        ],
        reference: 1,
      },
    ]),
    /NaN/,
  );
});
