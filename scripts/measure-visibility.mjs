// Protection per unit of visibility (issue 15): for each shared photo at 256² (Lanczos), the
// encoder attack towards E(gray) on TAEF2 (the `default` preset's momentum and decaying step,
// step = largest bound / 8 as the paper's 2/255 for 16/255, no random start) under a uniform L∞
// budget and under the texture budget (src/attacks/budget.ts). For each run: SSIM of the result
// to the original and the protection gap, reconstruction PSNR of the clean photo minus that of
// the result (dB, fp32; higher = more protected).
//
// Equal visibility: each budget's level is calibrated per photo so that a change of ± its bound
// at every pixel (random signs) has SSIM 0.925, then 0.85 — the attack does not take every pixel
// to its bound, so its results land near SSIM 0.95 and 0.90 at 30 steps (0.935 and 0.87 at 80).
// The gap at exactly 0.95 and 0.90 is read off the line through the two runs (SSIM → gap), the
// same way for both budgets.
// Usage: node scripts/measure-visibility.mjs [steps=60] [photos=all] [threads=1]
//   TEXTURE_OPTIONS='{"cap":8}' sets the map's options; KINDS=uniform (or texture) runs one budget
//   only (the runs are deterministic: reports of photo subsets and of each budget can be merged).
import { join, resolve } from 'node:path';
import { readdirSync } from 'node:fs';
import { loadavg } from 'node:os';
import { encoderAttack } from '../dist/src/attacks/encoder.js';
import { textureBudget } from '../dist/src/attacks/budget.js';
import { readImage } from '../dist/src/io/images.js';
import { psnr } from '../dist/src/metrics/psnr.js';
import { ssim } from '../dist/src/metrics/ssim.js';
import { loadAutoencoderFromPath } from '../dist/src/models/load.js';
import { Generator, noGrad, ones, rand, scope, setNumThreads } from '../dist/src/torch/index.js';

const steps = Number(process.argv[2] ?? 60);
const shared = resolve(process.env.IMMUNIZE_SHARED ?? join(import.meta.dirname, '..', '..', 'shared'));
const photos =
  process.argv[3] && process.argv[3] !== 'all'
    ? process.argv[3].split(',')
    : readdirSync(join(shared, 'images')).filter((n) => /\.(png|jpg)$/.test(n) && !n.includes('mask'));
setNumThreads(Number(process.argv[4] ?? 1));
const model = loadAutoencoderFromPath(join(shared, 'models', 'taef2-hf'));
const textureOptions = JSON.parse(process.env.TEXTURE_OPTIONS ?? '{}');
const kinds = (process.env.KINDS ?? 'uniform,texture').split(',');
/** SSIM of the saturated random-sign change that sets each run's level, and the SSIMs compared. */
const CALIBRATION = [0.925, 0.85];
const TARGETS = [0.95, 0.9];

/** The budget's shape: a map of mean 1 (uniform: ones), scaled by the level. */
const unitMap = (kind, x) =>
  kind === 'uniform'
    ? noGrad(() => ones([1, 1, ...x.shape.slice(2)]))
    : textureBudget(x, { ...textureOptions, eps: 1 }).map;

/** SSIM to x of x ± level × unit at every pixel (fixed random signs), clamped to [0, 1]. */
function saturatedSsim(x, unit, level) {
  return noGrad(() =>
    scope(() => {
      const signs = rand(x.shape, { generator: new Generator({ seed: 1 }) })
        .gt(0.5)
        .to('float32')
        .mul(2)
        .sub(1);
      return ssim(x.add(signs.mul(unit).mul(level)).clamp(0, 1), x);
    }),
  );
}

/** The level whose saturated change has SSIM `s` (bisection; SSIM falls as the level grows). */
function calibrate(x, unit, s) {
  let [lo, hi] = [0, 64 / 255];
  for (let i = 0; i < 20; i++) {
    const mid = (lo + hi) / 2;
    if (saturatedSsim(x, unit, mid) > s) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

/** The gap at SSIM `s` on the line through the two runs. */
function gapAt([a, b], s) {
  return a.gap + ((s - a.ssim) / (b.ssim - a.ssim)) * (b.gap - a.gap);
}

const report = { steps, model: 'taef2-hf', size: 256, textureOptions, loadavgStart: loadavg(), photos: {} };
for (const name of photos) {
  const { tensor: x } = await readImage(join(shared, 'images', name), { width: 256, height: 256, kernel: 'lanczos3' });
  const rec = (img) => noGrad(() => scope(() => psnr(model.decode(model.encode(img)), x)));
  const clean = rec(x);
  const runs = {};
  const atSsim = {};
  for (const kind of kinds) {
    const unit = unitMap(kind, x);
    runs[kind] = [];
    for (const s of CALIBRATION) {
      const level = calibrate(x, unit, s);
      const map = noGrad(() => unit.mul(level).clamp(0, 1));
      const eps = noGrad(() => map.max().item());
      const r = encoderAttack(model, x, {
        eps,
        ...(kind === 'texture' ? { epsMap: map } : {}),
        stepSize: eps / 8,
        steps,
        optimizer: 'momentum',
        schedule: 'linear-decay',
        target: 'gray',
        seed: 0,
      });
      const run = {
        level255: level * 255,
        max255: eps * 255,
        ssim: noGrad(() => scope(() => ssim(r.adv, x))),
        psnrChange: noGrad(() => scope(() => psnr(r.adv, x))),
        gap: clean - rec(r.adv),
      };
      runs[kind].push(run);
      console.error(
        `${name} ${kind} ${run.level255.toFixed(2)}/255 (max ${run.max255.toFixed(1)}): SSIM ${run.ssim.toFixed(3)}, PSNR ${run.psnrChange.toFixed(2)} dB, gap ${run.gap.toFixed(2)} dB`,
      );
      r.adv.dispose();
      map.dispose();
    }
    unit.dispose();
    for (const s of TARGETS) (atSsim[s] ??= {})[kind] = gapAt(runs[kind], s);
  }
  for (const s of TARGETS) {
    const { uniform: u, texture: t } = atSsim[s];
    atSsim[s].ratio = u !== undefined && t !== undefined && u > 0 ? t / u : null;
  }
  report.photos[name] = { cleanReconstruction: clean, runs, atSsim };
  x.dispose();
}
for (const s of TARGETS) {
  const all = Object.values(report.photos).map((p) => p.atSsim[s]);
  const mean = (k) => all.reduce((a, v) => a + v[k], 0) / all.length;
  const summary = { photos: all.length };
  for (const k of kinds) summary[k] = mean(k);
  if (kinds.includes('uniform') && kinds.includes('texture')) {
    summary.ratioOfMeans = summary.texture / summary.uniform;
    summary.meanOfRatios = mean('ratio');
  }
  report[`meanAtSsim${s}`] = summary;
}
report.loadavgEnd = loadavg();
console.log(JSON.stringify(report, null, 1));
