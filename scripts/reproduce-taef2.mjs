// Reproduces the attacks issue's real-weights measurement: TAEF2 (../shared/models/taef2-hf),
// trevor_5.jpg resized to 256² (Lanczos), the gray target, ε 16/255, step 2/255, 200 steps with
// photoguard's random start and decaying step. Prints the reconstruction PSNR (decode(encode(x))
// vs the original) of the clean photo, the noise baseline and each optimiser's result, and the
// first step at which each optimiser's iterate reaches the paper-preset level (≤ 23.9 dB).
// Usage: node scripts/reproduce-taef2.mjs [steps=200] [optimisers=sign,momentum,adam]
// An optimiser may carry its own step size in 1/255 units: 'adam:0.5' (default: the preset's 2/255).
import { performance } from 'node:perf_hooks';
import { encoderAttack, tinyEncoder } from '../dist/src/attacks/encoder.js';
import { randomNoise } from '../dist/src/attacks/noise.js';
import { PRESETS } from '../dist/src/attacks/presets.js';
import { model, reconstructionPsnr, x } from './taef2-trevor.mjs';

const steps = Number(process.argv[2] ?? 200);
const optimisers = (process.argv[3] ?? 'sign,momentum,adam').split(',');
const out = { image: 'trevor_5.jpg @256² (cover, lanczos3)', clean: reconstructionPsnr(x) };
const noise = randomNoise(x, { eps: 16 / 255, seed: 0 });
out.noise = reconstructionPsnr(noise);
noise.dispose();
out.optimisers = {};
for (const entry of optimisers) {
  const [opt, stepArg] = entry.split(':');
  const stepSize = stepArg === undefined ? PRESETS.paper.options.stepSize : Number(stepArg) / 255;
  const enc = tinyEncoder(model);
  const trace = [];
  let step = -1; // the first call encodes the gray target
  const probing = {
    name: enc.name,
    encode01: (xa) => {
      if (step >= 0 && step % 10 === 0) trace.push([step, reconstructionPsnr(xa.detach())]);
      step++;
      return enc.encode01(xa);
    },
  };
  const t0 = performance.now();
  const r = encoderAttack(probing, x, { ...PRESETS.paper.options, steps, optimizer: opt, stepSize, seed: 0 });
  const secs = (performance.now() - t0) / 1000;
  const final = reconstructionPsnr(r.adv);
  const reach = trace.find(([, p]) => p <= 23.9)?.[0] ?? null;
  out.optimisers[entry] = {
    stepSize255: stepSize * 255,
    finalPsnr: final,
    firstStepAtOrBelow23_9dB: reach,
    seconds: Math.round(secs),
    trace,
  };
  r.adv.dispose();
  console.error(
    `${entry}: ${final.toFixed(2)} dB after ${steps} steps (${secs.toFixed(0)} s), reaches ≤23.9 dB at step ${reach}`,
  );
}
console.log(JSON.stringify(out));
