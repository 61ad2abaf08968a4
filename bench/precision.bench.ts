/**
 * bf16 against fp32 for one encoder-attack step (x → encoder → ‖latent − E(gray)‖₂ → ∂loss/∂x),
 * the encoder run as the attack runs it (`atPrecision`: convolutions and matrix products in bf16,
 * channels-last, normalisations in fp32, the latent back in fp32). Both precisions run in the same
 * process in alternating rounds, so load from other work on the machine hits both alike; the line
 * gives each one's ms per step (wall) and CPU ms per step (user + system: on a machine shared with
 * other jobs, less noisy than wall time when threads ≤ free cores), their ratios, and how well the
 * bf16 gradient agrees with fp32's (cosine, sign agreement). `peak_*` cases run one precision alone, for its peak memory.
 */
import { loadavg } from 'node:os';
import { atPrecision, targetLatent, type ImageEncoder } from '../src/attacks/encoder.js';
import { grad, keep, manualSeed, rand, scope, type Precision, type Tensor } from '../src/torch/index.js';
import { quick, runBench, summarize, timeSteps, type BenchCase } from './harness.js';
import { sd15, taef2, type Loaded } from './models.js';

type Model = () => Loaded | { skipped: string };

/** One attack step's gradient at `precision` (its own target, as the attack at that precision has). */
function stepper(enc: ImageEncoder, x: Tensor, precision: Precision): { step: () => Tensor; dispose: () => void } {
  const e = atPrecision(enc, precision);
  const target = keep(targetLatent(e, x, 'gray'));
  return {
    step: () =>
      scope(() => {
        const xa = x.detach().requiresGrad_();
        const [g] = grad(e.encode01(xa).sub(target).norm(), [xa]);
        return g!;
      }),
    dispose: () => target.dispose(),
  };
}

/** `fn`'s result and the CPU time (user + system, ms) the process spent in it: less sensitive to load than wall time. */
function withCpuTime<T>(fn: () => T): [T, number] {
  const a = process.resourceUsage();
  const out = fn();
  const b = process.resourceUsage();
  return [out, (b.userCPUTime - a.userCPUTime + b.systemCPUTime - a.systemCPUTime) / 1000];
}

const round3 = (v: number): number => Number(v.toPrecision(3));
const median = (v: readonly number[]): number => [...v].sort((a, b) => a - b)[Math.floor((v.length - 1) / 2)]!;

/** Loads the model and a seeded photo-sized input, runs `body`, frees both (or says why the case is skipped). */
function withModel<T>(model: Model, size: number, body: (m: Loaded, x: Tensor) => T): T | { skipped: string } {
  const m = model();
  if ('skipped' in m) return m;
  manualSeed(1234);
  const x = rand([1, 3, size, size]);
  try {
    return body(m, x);
  } finally {
    x.dispose();
    m.dispose();
  }
}

function versusCase(name: string, model: Model, size: number, rounds: number, perRound: number): BenchCase {
  return {
    name,
    run: () =>
      withModel(model, size, (m, x) => {
        const fp32 = stepper(m.enc, x, 'fp32');
        const bf16 = stepper(m.enc, x, 'bf16');
        try {
          const g32 = fp32.step();
          const g16 = bf16.step(); // also the warm-up of each
          const agreement = scope(() => ({
            cosine: round3(g32.mul(g16).sum().item() / (g32.norm().item() * g16.norm().item())),
            signAgreement: round3(g32.sign().eq(g16.sign()).float().mean().item()),
          }));
          g32.dispose();
          g16.dispose();
          const s32: number[] = [];
          const s16: number[] = [];
          const roundRatios: number[] = [];
          const c32: number[] = [];
          const c16: number[] = [];
          for (let r = 0; r < rounds; r++) {
            const [a, ca] = withCpuTime(() => timeSteps(() => fp32.step().dispose(), perRound, 0));
            const [b, cb] = withCpuTime(() => timeSteps(() => bf16.step().dispose(), perRound, 0));
            s32.push(...a);
            s16.push(...b);
            c32.push(ca / perRound);
            c16.push(cb / perRound);
            roundRatios.push(round3(median(a) / median(b)));
          }
          return {
            what: `${m.enc.name}: one encoder-attack step, fp32 vs bf16 (channels-last, norms fp32), alternating rounds`,
            size,
            fp32: summarize(s32, 'msPerStep', { keepSamples: true }),
            bf16: summarize(s16, 'msPerStep', { keepSamples: true }),
            cpuMsPerStep: { fp32: round3(median(c32)), bf16: round3(median(c16)) },
            ratio: round3(median(s32) / median(s16)),
            cpuRatio: round3(median(c32) / median(c16)),
            ratioMin: round3(Math.min(...s32) / Math.min(...s16)),
            roundRatios,
            ...agreement,
            loadavg1End: round3(loadavg()[0]!),
          };
        } finally {
          fp32.dispose();
          bf16.dispose();
        }
      }),
  };
}

/** One precision alone in its process: `peakRssMB` on the line is its peak. */
function peakCase(name: string, model: Model, size: number, precision: Precision): BenchCase {
  return {
    name,
    run: () =>
      withModel(model, size, (m, x) => {
        const s = stepper(m.enc, x, precision);
        try {
          const samples = timeSteps(() => s.step().dispose(), 1, 1);
          return {
            what: `${m.enc.name}: peak memory of an encoder-attack step`,
            size,
            precision,
            ...summarize(samples, 'msPerStep'),
          };
        } finally {
          s.dispose();
        }
      }),
  };
}

// The SD1.5 VAE at 1024² needs ~10 GB in fp32 with its gradient: only when asked for.
const big = process.env['IMMUNIZE_BENCH_BIG'] === '1';
const skipped = (why: string) => () => ({ skipped: why });
const [rounds, perRound] = quick ? [1, 1] : [3, 2];

await runBench([
  versusCase('precision_taef2_256', taef2, 256, rounds, quick ? 2 : 3),
  versusCase('precision_taef2_512', taef2, 512, rounds, perRound),
  quick
    ? { name: 'precision_taef2_1024', run: skipped('--quick runs TAEF2 at 256² and 512² only') }
    : versusCase('precision_taef2_1024', taef2, 1024, rounds, 1),
  versusCase('precision_sd15_256', sd15, 256, rounds, 1),
  quick
    ? { name: 'precision_sd15_512', run: skipped('--quick runs the SD1.5 VAE at 256² only') }
    : versusCase('precision_sd15_512', sd15, 512, 2, 1),
  big
    ? versusCase('precision_sd15_1024', sd15, 1024, 1, 1)
    : { name: 'precision_sd15_1024', run: skipped('needs ~10 GB; set IMMUNIZE_BENCH_BIG=1') },
  peakCase('peak_taef2_1024_fp32', taef2, 1024, 'fp32'),
  peakCase('peak_taef2_1024_bf16', taef2, 1024, 'bf16'),
]);
