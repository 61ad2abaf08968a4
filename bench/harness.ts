/**
 * Shared plumbing for bench/*.bench.ts. A bench file calls `runBench(cases)`; scripts/bench.mjs
 * then drives it:
 *   node --expose-gc dist/bench/x.bench.js --list        one JSON line {"cases": [names]}
 *   node --expose-gc dist/bench/x.bench.js --case NAME   runs one case, prints its JSON line
 *   node --expose-gc dist/bench/x.bench.js               runs every case in this process
 * Each case's line carries the common fields (name, device, threads, libtorch, peakRssMB) and
 * its own timing fields. IMMUNIZE_BENCH_QUICK=1 asks for fewer iterations.
 */
import { existsSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { getNumThreads, peakRssMB, torchInfo } from '../src/torch/index.js';
import { repoRoot } from '../src/torch/root.js';

export const quick = process.env['IMMUNIZE_BENCH_QUICK'] === '1';

/**
 * Timed steps for a step case: $IMMUNIZE_BENCH_STEPS when set (scripts/bench.mjs uses it to split
 * the conv-net case into alternating rounds), else `full`, or `quickN` under --quick.
 */
export function stepCount(full: number, quickN: number): number {
  const env = Number(process.env['IMMUNIZE_BENCH_STEPS']);
  return Number.isSafeInteger(env) && env > 0 ? env : quick ? quickN : full;
}

export interface BenchCase {
  name: string;
  /** Returns the case-specific fields, or `{ skipped: reason }`. */
  run: () => Record<string, unknown> | Promise<Record<string, unknown>>;
}

/** Repository root (works from bench/ sources and their compiled copies in dist/bench/). */
export { repoRoot };

/** $IMMUNIZE_SHARED, else ../shared next to the repository. */
export function sharedDir(): string {
  const env = process.env['IMMUNIZE_SHARED'];
  return env ? resolve(env) : resolve(repoRoot, '..', 'shared');
}

/** The path inside the shared folder, or a skip reason when it is absent. */
export function sharedFile(...parts: string[]): { path: string } | { skipped: string } {
  const p = join(sharedDir(), ...parts);
  return existsSync(p) ? { path: p } : { skipped: `shared data not found: ${p} (set IMMUNIZE_SHARED)` };
}

export function gc(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

/** Quantile of sorted values, linear interpolation (numpy's default). */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

const round = (v: number, digits = 4): number => Number(v.toPrecision(digits));

/** median / p10 / p90 / min / max of samples, keyed with `unit` (msPerStep, p10_msPerStep, …). */
export function summarize(
  samples: readonly number[],
  unit: string,
  { keepSamples = false } = {},
): Record<string, unknown> {
  const s = [...samples].sort((a, b) => a - b);
  return {
    ...(keepSamples ? { [`samples_${unit}`]: samples.map((v) => round(v)) } : {}),
    n: s.length,
    [unit]: round(quantile(s, 0.5)),
    [`p10_${unit}`]: round(quantile(s, 0.1)),
    [`p90_${unit}`]: round(quantile(s, 0.9)),
    [`min_${unit}`]: round(s[0]!),
    [`max_${unit}`]: round(s[s.length - 1]!),
  };
}

/** Times `step` `n` times after `warmup` untimed runs; milliseconds per run. */
export function timeSteps(step: () => void, n: number, warmup: number): number[] {
  for (let i = 0; i < warmup; i++) step();
  gc();
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    step();
    out.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return out;
}

/**
 * Per-call cost of a tiny operation: `batches` timed batches of `perBatch` calls each (after
 * `warmup` untimed calls); returns µs per call, one sample per batch.
 */
export function timeCalls(call: () => void, batches: number, perBatch: number, warmup: number): number[] {
  for (let i = 0; i < warmup; i++) call();
  gc();
  const out: number[] = [];
  for (let b = 0; b < batches; b++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < perBatch; i++) call();
    out.push(Number(process.hrtime.bigint() - t0) / 1e3 / perBatch);
  }
  return out;
}

function common(name: string): Record<string, unknown> {
  // loadavg1: the 1-minute load average when the case started (the machine is shared).
  return {
    name,
    device: 'cpu',
    threads: getNumThreads(),
    libtorch: torchInfo().torchVersion,
    node: process.version,
    loadavg1: round(loadavg()[0]!, 3),
  };
}

async function runOne(c: BenchCase): Promise<void> {
  const t0 = Date.now();
  const fields = await c.run();
  const line =
    'skipped' in fields
      ? { ...common(c.name), ...fields }
      : { ...common(c.name), quick, ...fields, peakRssMB: peakRssMB(), wallS: round((Date.now() - t0) / 1000, 3) };
  process.stdout.write(JSON.stringify(line) + '\n');
}

/** Entry point of a bench file (see the header comment for the protocol). */
export async function runBench(cases: readonly BenchCase[]): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv[0] === '--list') {
    process.stdout.write(JSON.stringify({ cases: cases.map((c) => c.name) }) + '\n');
    return;
  }
  if (argv[0] === '--case') {
    const c = cases.find((k) => k.name === argv[1]);
    if (c === undefined) throw new Error(`no bench case '${argv[1]}' (have: ${cases.map((k) => k.name).join(', ')})`);
    await runOne(c);
    return;
  }
  for (const c of cases) await runOne(c);
}
