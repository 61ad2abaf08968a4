// Measures the learned immunizer (issue 16) against the PGD presets on the photos of
// ../shared/images (never trained on), TAEF2 with its real weights, L∞ 16/255 everywhere:
// reconstruction PSNR through TAEF2 (fp32; lower = protected) of the clean photo, the noise
// baseline, `learned`, `learned` + 10 and + 20 PGD steps (protect's `--start learned`: the strong
// preset's optimiser at 4× its step, started from the learned δ), the default preset (200 steps, bf16 where the CPU has it) and the paper
// preset (200 sign steps, fp32), at 256², before and after JPEG-75 (libjpeg-turbo via sharp);
// then wall times at 256², ~1 MP and ~12 MP (upscaled trevor_5.jpg). PGD at 1 MP/12 MP is timed
// over a few steps and extrapolated to 200 (labelled so). Results are merged into --out (JSON),
// so the phases can run apart: `--phase baselines` (needs no G), `--phase learned`, `--phase times`.
// Usage: node scripts/measure-learned.mjs [--phase all|baselines|learned|times] [--methods a,b] [--weights DIR]
//          [--out FILE] [--threads 2] [--photos a.png,b.jpg]
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { encoderAttack } from '../dist/src/attacks/encoder.js';
import { learnedImmunize } from '../dist/src/attacks/learned.js';
import { randomNoise } from '../dist/src/attacks/noise.js';
import { PRESETS } from '../dist/src/attacks/presets.js';
import { readImage } from '../dist/src/io/images.js';
import { psnr } from '../dist/src/metrics/psnr.js';
import { DEFAULT_IMMUNIZER } from '../dist/src/models/defaults.js';
import { reconstructForMeasure } from '../dist/src/models/image-autoencoder.js';
import { loadImmunizer } from '../dist/src/models/immunizer.js';
import { loadAutoencoderFromPath } from '../dist/src/models/load.js';
import { pgdOptionsOf, resolveProtectParameters } from '../dist/src/protect/index.js';
import { jpeg } from '../dist/src/purify/codecs.js';
import { autoPrecision, noGrad, scope, setNumThreads } from '../dist/src/torch/index.js';

const { values: a } = parseArgs({
  options: {
    phase: { type: 'string', default: 'all' },
    weights: { type: 'string', default: DEFAULT_IMMUNIZER },
    out: { type: 'string', default: 'learned-measurements.json' },
    threads: { type: 'string', default: '2' },
    photos: { type: 'string' },
    'time-steps': { type: 'string', default: '3' },
    methods: { type: 'string' },
    merge: { type: 'string' },
  },
});
setNumThreads(Number(a.threads));
const shared = resolve(process.env.IMMUNIZE_SHARED ?? join(import.meta.dirname, '..', '..', 'shared'));
const model = loadAutoencoderFromPath(join(shared, 'models', 'taef2-hf'));
const EPS = 16 / 255;
const reduced = autoPrecision('cpu').precision; // bf16 on a CPU with native bf16, as `auto` runs
const photos =
  a.photos?.split(',') ??
  readdirSync(join(shared, 'images'))
    .filter((f) => /\.(png|jpe?g)$/i.test(f) && !f.includes('mask'))
    .sort();
const results = existsSync(a.out) ? JSON.parse(readFileSync(a.out, 'utf8')) : { psnr: {}, jpeg75: {}, times: {} };
const save = () => writeFileSync(a.out, JSON.stringify(results, null, 1));
const load = () =>
  `load average ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}`;

const recPsnr = (adv, x) => noGrad(() => scope(() => psnr(reconstructForMeasure(model, adv), x)));
async function record(photo, method, adv, x, seconds) {
  const j = await jpeg(adv, { quality: 75 });
  (results.psnr[photo] ??= {})[method] = recPsnr(adv, x);
  (results.jpeg75[photo] ??= {})[method] = recPsnr(j, x);
  j.dispose();
  ((results.times['256'] ??= {})[method] ??= []).push(seconds);
  console.log(
    `${photo} ${method}: ${results.psnr[photo][method].toFixed(2)} dB (JPEG-75 ${results.jpeg75[photo][method].toFixed(2)} dB), ${seconds.toFixed(2)} s; ${load()}`,
  );
  save();
}
function timed(fn) {
  const t0 = performance.now();
  const out = fn();
  return [out, (performance.now() - t0) / 1000];
}
const pgd = (x, preset, steps, precision, startNoise) =>
  encoderAttack(model, x, {
    ...PRESETS[preset].options,
    steps,
    seed: 0,
    precision,
    ...(startNoise ? { startNoise, randomStart: false } : {}),
  }).adv;

if (a.phase === 'table') {
  printTable();
  process.exit(0);
}
const net = a.phase === 'baselines' ? null : loadImmunizer(a.weights);
const learnedDelta = (x) => {
  const adv = learnedImmunize(net, x, { eps: EPS, precision: reduced });
  const d = noGrad(() => adv.sub(x));
  adv.dispose();
  return d;
};

const baselines = [
  ['clean', (x) => x.clone()],
  ['noise', (x) => randomNoise(x, { eps: EPS, seed: 0 })],
  ['default', (x) => pgd(x, 'default', PRESETS.default.options.steps, reduced)],
  ['paper', (x) => pgd(x, 'paper', PRESETS.paper.options.steps, 'fp32')],
];
const learnedMethods = [
  ['learned', (x) => learnedImmunize(net, x, { eps: EPS, precision: reduced })],
  ...[10, 20].map((k) => [
    `learned+${k}`,
    (x) => {
      const d = learnedDelta(x);
      try {
        // The library's refinement (protect's start learned): k steps at LEARNED_REFINE's step.
        const o = pgdOptionsOf(resolveProtectParameters({ preset: 'strong', start: 'learned', steps: k }));
        return encoderAttack(model, x, { ...o, precision: reduced, startNoise: d, randomStart: false }).adv;
      } finally {
        d.dispose();
      }
    },
  ]),
];
const only = a.methods?.split(',');
const wanted = [
  ...(a.phase === 'all' || a.phase === 'baselines' ? baselines : []),
  ...(a.phase === 'all' || a.phase === 'learned' ? learnedMethods : []),
].filter(([name]) => only === undefined || only.includes(name));
for (const photo of wanted.length === 0 ? [] : photos) {
  const { tensor: x } = await readImage(join(shared, 'images', photo), { width: 256, height: 256, kernel: 'lanczos3' });
  for (const [method, run] of wanted) {
    const [adv, seconds] = timed(() => run(x));
    await record(photo, method, adv, x, seconds);
    adv.dispose();
  }
  x.dispose();
}

if (a.phase === 'all' || a.phase === 'times') {
  // ~1 MP and ~12 MP: trevor_5.jpg upscaled (4:3), the sizes a phone photo has.
  const steps = Number(a['time-steps']);
  for (const [label, w, h] of [
    ['1MP', 1152, 864],
    ['12MP', 4000, 3000],
  ]) {
    const { tensor: x } = await readImage(join(shared, 'images', 'trevor_5.jpg'), {
      width: w,
      height: h,
      kernel: 'lanczos3',
    });
    const t = (results.times[label] = { pixels: w * h, note: load() });
    const time = (name, fn) => {
      try {
        const [adv, s] = timed(fn);
        adv.dispose();
        t[name] = s;
        console.log(`${label} ${name}: ${s.toFixed(2)} s; ${load()}`);
      } catch (e) {
        t[name] = `failed: ${e.message.split('\n')[0]}`;
        console.log(`${label} ${name}: ${t[name]}`);
      }
      save();
    };
    if (net !== null) time('learned', () => learnedImmunize(net, x, { eps: EPS, precision: reduced }));
    time('noise', () => randomNoise(x, { eps: EPS, seed: 0 }));
    if (label === '1MP') {
      // PGD: a few steps, extrapolated to the preset's 200 (the first includes the gray target's encode).
      for (const [name, preset, precision] of [
        ['default', 'default', reduced],
        ['paper', 'paper', 'fp32'],
      ]) {
        time(`${name} (${steps} steps)`, () => pgd(x, preset, steps, precision));
        const per = t[`${name} (${steps} steps)`] / steps;
        if (typeof per === 'number' && Number.isFinite(per)) t[`${name} (200 steps, extrapolated)`] = per * 200;
      }
    }
    x.dispose();
  }
}
save();
console.log(`written ${a.out}`);

/** Markdown tables of --out (and --merge files, earlier ones first): PSNR, JPEG-75, gap closed. */
function printTable() {
  const all = { psnr: {}, jpeg75: {} };
  for (const f of [...(a.merge?.split(',') ?? []), a.out]) {
    const r = JSON.parse(readFileSync(f, 'utf8'));
    for (const k of ['psnr', 'jpeg75'])
      for (const [photo, m] of Object.entries(r[k] ?? {})) Object.assign((all[k][photo] ??= {}), m);
  }
  const methods = ['clean', 'noise', 'learned', 'learned+10', 'learned+20', 'default', 'paper'];
  for (const k of ['psnr', 'jpeg75']) {
    console.log(`\n${k === 'psnr' ? 'Reconstruction PSNR (dB)' : 'After JPEG-75 (dB)'}\n`);
    console.log(`| photo | ${methods.join(' | ')} | learned: gap closed |`);
    console.log(`|---|${methods.map(() => '---|').join('')}---|`);
    const photos = Object.keys(all[k]).sort();
    const gaps = [];
    for (const p of photos) {
      const m = all[k][p];
      const gap = m.learned !== undefined && m.paper !== undefined ? (m.clean - m.learned) / (m.clean - m.paper) : null;
      if (gap !== null) gaps.push(gap);
      const cells = methods.map((x) => (m[x] === undefined ? '—' : m[x].toFixed(2)));
      console.log(`| ${p} | ${cells.join(' | ')} | ${gap === null ? '—' : `${(100 * gap).toFixed(0)} %`} |`);
    }
    const mean = (x) => {
      const v = photos.map((p) => all[k][p][x]).filter((y) => y !== undefined);
      return v.length === photos.length ? v.reduce((s, y) => s + y, 0) / v.length : undefined;
    };
    const cells = methods.map((x) => (mean(x) === undefined ? '—' : mean(x).toFixed(2)));
    const g =
      gaps.length > 0
        ? `${(100 * (gaps.reduce((s, y) => s + y, 0) / gaps.length)).toFixed(0)} % (mean of ${gaps.length})`
        : '—';
    console.log(`| **mean** | ${cells.join(' | ')} | ${g} |`);
  }
}
