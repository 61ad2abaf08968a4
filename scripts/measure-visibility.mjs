// Protection per unit of visibility (issue 15): for each shared photo at 256² (Lanczos), the
// encoder attack towards E(gray) on TAEF2 (the `default` preset's momentum and decaying step,
// step = largest bound / 8 as the paper's 2/255 for 16/255, no random start) under a uniform L∞ budget and under the texture-adaptive budget
// (src/attacks/budget.ts) at several levels. For each run: SSIM of the result to the original and
// the protection gap, reconstruction PSNR of the clean photo minus that of the result (dB, fp32;
// higher = more protected). Then the gap of each budget kind at SSIM 0.95 and 0.90, interpolated
// linearly in SSIM between the levels that bracket it, and the ratio texture / uniform.
// Usage: node scripts/measure-visibility.mjs [steps=60] [photos=all] [threads=1]
import { join, resolve } from 'node:path';
import { readdirSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { encoderAttack } from '../dist/src/attacks/encoder.js';
import { textureBudget } from '../dist/src/attacks/budget.js';
import { readImage } from '../dist/src/io/images.js';
import { psnr } from '../dist/src/metrics/psnr.js';
import { ssim } from '../dist/src/metrics/ssim.js';
import { loadAutoencoderFromPath } from '../dist/src/models/load.js';
import { noGrad, scope, setNumThreads } from '../dist/src/torch/index.js';

const steps = Number(process.argv[2] ?? 60);
const shared = resolve(process.env.IMMUNIZE_SHARED ?? join(import.meta.dirname, '..', '..', 'shared'));
const photos =
  process.argv[3] && process.argv[3] !== 'all'
    ? process.argv[3].split(',')
    : readdirSync(join(shared, 'images')).filter((n) => /\.(png|jpg)$/.test(n) && !n.includes('mask'));
setNumThreads(Number(process.argv[4] ?? 1));
const model = loadAutoencoderFromPath(join(shared, 'models', 'taef2-hf'));
const UNIFORM = [2, 4, 8, 12].map((v) => v / 255);
const TEXTURE = [1.5, 3, 6, 9].map((v) => v / 255); // the map's level where contrast is average
// The map's options (budget.ts), e.g. TEXTURE_OPTIONS='{"channels":"rgb","sigma0":0.02}'.
const textureOptions = JSON.parse(process.env.TEXTURE_OPTIONS ?? '{}');
// UNIFORM_FROM=report.json reuses the uniform runs of an earlier report (same steps) instead of repeating them.
const earlier = process.env.UNIFORM_FROM ? JSON.parse(readFileSync(process.env.UNIFORM_FROM, 'utf8')) : null;
const kinds = earlier ? ['texture'] : ['uniform', 'texture'];
const TARGETS = [0.95, 0.9];

/** The gap at SSIM `s`, linear between the two runs that bracket it (null outside the range). */
function gapAt(runs, s) {
  const sorted = [...runs].sort((a, b) => b.ssim - a.ssim);
  for (let i = 0; i + 1 < sorted.length; i++) {
    const [a, b] = [sorted[i], sorted[i + 1]];
    if (a.ssim >= s && s >= b.ssim) return a.gap + ((a.ssim - s) / (a.ssim - b.ssim || 1)) * (b.gap - a.gap);
  }
  return null;
}

const report = { steps, model: 'taef2-hf', size: 256, textureOptions, loadavgStart: loadavg(), photos: {} };
for (const name of photos) {
  const { tensor: x } = await readImage(join(shared, 'images', name), { width: 256, height: 256, kernel: 'lanczos3' });
  const rec = (img) => noGrad(() => scope(() => psnr(model.decode(model.encode(img)), x)));
  const clean = rec(x);
  const runs = { uniform: earlier?.photos[name]?.runs.uniform ?? [], texture: [] };
  for (const kind of kinds) {
    for (const level of kind === 'uniform' ? UNIFORM : TEXTURE) {
      const budget = kind === 'texture' ? textureBudget(x, { ...textureOptions, eps: level }) : null;
      const eps = budget?.maxEps ?? level;
      const r = encoderAttack(model, x, {
        eps,
        ...(budget ? { epsMap: budget.map } : {}),
        stepSize: eps / 8,
        steps,
        optimizer: 'momentum',
        schedule: 'linear-decay',
        target: 'gray',
        seed: 0,
      });
      const run = {
        level255: level * 255,
        ssim: noGrad(() => scope(() => ssim(r.adv, x))),
        psnrChange: noGrad(() => scope(() => psnr(r.adv, x))),
        gap: clean - rec(r.adv),
      };
      runs[kind].push(run);
      console.error(
        `${name} ${kind} ${run.level255.toFixed(1)}/255: SSIM ${run.ssim.toFixed(3)}, PSNR ${run.psnrChange.toFixed(2)} dB, gap ${run.gap.toFixed(2)} dB`,
      );
      r.adv.dispose();
      budget?.map.dispose();
    }
  }
  const atSsim = {};
  for (const s of TARGETS) {
    const u = gapAt(runs.uniform, s);
    const t = gapAt(runs.texture, s);
    atSsim[s] = { uniform: u, texture: t, ratio: u !== null && t !== null && u > 0 ? t / u : null };
  }
  report.photos[name] = { cleanReconstruction: clean, runs, atSsim };
  x.dispose();
}
for (const s of TARGETS) {
  const ratios = Object.values(report.photos)
    .map((p) => p.atSsim[s])
    .filter((v) => v.ratio !== null);
  const mean = (k) => ratios.reduce((a, v) => a + v[k], 0) / ratios.length;
  report[`meanAtSsim${s}`] = {
    photos: ratios.length,
    uniform: mean('uniform'),
    texture: mean('texture'),
    ratioOfMeans: mean('texture') / mean('uniform'),
  };
}
report.loadavgEnd = loadavg();
console.log(JSON.stringify(report, null, 1));
