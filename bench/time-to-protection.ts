/**
 * `npm run bench:ttp`: time to protection. For each photo (../shared/images, resized to SIZE²
 * with Lanczos, as scripts/reproduce-taef2.mjs) and each preset, runs the protect job's encoder
 * attack on TAEF2 with its real weights for the full step budget (`stop: steps`, so that the
 * whole curve is seen) and records, per step, the attack's loss and its time, and every PROBE
 * steps the reconstruction PSNR of the current iterate (decode(encode(x + δ)) against the photo,
 * fp32, always through an fp32 copy of the model; lower = more protected). The probe's own time
 * is left out of the attack's time.
 *
 * Then it reports, per run: where the `converged` stopping rule (attacks/convergence.ts) stops
 * and the PSNR there against the PSNR at the cap, and the time (steps × measured ms) at which
 * the iterate first reaches the PSNR that the fp32 `paper` preset reaches at its cap on the same
 * photo (the time-to-protection table of bench/README.md).
 *
 *   node dist/bench/time-to-protection.js [--images a.png,b.jpg] [--presets paper,default,fast]
 *        [--size 256|full] [--steps 200] [--probe 5] [--precisions fp32,bf16] [--threads N]
 *
 * Each preset runs at each of `--precisions` (the protect request's `precision`: the attack's
 * arithmetic; the measurements stay fp32); the reference is the fp32 `paper` run. One JSON line per run on stdout, then one summary line
 * per photo; progress on stderr, with the load average (the machine may be shared).
 * Not a *.bench.ts file on purpose: it runs for minutes (about 2 × 200 steps per photo).
 */
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { convergedStep } from '../src/attacks/convergence.js';
import { immunize } from '../src/attacks/immunize.js';
import type { ImageEncoder } from '../src/attacks/encoder.js';
import { readImage } from '../src/io/images.js';
import { psnr } from '../src/metrics/psnr.js';
import { reconstructForMeasure } from '../src/models/image-autoencoder.js';
import { loadAutoencoder } from '../src/models/resolve.js';
import { loadProtectModels, pgdOptionsOf, precisionOf, resolveProtectParameters } from '../src/protect/index.js';
import { setNumThreads, type Tensor } from '../src/torch/index.js';
import { sharedPath } from '../test/helpers/shared.js';

const { values } = parseArgs({
  options: {
    images: { type: 'string', default: 'trevor_5.jpg,chelsea.png,astronaut.png,coffee.png,rocket.jpg' },
    presets: { type: 'string', default: 'paper,default' },
    size: { type: 'string', default: '256' },
    steps: { type: 'string', default: '200' },
    probe: { type: 'string', default: '5' },
    precisions: { type: 'string', default: 'fp32,bf16' },
    threads: { type: 'string' },
  },
});
/** 0: each photo at its own size (`--size full`). */
const size = values.size === 'full' ? 0 : Number(values.size);
const steps = Number(values.steps);
const probeEvery = Number(values.probe);
if (values.threads !== undefined) setNumThreads(Number(values.threads));
const modelDir = sharedPath('models', 'taef2-hf');
if (modelDir === null) {
  console.error('time-to-protection: needs ../shared/models/taef2-hf (set IMMUNIZE_SHARED)');
  process.exit(2);
}

/** The measuring model: always fp32, whatever precision the attack runs in. */
const measuring = await loadAutoencoder(modelDir);
const load = (): number => Math.round(loadavg()[0]! * 100) / 100;

interface Run {
  image: string;
  preset: string;
  precision: string;
  size: number;
  steps: number;
  losses: number[];
  /** Attack milliseconds at the end of each step, probes excluded. */
  msAt: number[];
  /** [step, reconstruction PSNR of the iterate after `step` updates]. */
  trace: [number, number][];
  finalPsnr: number;
  loadavg1: [number, number];
}

async function run(image: string, preset: string, precision: string): Promise<Run> {
  const path = sharedPath('images', image)!;
  const { tensor: x } = await readImage(path, size === 0 ? {} : { width: size, height: size, kernel: 'lanczos3' });
  const request = resolveProtectParameters({
    model: modelDir!,
    preset,
    steps,
    stop: 'steps',
    precision,
  });
  using models = await loadProtectModels(request);
  const recPsnr = (img: Tensor): number => {
    using rec = reconstructForMeasure(measuring, img);
    return psnr(rec, x);
  };
  const trace: [number, number][] = [];
  let probeMs = 0;
  let step = -1; // the first encode is the gray target's
  const inner = models.encoder!;
  const probing: ImageEncoder = {
    name: inner.name,
    encode01: (xa) => {
      if (step >= 0 && step % probeEvery === 0) {
        const t = performance.now();
        trace.push([step, recPsnr(xa.detach())]);
        probeMs += performance.now() - t;
      }
      step++;
      return inner.encode01(xa);
    },
  };
  const msAt: number[] = [];
  const load0 = load();
  const t0 = performance.now();
  const result = immunize(x, {
    method: 'encoder',
    precision: precisionOf(request).used,
    pgd: pgdOptionsOf(request),
    encoder: probing,
    onStep: (s) => {
      msAt.push(performance.now() - t0 - probeMs);
      if (s.step % 20 === 0)
        console.error(`${image} ${preset} ${precision}: step ${s.step}, loss ${s.loss.toFixed(3)}, load ${load()}`);
    },
  });
  using adv = result.adv;
  const finalPsnr = recPsnr(adv);
  trace.push([result.attack!.stepsTaken, finalPsnr]);
  x.dispose();
  return {
    image,
    preset,
    precision,
    size,
    steps,
    losses: result.attack!.losses,
    msAt,
    trace,
    finalPsnr,
    loadavg1: [load0, load()],
  };
}

/** The first probed step at which the iterate is at or below `db`, and the attack's time there. */
function reach(r: Run, db: number): { step: number; seconds: number } | null {
  const hit = r.trace.find(([, p]) => p <= db);
  if (hit === undefined) return null;
  return { step: hit[0], seconds: hit[0] === 0 ? 0 : r.msAt[hit[0] - 1]! / 1000 };
}

/** The PSNR probed at `step` or, between probes, at the next probe after it. */
function psnrAt(r: Run, step: number): number {
  return (r.trace.find(([s]) => s >= step) ?? r.trace.at(-1)!)[1];
}

for (const image of values.images.split(',')) {
  const runs: Run[] = [];
  for (const preset of values.presets.split(','))
    for (const precision of values.precisions.split(',')) {
      const r = await run(image, preset, precision);
      runs.push(r);
      console.log(JSON.stringify(r));
    }
  const paper = runs.find((r) => r.preset === 'paper' && r.precision === 'fp32');
  const summary = runs.map((r) => {
    const stop = convergedStep(r.losses);
    const msPerStep = r.msAt.at(-1)! / r.msAt.length;
    return {
      preset: r.preset,
      precision: r.precision,
      msPerStep: Math.round(msPerStep),
      psnrAtCap: r.finalPsnr,
      convergedStop: stop,
      psnrAtConvergedStop: stop === null ? null : psnrAt(r, stop),
      reachPaper: paper === undefined ? null : reach(r, paper.finalPsnr),
      loadavg1: r.loadavg1,
    };
  });
  console.log(JSON.stringify({ image, size, paperPsnrAtCap: paper?.finalPsnr ?? null, runs: summary }));
}
measuring.dispose();
void join;
