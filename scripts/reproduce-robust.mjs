// Robust immunization against JPEG, measured on real weights (the robustness issue's setting):
// TAEF2 (../shared/models/taef2-hf), trevor_5.jpg at 256² (Lanczos), gray target, the `paper`
// preset (ε 16/255, step 2/255 decaying, 200 steps, random start). For each variant prints the
// reconstruction PSNR decode(encode(·)) against the original photo, of the immunized PNG and of
// its real JPEG re-compressions (sharp, libjpeg-turbo, 4:2:0) at qualities 95, 75 and 65, plus
// the time per step. Lower is better protection.
// Usage: node scripts/reproduce-robust.mjs VARIANT...   (dist/ must be built)
//   plain                         photoguard's attack
//   eot:Q1-Q2[:samples][:ste|cubic][:noid]   EOT over differentiable JPEG, quality uniform in
//                                 [Q1, Q2], `samples` draws per step (default 1), identity
//                                 averaged in unless :noid
//   set:Q,Q,...[:noid]            every step averages the differentiable JPEG at each listed
//                                 quality (straight-through), plus the identity unless :noid —
//                                 the "crude" variant used real JPEG at 95,75,65 this way
//   robust:jpeg[:samples] | robust:all[:samples]   what `immunize protect --robust` uses
import { performance } from 'node:perf_hooks';
import { encoderAttack, tinyEncoder } from '../dist/src/attacks/encoder.js';
import { randomNoise } from '../dist/src/attacks/noise.js';
import { PRESETS } from '../dist/src/attacks/presets.js';
import { jpeg } from '../dist/src/purify/codecs.js';
import { diffJpeg } from '../dist/src/purify/diff-jpeg.js';
import { model, reconstructionPsnr, x } from './taef2-trevor.mjs';
import { noGrad, rand, scope } from '../dist/src/torch/index.js';

const steps = Number(process.env.STEPS ?? 200);
const stepScale = Number(process.env.STEP_SCALE ?? 1); // multiplies the preset's step size (experiments)
const optimizer = process.env.OPTIMIZER ?? PRESETS.paper.options.optimizer; // sign (the paper preset) unless set
const to8bit = (t) => noGrad(() => scope(() => t.mul(255).round().div(255)));
const QUALITIES = [95, 75, 65];

async function measure(adv) {
  const png = to8bit(adv);
  const row = { png: reconstructionPsnr(png) };
  for (const q of QUALITIES) {
    const j = await jpeg(png, { quality: q });
    row[`jpeg${q}`] = reconstructionPsnr(j);
    j.dispose();
  }
  png.dispose();
  return row;
}

function transformFor(spec) {
  if (spec.startsWith('set:')) {
    const [, list, noid] = spec.split(':');
    const qs = list.split(',').map(Number);
    let k = 0;
    return {
      transform: (t) => diffJpeg(t, { quality: qs[k++ % qs.length], rounding: 'ste' }),
      samples: qs.length,
      includeIdentity: noid !== 'noid',
    };
  }
  const [kind, range, samples = '1', rounding = 'ste', noid] = spec.split(':');
  if (kind === 'robust') return null;
  const [q1, q2] = range.split('-').map(Number);
  const transform = (t, g) => {
    const u = noGrad(() => rand([1], { generator: g }).item());
    const q = Math.round(q1 + u * (q2 - q1));
    return diffJpeg(t, { quality: q, rounding });
  };
  return { transform, samples: Number(samples), includeIdentity: noid !== 'noid' };
}

const out = { image: 'trevor_5.jpg @256² (lanczos3)', steps, optimizer, stepScale, clean: await measure(x) };
const noise = randomNoise(x, { eps: 16 / 255, seed: 0 });
out.noise = await measure(noise);
noise.dispose();
console.error(`clean ${JSON.stringify(out.clean)}\nnoise ${JSON.stringify(out.noise)}`);
let robustTransforms = null;
for (const spec of process.argv.slice(2)) {
  let eot;
  if (spec.startsWith('robust:')) {
    robustTransforms ??= await import('../dist/src/robustness/robust.js');
    const [, kind, samples = '1'] = spec.split(':');
    eot = robustTransforms.robustEot(kind, Number(samples));
  } else eot = spec === 'plain' ? undefined : transformFor(spec);
  const t0 = performance.now();
  const r = encoderAttack(tinyEncoder(model), x, {
    ...PRESETS.paper.options,
    stepSize: PRESETS.paper.options.stepSize * stepScale,
    optimizer,
    steps,
    seed: 0,
    eot,
  });
  const msPerStep = (performance.now() - t0) / steps;
  out[spec] = { ...(await measure(r.adv)), msPerStep: Math.round(msPerStep) };
  r.adv.dispose();
  console.error(`${spec} ${JSON.stringify(out[spec])}`);
}
console.log(JSON.stringify(out));
