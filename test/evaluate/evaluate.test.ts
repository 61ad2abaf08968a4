// `immunize evaluate` end to end on CPU: the tiny img2img and inpainting repositories of the
// conformance cases, 3 real photos at 64×64, 4 denoising steps, 2 attack steps, a JPEG sweep, a
// pre-immunized method, the tiny golden CLIP and a seeded random FID Inception (64-d features).
// Assertions are on structure and sanity, not on values: every method and variant present, finite
// metrics, the clean row ideal, files present, a second run reusing everything. Then the report
// is rendered in Debian's Chromium (playwright-core) and a screenshot is saved.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { saveSafetensors } from '../../src/io/tensors.js';
import type { EvaluationResults } from '../../src/eval/protocol.js';
import { randomInceptionWeights } from '../helpers/inception.js';
import { verifyReportAssets } from '../../src/eval/report.js';
import { run as runCli } from '../../src/cli/main.js';
import { repoRoot, sharedPath, skipReason } from '../helpers/shared.js';
import { renderInChromium, chromiumSkipReason, testOutputDir } from './chromium.js';

const bin = join(repoRoot, 'bin', 'immunize.js');
function immunize(...args: string[]) {
  return spawnSync(process.execPath, [bin, ...args], {
    encoding: 'utf8',
    env: { ...process.env, HF_HUB_OFFLINE: '1', OMP_WAIT_POLICY: 'passive' },
  });
}

const img2imgRepo = sharedPath('golden', 'pipeline_img2img');
const inpaintRepo = sharedPath('golden', 'pipeline_inpaint');
const clipGolden = sharedPath('golden', 'clip_model');
const clipTokenizer = sharedPath('golden', 'clip_tokenizer');
const photos = ['chelsea.png', 'astronaut.png', 'trevor_5.jpg', 'trevor_5_mask.png'].map((f) =>
  sharedPath('images', f),
);
const missing = [img2imgRepo, inpaintRepo, clipGolden, clipTokenizer, ...photos].some((p) => p === null);
const skip = missing
  ? skipReason('golden', 'pipeline_img2img, pipeline_inpaint, clip_model, clip_tokenizer and images/')
  : false;

/** A seeded random FID Inception saved as safetensors (pytorch-fid's key names; the values do not matter here). */
function randomInception(path: string): void {
  const sd = randomInceptionWeights();
  saveSafetensors(path, sd);
  for (const t of sd.values()) t.dispose();
}

/** The golden CLIP has no tokenizer files beside it: a folder of links to both (nothing is copied). */
function clipFolder(dir: string): string {
  const f = join(dir, 'clip');
  mkdirSync(f);
  symlinkSync(join(clipGolden!, 'config.json'), join(f, 'config.json'));
  symlinkSync(join(clipGolden!, 'weights.safetensors'), join(f, 'model.safetensors'));
  for (const name of ['vocab.json', 'merges.txt', 'tokenizer_config.json'])
    symlinkSync(join(clipTokenizer!, name), join(f, name));
  return f;
}

let run: { dir: string; results: EvaluationResults; report: string } | null = null;

test(
  'evaluate: the whole protocol on 3 photos with the tiny pipelines; a second run reuses everything',
  { skip },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'immunize-evaluate-'));
    const [chelsea, astronaut, trevor, trevorMask] = photos as string[];
    // A mask for the astronaut (white = repaint) and a "pre-immunized" file for chelsea (any 64×64 image will do).
    await sharp({ create: { width: 512, height: 512, channels: 3, background: '#000' } })
      .composite([
        {
          input: Buffer.from(
            '<svg width="512" height="512"><rect x="128" y="96" width="256" height="320" fill="#fff"/></svg>',
          ),
        },
      ])
      .png()
      .toFile(join(dir, 'mask.png'));
    await sharp(chelsea).resize(64, 64).blur(0.6).png().toFile(join(dir, 'chelsea.external.png'));
    const inception = join(dir, 'inception.safetensors');
    randomInception(inception);
    const dataset = join(dir, 'tiny.json');
    writeFileSync(
      dataset,
      JSON.stringify(
        {
          name: 'tiny',
          size: 64,
          models: { img2img: img2imgRepo, inpaint: inpaintRepo, clip: clipFolder(dir), inception },
          edit: { steps: 4 },
          immunize: { methods: ['encoder', 'diffusion', 'noise'], steps: 2, diffusionSteps: 2 },
          fid: { dims: 64 },
          items: [
            { image: chelsea, prompt: 'a cat in the snow', seed: 1, immunized: { external: 'chelsea.external.png' } },
            { image: astronaut, mask: 'mask.png', prompt: 'an astronaut on the moon', seed: 2 },
            { image: trevor, mask: trevorMask, prompt: 'two men in a wedding' },
          ],
        },
        null,
        2,
      ),
    );

    const first = immunize('evaluate', dataset, '--purify', 'jpeg:90,50', '--threads', '2', '--json');
    assert.equal(first.status, 0, first.stderr);
    const summary = JSON.parse(first.stdout.trim().split('\n').at(-1)!) as {
      results: string;
      report: string;
      computed: number;
      cached: number;
    };
    assert.match(first.stderr, /edit of encoder@jpeg:50/, 'progress on stderr names each piece of work');
    assert.match(first.stderr, /multi_scale_ssim: not computed at 64×64/);
    assert.ok(summary.computed > 0);
    const results = JSON.parse(readFileSync(summary.results, 'utf8')) as EvaluationResults;

    // Structure: every method, every purification, every variant.
    assert.deepEqual(results.methods, ['clean', 'noise', 'encoder', 'diffusion', 'external']);
    assert.deepEqual(results.purifications, ['jpeg:90', 'jpeg:50']);
    assert.equal(results.items.length, 3);
    assert.deepEqual(
      results.items.map((it) => it.mode),
      ['img2img', 'inpaint', 'inpaint'],
    );
    assert.deepEqual(Object.keys(results.items[0]!.inputs).sort(), ['clean', 'encoder', 'external', 'noise']);
    assert.match(results.items[0]!.skipped['diffusion']!, /needs a mask/);
    assert.deepEqual(Object.keys(results.items[2]!.inputs).sort(), ['clean', 'diffusion', 'encoder', 'noise']);
    const expectVariants = (it: EvaluationResults['items'][number]): string[] =>
      Object.keys(it.inputs)
        .flatMap((m) => [m, `${m}@jpeg:90`, `${m}@jpeg:50`])
        .sort();
    for (const it of results.items) assert.deepEqual(Object.keys(it.variants).sort(), expectVariants(it));
    assert.equal(results.variants.length, 15);
    assert.deepEqual(
      results.sweeps.map((s) => [s.key, s.points.map((p) => p.x)]),
      [['jpeg', [50, 90]]],
    );

    // Sanity: immunizations within budget, files present, metrics finite, the clean row ideal.
    for (const it of results.items) {
      for (const [m, input] of Object.entries(it.inputs)) {
        assert.ok(existsSync(input.file), input.file);
        if (m === 'noise' || m === 'encoder' || m === 'diffusion')
          assert.ok(input.linf255 <= 16 + 0.5 && input.linf255 > 0, `${it.id} ${m}: L∞ ${input.linf255}/255`);
      }
      for (const v of Object.values(it.variants)) {
        assert.ok(existsSync(v.edit.file) && existsSync(v.input.file));
        const meta = await sharp(v.edit.file).metadata();
        assert.deepEqual([meta.width, meta.height], [64, 64]);
        for (const [name, val] of Object.entries(v.metrics)) {
          if (name === 'multi_scale_ssim') assert.equal(val, null, 'MS-SSIM needs 161 px');
          else assert.ok(typeof val === 'number' && Number.isFinite(val), `${it.id} ${v.key} ${name} = ${val}`);
        }
        assert.ok(typeof v.clip === 'number' && v.clip >= -1 && v.clip <= 1, `${it.id} ${v.key} CLIP ${v.clip}`);
      }
      const clean = it.variants['clean']!;
      assert.equal(clean.metrics['psnr'], 80, 'identical edits: PSNR 80 dB (piq adds 1e-8 to the MSE)');
      assert.equal(clean.metrics['ssim'], 1);
      assert.ok(it.variants['encoder']!.edit.sha256 !== clean.edit.sha256, 'the encoder attack changed the edit');
    }
    for (const v of results.variants) {
      const a = results.aggregates[v.key]!;
      assert.ok(a.metrics['psnr'] && Number.isFinite(a.metrics['psnr'].mean) && a.metrics['psnr'].std >= 0, v.key);
      assert.ok(a.clip && a.clip.q1 <= a.clip.median && a.clip.median <= a.clip.q3, v.key);
    }
    assert.equal(results.aggregates['diffusion']!.items, 2);
    assert.equal(results.aggregates['external']!.items, 1);
    for (const k of ['noise', 'encoder', 'encoder@jpeg:50']) {
      const a = results.aggregates[k]!;
      assert.ok(a.precision !== null && a.precision >= 0 && a.precision <= 1, `${k} precision ${a.precision}`);
      assert.ok(a.fid === null || Number.isFinite(a.fid), `${k} FID ${a.fid}`);
    }
    assert.equal(results.aggregates['external']!.fid, null, 'FID needs 2 items');
    assert.ok(results.notes.some((n) => /FID\/PR for external: needs at least 2 items/.test(n)));
    assert.ok(existsSync(summary.report));
    assert.ok(verifyReportAssets(summary.report).images >= 3 * 2 * 4);

    // Resume: nothing is recomputed, and the numbers are the same.
    const second = immunize('evaluate', dataset, '--purify', 'jpeg:90,50', '--json');
    assert.equal(second.status, 0, second.stderr);
    const again = JSON.parse(second.stdout.trim().split('\n').at(-1)!) as { computed: number; cached: number };
    assert.equal(again.computed, 0, 'a second run recomputes nothing');
    assert.ok(again.cached >= summary.computed);
    assert.doesNotMatch(second.stderr, /loading/, 'a fully cached run loads no model');
    const results2 = JSON.parse(readFileSync(summary.results, 'utf8')) as EvaluationResults;
    assert.deepEqual(results2.aggregates, results.aggregates);

    // A changed parameter recomputes only what depends on it: a new purification adds its own work.
    const third = immunize('evaluate', dataset, '--purify', 'jpeg:90,50,70', '--json', '--no-report');
    assert.equal(third.status, 0, third.stderr);
    const t3 = JSON.parse(third.stdout.trim().split('\n').at(-1)!) as {
      computed: number;
      cached: number;
      report: string | null;
    };
    assert.equal(t3.report, null);
    const per = JSON.parse(readFileSync(summary.results, 'utf8')) as EvaluationResults;
    assert.equal(per.work.computed['edit'], 12, 'one new edit per input (4 + 4 + 4)');
    assert.equal(per.work.computed['purify'], 12);
    assert.equal(per.work.computed['immunize'] ?? 0, 0);
    run = { dir, results, report: summary.report };
  },
);

test(
  'evaluate: the report renders in Chromium (tables, plots, every image loaded, no console errors, no network)',
  { skip: skip || chromiumSkipReason() },
  async (t) => {
    if (run === null) return t.skip('the end-to-end run did not complete');
    // The third run above wrote a results file with jpeg:70 but no report; the report from the first run is intact.
    const shot = join(testOutputDir('evaluate'), 'report.png');
    const page = await renderInChromium(run.report, shot);
    assert.deepEqual(page.consoleErrors, []);
    assert.deepEqual(
      page.requests.filter((u) => !u.startsWith('file:') && !u.startsWith('data:')),
      [],
      'no network requests',
    );
    assert.ok(page.summaryRows >= 15, `Table 6 has a row per variant (${page.summaryRows})`);
    assert.ok(page.images >= 24);
    assert.deepEqual(page.brokenImages, []);
    assert.ok(page.svgs >= 12, `plots: ${page.svgs}`);
    assert.equal(page.sweepCharts, 3, 'PSNR, SSIM and CLIP against JPEG quality');
    assert.ok(existsSync(shot));
  },
);

test(
  'evaluate: a bad dataset stops with one line naming the file, item and key; unknown options are usage errors',
  { skip: photos[0] === null ? skipReason('images', 'chelsea.png') : false },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'immunize-evaluate-'));
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ items: [{ image: photos[0], prompt: 'x' }, { image: photos[0] }] }));
    // In-process (the CLI's run()), capturing what it prints: one process start per case would cost seconds each.
    const cli = async (...args: string[]): Promise<{ status: number; stdout: string; stderr: string }> => {
      const out: string[] = [],
        err: string[] = [];
      const [log, error] = [console.log, console.error];
      console.log = (...a: unknown[]) => {
        out.push(a.join(' '));
      };
      console.error = (...a: unknown[]) => {
        err.push(a.join(' '));
      };
      try {
        return { status: await runCli(args), stdout: out.join('\n'), stderr: err.join('\n') };
      } finally {
        [console.log, console.error] = [log, error];
      }
    };
    const r = await cli('evaluate', bad);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^immunize evaluate: .*bad\.json: items\[1\]: missing key 'prompt' \[E_DATASET\]$/);
    const u = await cli('evaluate', bad, '--methods', 'encoder,magic');
    assert.equal(u.status, 2);
    assert.match(
      u.stderr,
      /--methods: expected a comma list of encoder, robust, diffusion, noise but received 'magic'/,
    );
    const p = await cli('evaluate', bad, '--purify', 'jpeg:900');
    assert.match(p.stderr, /--purify: invalid purification 'jpeg:900'/);
    const o = await cli('evaluate', bad, '--no-such-option');
    assert.equal(o.status, 2);
    const h = await cli('evaluate', '--help');
    assert.equal(h.status, 0);
    assert.match(h.stdout, /Usage: immunize evaluate DATASET\.json/);
    assert.match((await cli('--help')).stdout, /evaluate\s+run the paper's evaluation protocol/);
  },
);

test(
  'evaluate: the built-in robust method (EOT over differentiable JPEG) runs and differs from the plain encoder attack',
  { skip },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'immunize-evaluate-robust-'));
    const dataset = join(dir, 'robust.json');
    writeFileSync(
      dataset,
      JSON.stringify({
        size: 64,
        models: { img2img: img2imgRepo, inpaint: inpaintRepo },
        edit: { steps: 2 },
        immunize: { methods: ['encoder', 'robust'], steps: 3 },
        items: [{ image: photos[0], prompt: 'a cat in the snow', seed: 1 }],
      }),
    );
    const r = immunize('evaluate', dataset, '--json');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /robust encoder attack/);
    const summary = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { results: string };
    const results = JSON.parse(readFileSync(summary.results, 'utf8')) as EvaluationResults;
    assert.deepEqual(results.methods, ['clean', 'encoder', 'robust']);
    const { encoder, robust } = results.items[0]!.inputs;
    assert.ok(robust !== undefined && encoder !== undefined);
    assert.equal(robust.origin, 'computed');
    assert.ok(robust.linf255 > 0 && robust.linf255 <= 16 + 0.5, `L∞ ${robust.linf255}/255`);
    assert.notEqual(robust.sha256, encoder.sha256, 'optimising through JPEG changes the perturbation');
    // No sweep given: the default one, a JPEG re-save and IMPRESS against the attacked VAE.
    const item = results.items[0]!;
    for (const m of ['clean', 'encoder', 'robust'])
      for (const p of ['jpeg:75', 'impress:20']) assert.ok(item.variants[`${m}@${p}`] !== undefined, `${m}@${p}`);
    assert.notEqual(item.variants['encoder@impress:20']!.input.sha256, encoder.sha256, 'IMPRESS changed the photo');
  },
);
