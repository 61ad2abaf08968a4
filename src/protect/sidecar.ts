/**
 * The sidecar: the JSON record written next to every immunized photo — every parameter that
 * decided its pixels, what the attack did, and the measurements of the file as written. A photo
 * whose sidecar holds the same parameters is already done (resumable batches).
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { AttackRecord } from '../attacks/immunize.js';
import type { ImageFormat } from '../io/images.js';
import type { ProtectionCheck } from '../robustness/check.js';
import type { Device, Precision } from '../torch/index.js';
import { sha256File } from './inputs.js';
import { precisionOf, type ProtectRequest } from './parameters.js';

/** Everything that decides the output's pixels; a sidecar with the same values means "done". */
export interface ProtectParameters {
  method: ProtectRequest['method'];
  model: string | null;
  /** The arithmetic asked for and the one used (auto decided on the machine that ran the job). */
  precision: { requested: ProtectRequest['precision']; used: Precision };
  fp16: boolean;
  diffusionSteps?: number;
  gradReps?: number;
  robust?: { kind: 'jpeg' | 'all'; samples: number };
  /** Present when PGD started from the learned immunizer's perturbation. */
  start?: 'learned';
  preset: string | null;
  /** Only for a per-pixel budget (absent: uniform, every pixel within eps). */
  budget?: 'texture';
  /** Only with a visibility target: SSIM of the result to the original at least this. */
  minSsim?: number;
  eps: number;
  norm: 'linf';
  stepSize: number | null;
  steps: number | null;
  stop: ProtectRequest['stop'] | null;
  schedule: ProtectRequest['schedule'] | null;
  optimizer: ProtectRequest['optimizer'] | null;
  randomStart: boolean | null;
  seed: number;
  target: 'gray' | 'zeros' | { path: string; sha256: string } | null;
  mask: { path: string; sha256: string; inverted: boolean } | null;
  size: number | null;
  tile: number | null;
  device: Device;
  format: ImageFormat;
  quality: number | null;
  inputSha256: string;
}

export interface ProtectSidecar {
  tool: { name: 'immunize'; version: string };
  createdAt: string;
  input: {
    path: string;
    width: number;
    height: number;
    format: string;
    orientation: number;
    resizedTo: [number, number] | null;
    alphaFlattened: boolean;
  };
  output: { path: string; sidecar: string; format: ImageFormat; width: number; height: number; xmp: true };
  parameters: ProtectParameters;
  attack: (AttackRecord & { paddedTo: [number, number] | null }) | null;
  /** Measured on the file as written (8-bit, and after JPEG/WebP compression when chosen) against the photo as read. */
  results: {
    linf: number;
    linf255: number;
    l2: number;
    psnr: number;
    /** At full resolution (visibility.ts): what a person sees at the photo's own size. */
    ssim: number | null;
    /**
     * Only with a visibility target: whether the result met it (it always should), the budget's
     * final multiple after the attack's shrinks, and the final scaling of the change (null: none).
     */
    visibility?: { minSsim: number; met: boolean; budgetScale: number; scaledBack: number | null };
    /** The model's own reconstruction decode(encode(·)): clean photo, immunized photo; PSNR in dB. */
    reconstruction: { model: string; cleanPsnr: number; immunizedPsnr: number; immunizedVsOriginalPsnr: number } | null;
  };
  /** peakRssMB: the process's peak resident memory when the job ended (a long-lived worker: its peak so far). */
  timing: { totalMs: number; attackMs: number; msPerStep: number | null; peakRssMB: number };
  environment: { device: Device; threads: number; libtorch: string; generator: 'cpu'; node: string };
  /** Only in the command's --json output (the file is NAME.immunized.check.json). */
  check?: ProtectionCheck;
}

/** The files a request was made of, by content: what, besides the request, decides the pixels. */
export interface InputFingerprints {
  inputSha256: string;
  mask: { path: string; sha256: string } | null;
  target: { path: string; sha256: string } | null;
  /** The model as recorded: a resolved local path, or the repo id. */
  model: string | null;
}

/** A file as the sidecar records it: its absolute path and its content's sha256. */
function fileRecord(path: string): { path: string; sha256: string } {
  return { path: resolve(path), sha256: sha256File(path) };
}

/**
 * The fingerprints of a request's files (all but the photo, which each photo of a batch adds as
 * `inputSha256`); the model is recorded as a resolved local path, or as the repo id it is.
 */
export function fingerprintFiles(
  model: string | null,
  files: { mask?: string | null; target?: string | null },
): Omit<InputFingerprints, 'inputSha256'> {
  return {
    model: model === null ? null : existsSync(model) ? resolve(model) : model,
    mask: files.mask ? fileRecord(files.mask) : null,
    target: files.target ? fileRecord(files.target) : null,
  };
}

/** The sidecar's `parameters` for a request (null where the method does not use a parameter). */
export function sidecarParameters(r: ProtectRequest, files: InputFingerprints, format: ImageFormat): ProtectParameters {
  // The noise baseline and the learned immunizer take no steps: the step parameters do not apply.
  const attacking = r.method !== 'noise' && r.method !== 'learned';
  const { requested, used } = precisionOf(r);
  return {
    method: r.method,
    model: files.model,
    precision: { requested, used },
    fp16: r.fp16,
    preset: attacking ? r.preset : null,
    ...(r.method === 'diffusion' ? { diffusionSteps: r.diffusionSteps, gradReps: r.gradReps } : {}),
    ...(r.robust === 'none' ? {} : { robust: { kind: r.robust, samples: r.robustSamples } }),
    ...(r.start === 'learned' ? { start: 'learned' as const } : {}),
    ...(r.budget === 'texture' ? { budget: r.budget } : {}),
    ...(r.minSsim == null ? {} : { minSsim: r.minSsim }),
    eps: r.eps,
    norm: 'linf',
    stepSize: attacking ? r.stepSize : null,
    steps: attacking ? r.steps : null,
    stop: attacking ? r.stop : null,
    schedule: attacking ? r.schedule : null,
    optimizer: attacking ? r.optimizer : null,
    randomStart: attacking ? r.randomStart : null,
    seed: r.seed,
    target: !attacking ? null : files.target === null ? (r.target as 'gray' | 'zeros') : files.target,
    mask: files.mask === null ? null : { ...files.mask, inverted: r.invertMask },
    size: r.size,
    tile: r.tile,
    device: r.device as Device,
    format,
    quality: format === 'png' ? null : 95,
    inputSha256: files.inputSha256,
  };
}

/** JSON with sorted keys: parameters compare equal however they were written. */
export function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v !== null && typeof v === 'object')
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(v);
}
