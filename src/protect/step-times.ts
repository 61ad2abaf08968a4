/**
 * A time estimate before a job starts, from the step time measured on this machine: after each
 * encoder attack the door records its milliseconds per megapixel-step for the model, device,
 * precision, thread count and robust kind it ran with, in a small JSON file beside the model cache
 * (`$HF_HOME/immunize/step-times.json`; IMMUNIZE_STEP_TIMES=PATH moves it, `off` turns it off).
 * The next job with the same key is estimated as the median of the last few records × its
 * megapixels × its steps × its transforms per step. An attack's cost is proportional to its
 * pixels and steps for a given model (convolutions), which is why one number per key suffices;
 * the file is machine-specific on purpose (another machine has another speed).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';
import { hfHome } from '../io/hub.js';
import { getNumThreads } from '../torch/index.js';
import { precisionOf, type ProtectRequest } from './parameters.js';

/** What an attack's speed depends on besides the photo's size and the steps. */
export interface StepTimeKey {
  model: string;
  device: string;
  precision: string;
  threads: number;
  robust: string;
}

/** The work of one attack: its pixels, steps, and transformed copies per step (EOT samples; 1 without). */
export interface AttackWork {
  width: number;
  height: number;
  steps: number;
  draws: number;
}

interface StepTimeFile {
  version: 1;
  /** key → the last measurements, oldest first, in ms per megapixel-step. */
  entries: Record<string, number[]>;
}

/** Measurements kept per key: enough for a median that ignores one slow (busy machine) job. */
export const KEPT = 5;

export function stepTimesPath(env: NodeJS.ProcessEnv = process.env): string | null {
  const explicit = env['IMMUNIZE_STEP_TIMES'];
  if (explicit === 'off') return null;
  return explicit || join(hfHome(env), 'immunize', 'step-times.json');
}

export function stepTimeKey(k: StepTimeKey): string {
  return `${k.model} | ${k.device} | ${k.precision} | ${k.threads} threads | robust ${k.robust}`;
}

/** Megapixel-steps of an attack (× the transformed copies each step computes). */
export function megapixelSteps(w: AttackWork): number {
  return ((w.width * w.height) / 1e6) * w.steps * Math.max(1, w.draws);
}

/** The record (an empty one when the file is missing or unreadable: an estimate is never worth failing a job). */
export function readStepTimes(path: string | null): StepTimeFile {
  const empty: StepTimeFile = { version: 1, entries: {} };
  if (path === null) return empty;
  try {
    const f = JSON.parse(readFileSync(path, 'utf8')) as StepTimeFile;
    if (f?.version !== 1 || typeof f.entries !== 'object' || f.entries === null) return empty;
    return f;
  } catch {
    return empty;
  }
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** The estimated attack time in ms and the measurements it rests on, or null when none match the key. */
export function estimateAttack(
  record: StepTimeFile,
  key: StepTimeKey,
  work: AttackWork,
): { ms: number; basedOn: number } | null {
  const xs = (record.entries[stepTimeKey(key)] ?? []).filter((x) => Number.isFinite(x) && x > 0);
  if (xs.length === 0) return null;
  return { ms: Math.round(median(xs) * megapixelSteps(work)), basedOn: xs.length };
}

/**
 * Adds a finished attack's step time (its `attackMs` over the work it did: the steps it took) to
 * the record at `path` and returns the record written. Attacks of no work are not recorded.
 */
export function recordStepTime(path: string, key: StepTimeKey, work: AttackWork, attackMs: number): StepTimeFile {
  const record = readStepTimes(path);
  const mps = megapixelSteps(work);
  if (!(mps > 0 && Number.isFinite(attackMs) && attackMs > 0)) return record;
  const k = stepTimeKey(key);
  const kept = [...(record.entries[k] ?? []), attackMs / mps].slice(-KEPT);
  const next: StepTimeFile = { version: 1, entries: { ...record.entries, [k]: kept } };
  writeFileAtomic(path, JSON.stringify(next, null, 2) + '\n');
  return next;
}

/** A duration as a person reads it: "40 s", "3 min", "1 h 5 min". */
export function roughDuration(ms: number): string {
  const s = Math.max(1, Math.round(ms / 1000));
  if (s < 90) return `${s} s`;
  const min = Math.round(s / 60);
  return min < 60 ? `${min} min` : `${Math.floor(min / 60)} h ${min % 60} min`;
}

/**
 * A job's estimate and its recorder, for a door: `estimate` before the attack (null: nothing
 * measured yet for this key, or the noise baseline, which takes no steps), `record` after it
 * with the steps it took. Recording never fails the job: an unwritable cache is reported, not thrown.
 */
export function jobStepTimes(
  r: ProtectRequest,
  size: { width: number; height: number },
  path: string | null = stepTimesPath(),
): {
  key: StepTimeKey;
  estimate: { ms: number; basedOn: number } | null;
  record: (attackMs: number, stepsTaken: number) => string | null;
} {
  const key: StepTimeKey = {
    model: r.model ?? 'none',
    device: r.device,
    precision: precisionOf(r).used,
    threads: getNumThreads(),
    robust: r.robust,
  };
  const draws = r.method === 'diffusion' ? r.gradReps : r.robust === 'none' ? 1 : r.robustSamples;
  const work = (steps: number): AttackWork => ({ width: size.width, height: size.height, steps, draws });
  const estimate = r.method === 'noise' ? null : estimateAttack(readStepTimes(path), key, work(r.steps));
  return {
    key,
    estimate,
    record: (attackMs, stepsTaken) => {
      if (path === null || r.method === 'noise') return null;
      try {
        recordStepTime(path, key, work(stepsTaken), attackMs);
        return null;
      } catch (e) {
        return `could not record the step time in ${path}: ${(e as Error).message}`;
      }
    },
  };
}

/** The estimate in words, for a progress line. */
export function estimateText(
  estimate: { ms: number; basedOn: number } | null,
  r: Pick<ProtectRequest, 'steps' | 'stop'>,
): string {
  if (estimate === null) return 'no time estimate yet (the first job with these settings on this machine measures it)';
  const cap =
    r.stop === 'converged' ? `at most ${r.steps} steps (it stops at a plateau, usually sooner)` : `${r.steps} steps`;
  return `estimate: about ${roughDuration(estimate.ms)} for ${cap}, from ${estimate.basedOn} job${estimate.basedOn === 1 ? '' : 's'} measured on this machine`;
}
