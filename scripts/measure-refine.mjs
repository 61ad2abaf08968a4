// How PGD should refine the learned immunizer's δ (issue 16; docs/learned.md#refining): on each
// photo of ../shared/images at 256² (TAEF2 real weights, L∞ 16/255), the learned δ, then K steps
// of the encoder attack from it with each optimiser setting below (and, for comparison, K steps
// from photoguard's random start). Prints the reconstruction PSNR through TAEF2 (fp32; lower =
// protected) per photo and the mean, with the load average.
// Usage: node scripts/measure-refine.mjs [--k 20] [--variants m1x,m4x,...] [--weights DIR]
//          [--precision bf16] [--threads 1] [--photos a.png,b.jpg]
import { readdirSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { encoderAttack } from '../dist/src/attacks/encoder.js';
import { learnedImmunize } from '../dist/src/attacks/learned.js';
import { PRESETS } from '../dist/src/attacks/presets.js';
import { readImage } from '../dist/src/io/images.js';
import { psnr } from '../dist/src/metrics/psnr.js';
import { DEFAULT_IMMUNIZER } from '../dist/src/models/defaults.js';
import { reconstructForMeasure } from '../dist/src/models/image-autoencoder.js';
import { loadImmunizer } from '../dist/src/models/immunizer.js';
import { loadAutoencoderFromPath } from '../dist/src/models/load.js';
import { noGrad, scope, setNumThreads } from '../dist/src/torch/index.js';

const { values: a } = parseArgs({
  options: {
    k: { type: 'string', default: '20' },
    variants: { type: 'string' },
    weights: { type: 'string', default: DEFAULT_IMMUNIZER },
    precision: { type: 'string', default: 'bf16' },
    threads: { type: 'string', default: '1' },
    photos: { type: 'string' },
  },
});
setNumThreads(Number(a.threads));
const shared = resolve(process.env.IMMUNIZE_SHARED ?? join(import.meta.dirname, '..', '..', 'shared'));
const model = loadAutoencoderFromPath(join(shared, 'models', 'taef2-hf'));
const net = loadImmunizer(a.weights);
const EPS = 16 / 255;
const K = Number(a.k);
const strong = PRESETS.strong.options; // momentum, step 2/255 decaying linearly over the K steps
// name: [optimiser settings, start]; "m4x" = momentum at 4× strong's step.
const VARIANTS = {
  m1x: [{ ...strong }, 'learned'],
  m2x: [{ ...strong, stepSize: 2 * strong.stepSize }, 'learned'],
  m3x: [{ ...strong, stepSize: 3 * strong.stepSize }, 'learned'],
  m4x: [{ ...strong, stepSize: 4 * strong.stepSize }, 'learned'],
  m6x: [{ ...strong, stepSize: 6 * strong.stepSize }, 'learned'],
  'm1x-constant': [{ ...strong, schedule: 'constant' }, 'learned'],
  sign1x: [{ ...strong, optimizer: 'sign' }, 'learned'],
  sign3x: [{ ...strong, optimizer: 'sign', stepSize: 3 * strong.stepSize }, 'learned'],
  adam1x: [{ ...strong, optimizer: 'adam' }, 'learned'],
  adam4x: [{ ...strong, optimizer: 'adam', stepSize: 4 * strong.stepSize }, 'learned'],
  'random-m2x': [{ ...strong, stepSize: 2 * strong.stepSize }, 'random'],
  'random-m4x': [{ ...strong, stepSize: 4 * strong.stepSize }, 'random'],
};
const names = a.variants?.split(',') ?? Object.keys(VARIANTS);
for (const n of names) if (!(n in VARIANTS)) throw new Error(`unknown variant ${n}; known: ${Object.keys(VARIANTS)}`);
const photos =
  a.photos?.split(',') ??
  readdirSync(join(shared, 'images'))
    .filter((f) => /\.(png|jpe?g)$/i.test(f) && !f.includes('mask'))
    .sort();

console.log(`K = ${K} steps, precision ${a.precision}, weights ${a.weights}; load average ${loadavg()[0].toFixed(2)}`);
const sums = {};
const add = (name, v) => (sums[name] ??= []).push(v);
for (const photo of photos) {
  const { tensor: x } = await readImage(join(shared, 'images', photo), { width: 256, height: 256, kernel: 'lanczos3' });
  const rec = (adv) => noGrad(() => scope(() => psnr(reconstructForMeasure(model, adv), x)));
  const learned = learnedImmunize(net, x, { eps: EPS, precision: a.precision });
  const delta = noGrad(() => learned.sub(x));
  const cells = [`learned ${rec(learned).toFixed(2)}`];
  add('learned', rec(learned));
  for (const name of names) {
    const [o, start] = VARIANTS[name];
    const from = start === 'learned' ? { startNoise: delta, randomStart: false } : { randomStart: true };
    const r = encoderAttack(model, x, { ...o, steps: K, seed: 0, precision: a.precision, ...from });
    const v = rec(r.adv);
    add(name, v);
    cells.push(`${name} ${v.toFixed(2)}`);
    r.adv.dispose();
  }
  console.log(`${photo}: ${cells.join(' | ')} (load ${loadavg()[0].toFixed(2)})`);
  for (const t of [learned, delta, x]) t.dispose();
}
const mean = (v) => v.reduce((s, y) => s + y, 0) / v.length;
console.log(
  `mean: ${Object.entries(sums)
    .map(([n, v]) => `${n} ${mean(v).toFixed(2)}`)
    .join(' | ')}`,
);
