/**
 * THE job: immunize one photo. `protectImage` pads the photo for the model, runs the chosen
 * attack (attacks/immunize.ts), encodes the PNG with its XMP label in memory, and measures the
 * file as written — the 8-bit image anyone downloading it gets — against the photo as read: L∞,
 * PSNR, SSIM, and the model's reconstruction before and after. It touches no file and writes
 * nothing to stderr: progress and the loss come through `onStep`, notes through `onNote`, and
 * an AbortSignal stops it between steps. Writing the result is write.ts's.
 */
import { existsSync } from 'node:fs';
import { basename } from 'node:path';
import { immunize } from '../attacks/immunize.js';
import { learnedTargetNote } from '../attacks/learned.js';
import { ImmunizeError } from '../errors.js';
import { encodeImage, readImage, type ImageFormat } from '../io/images.js';
import { buildImmunizeXmp, type ImmunizeMarker } from '../io/xmp.js';
import { psnr } from '../metrics/psnr.js';
import { textureBudget } from '../attacks/budget.js';
import { cropTo, paddingFor, padToMultiple, reconstructForMeasure } from '../models/image-autoencoder.js';
import { robustEot } from '../robustness/robust.js';
import { checkProtection, type ProtectionCheck } from '../robustness/check.js';
import {
  checkDevice,
  getNumThreads,
  noGrad,
  peakRssMB,
  scope,
  torchInfo,
  type Device,
  type Tensor,
} from '../torch/index.js';
import type { ProtectInputs } from './inputs.js';
import { usesImmunizer, type ProtectModels } from './models.js';
import { pgdOptionsOf, precisionOf, type ProtectRequest } from './parameters.js';
import type { ProtectParameters, ProtectSidecar } from './sidecar.js';
import { toolVersion } from '../version.js';
import { asWritten, visibilitySsim } from './visibility.js';

/** One progress event: the attack's steps, then the check's purifications. */
export interface ProtectStep {
  phase: 'attack' | 'check';
  step: number;
  steps: number;
  /** The attack's loss at this step (null in the check). */
  loss: number | null;
  elapsedMs: number;
  /** Estimated time left in this phase (null before the first step). */
  etaMs: number | null;
  /** The purification being measured (check). */
  detail?: string;
}

export interface ProtectOptions {
  /** The sidecar's `parameters` (sidecar.ts: the request with the inputs' fingerprints). */
  parameters: ProtectParameters;
  /** Where the photo came from, for the sidecar (no file is read through it). */
  inputPath: string;
  /** Output format (PNG unless a door asks otherwise; lossy formats weaken the protection). */
  format?: ImageFormat;
  /** Progress: the attack's steps, then (when the request asks for `check`) the purifications measured. */
  onStep?: (s: ProtectStep) => void;
  /** What a person should read (resized, padded, alpha flattened…); the door decides where it goes. */
  onNote?: (note: string) => void;
  /** Stops the job between steps; it then ends with ProtectCanceled. */
  signal?: AbortSignal;
  /**
   * How the XMP label names the model (default: the repo id, or a local path's last component).
   * The service gives its model id: a label must not tell where the server keeps its weights.
   */
  modelName?: string;
  /** The XMP label's and sidecar's date (default now; see creationDate()). */
  createdAt?: string;
  /** The attack's estimated time (step-times.ts): announced as step 0's `etaMs` before the first step. */
  estimateMs?: number | null;
}

export interface ProtectResult {
  /** The encoded image (PNG with the XMP label). */
  bytes: Buffer;
  /** The sidecar; `output.path` and `output.sidecar` are filled in by writeProtected. */
  sidecar: ProtectSidecar;
  check: ProtectionCheck | null;
}

/**
 * The time stamped into the XMP label and the sidecar: now, or $SOURCE_DATE_EPOCH (seconds; the
 * reproducible-builds convention) so that two runs — the CLI and the API's workers — can produce
 * byte-identical files.
 */
export function creationDate(): string {
  const epoch = process.env['SOURCE_DATE_EPOCH'];
  if (epoch !== undefined && /^\d+$/.test(epoch)) return new Date(Number(epoch) * 1000).toISOString();
  return new Date().toISOString();
}

/** The error a canceled job ends with. */
export class ProtectCanceled extends ImmunizeError {
  constructor() {
    super('E_CANCELED', 'canceled');
    this.name = 'ProtectCanceled';
  }
}

function eta(elapsedMs: number, step: number, steps: number): number | null {
  return step > 0 ? Math.round((elapsedMs / step) * Math.max(0, steps - step)) : null;
}

/** The side multiple the attack pads to: 8 for SD pipelines, the autoencoder's downscale, 1 for none. */
function multipleOf(models: ProtectModels): number {
  return models.pipeline !== null ? 8 : (models.autoencoder?.downscale ?? 1);
}

/**
 * Measures what survives the request's purifications (`checkSuite`), through the model that
 * measures the job, for the photo as read (`original`) and as written (`written`).
 */
export async function checkImmunized(
  original: Tensor,
  written: Tensor,
  models: ProtectModels,
  r: ProtectRequest,
  o: { modelName: string; onStep?: (s: ProtectStep) => void; signal?: AbortSignal },
): Promise<ProtectionCheck> {
  const model = models.measuredBy;
  if (model === null)
    throw new ImmunizeError('E_NOT_AVAILABLE', 'checking the protection needs a model to measure it through');
  const device = checkDevice(r.device);
  const t0 = performance.now();
  const rec = (t: Tensor): Tensor => {
    if (o.signal?.aborted) throw new ProtectCanceled();
    return reconstructForMeasure(model, t, { tile: r.tile ?? undefined, device });
  };
  return checkProtection(rec, original, written, {
    model: o.modelName,
    suite: r.checkSuite,
    autoencoder: model,
    onProgress: (done, total, spec) => {
      const elapsedMs = performance.now() - t0;
      o.onStep?.({
        phase: 'check',
        step: done,
        steps: total,
        loss: null,
        elapsedMs,
        etaMs: eta(elapsedMs, done, total),
        detail: spec,
      });
    },
  });
}

export async function protectImage(
  inputs: ProtectInputs,
  models: ProtectModels,
  r: ProtectRequest,
  o: ProtectOptions,
): Promise<ProtectResult> {
  const t0 = performance.now();
  const createdAt = o.createdAt ?? creationDate();
  const format = o.format ?? 'png';
  const device: Device = checkDevice(r.device);
  const { image: img, probe } = inputs;
  const name = basename(o.inputPath);
  for (const n of [...(r.notes ?? []), ...inputs.notes]) o.onNote?.(n);
  if (o.signal?.aborted) throw new ProtectCanceled();
  const tensors: Tensor[] = [];
  try {
    const m = multipleOf(models);
    // On the attack's device, padded to the model's multiple (views and copies freed by the scope).
    const prepare = (t: Tensor): Tensor => noGrad(() => scope(() => padToMultiple(t.to(device), m)));
    const pad = paddingFor(img.height, img.width, m);
    const xp = prepare(img.tensor);
    tensors.push(xp);
    const maskP = inputs.mask === null ? null : prepare(inputs.mask);
    if (maskP) tensors.push(maskP);
    const targetP = typeof inputs.target === 'string' ? inputs.target : prepare(inputs.target);
    if (typeof targetP !== 'string') tensors.push(targetP);
    if (pad)
      o.onNote?.(
        `${name}: ${img.width}×${img.height} is not a multiple of ${m}; padded to ${img.width + pad[1]}×${img.height + pad[0]} for the model and cropped back`,
      );

    const precision = precisionOf(r);
    const immunizer = models.immunizer ?? null;
    if (usesImmunizer(r) && immunizer === null)
      throw new ImmunizeError(
        'E_NOT_AVAILABLE',
        `${r.method === 'learned' ? 'method' : 'start'} learned needs the learned immunizer's weights`,
      );
    if (immunizer !== null && models.autoencoder !== null) {
      const note = learnedTargetNote(immunizer, models.autoencoder, String(o.parameters.model));
      if (note !== null) o.onNote?.(note);
    }
    if ((r.method === 'encoder' || r.method === 'learned') && precision.requested === 'auto')
      o.onNote?.(`precision auto: ${precision.used} (${precision.reason})`);

    // texture: a per-pixel bound from the photo's local contrast; PGD's eps is then the map's largest value.
    const budget = r.budget === 'texture' ? textureBudget(xp, { eps: r.eps }) : null;
    if (budget) tensors.push(budget.map);
    const originalOnDevice = noGrad(() => scope(() => img.tensor.to(device)));
    tensors.push(originalOnDevice);
    // == null: a request queued by an older version has no minSsim at all.
    if (r.minSsim != null && Math.min(img.width, img.height) < 11)
      throw new ImmunizeError(
        'E_ARGUMENT',
        `${name}: a visibility target needs a photo of at least 11×11 pixels (SSIM's window); it is ${img.width}×${img.height}`,
      );
    // The target is measured as the result will be: cropped back, on 8-bit pixels, against the photo as read.
    const visibility =
      r.minSsim == null
        ? undefined
        : {
            min: r.minSsim,
            measure: (adv: Tensor) =>
              noGrad(() =>
                scope(() => visibilitySsim(asWritten(cropTo(adv, img.height, img.width)), originalOnDevice)),
              ),
          };

    if (o.estimateMs != null && r.method !== 'noise')
      o.onStep?.({ phase: 'attack', step: 0, steps: r.steps, loss: null, elapsedMs: 0, etaMs: o.estimateMs });
    const ta = performance.now();
    const result = immunize(xp, {
      method: r.method,
      precision: precision.used,
      pgd: {
        ...pgdOptionsOf(r),
        ...(budget ? { eps: budget.maxEps, epsMap: budget.map } : {}),
        ...(visibility ? { visibility } : {}),
        ...(r.robust === 'none' ? {} : { eot: robustEot(r.robust, r.robustSamples) }),
      },
      mask: maskP,
      encoder: models.encoder ?? undefined,
      immunizer: immunizer ?? undefined,
      start: r.start,
      target: targetP,
      diffusion:
        models.pipeline === null
          ? undefined
          : {
              pipeline: models.pipeline,
              denoiseSteps: r.diffusionSteps,
              gradReps: r.gradReps,
              name: String(o.parameters.model),
            },
      onStep: (s) => {
        o.onStep?.({
          phase: 'attack',
          step: s.step,
          steps: s.steps,
          loss: s.loss,
          elapsedMs: s.elapsedMs,
          etaMs: eta(s.elapsedMs, s.step, s.steps),
        });
        return o.signal?.aborted !== true;
      },
    });
    const adv = result.adv;
    tensors.push(adv);
    if (o.signal?.aborted) throw new ProtectCanceled();
    const attackMs = performance.now() - ta;
    const attack: ProtectSidecar['attack'] =
      result.attack === null
        ? null
        : { ...result.attack, paddedTo: pad ? [img.width + pad[1], img.height + pad[0]] : null };
    const cropped = noGrad(() => scope(() => cropTo(adv, img.height, img.width).to('cpu')));
    tensors.push(cropped);

    const p = o.parameters;
    const attacking = r.method !== 'noise' && r.method !== 'learned';
    const marker: ImmunizeMarker = {
      tool: 'immunize',
      toolVersion: toolVersion(),
      method: r.method,
      eps: r.eps,
      norm: 'linf',
      // Only a repo id or a file name: an absolute local path would leak the user's folders.
      model: p.model === null ? null : (o.modelName ?? (existsSync(p.model) ? basename(p.model) : p.model)),
      preset: attacking ? r.preset : null,
      steps: attacking ? r.steps : 0,
      stepsTaken: attack?.stepsTaken ?? 0,
      stepSize: attacking ? r.stepSize : null,
      optimizer: attacking ? r.optimizer : null,
      seed: r.seed,
      masked: inputs.mask !== null,
      date: createdAt,
    };
    const bytes = await encodeImage(cropped, {
      format,
      xmp: buildImmunizeXmp(marker),
      warn: () => {
        /* the door warns, up front */
      },
    });

    // Measure what was written: the 8-bit (and, for JPEG, re-compressed) file anyone downloading it gets.
    const written = (await readImage(bytes, { maxPixels: Number.MAX_SAFE_INTEGER })).tensor;
    tensors.push(written);
    const original = img.tensor;
    const { linf, l2 } = noGrad(() =>
      scope(() => {
        const d = written.sub(original);
        return { linf: d.abs().max().item(), l2: d.norm().item() };
      }),
    );
    const ssimValue = Math.min(img.width, img.height) >= 11 ? visibilitySsim(written, original) : null;
    const target = attack?.visibility;

    let reconstruction: ProtectSidecar['results']['reconstruction'] = null;
    const ae = models.autoencoder;
    if (ae !== null) {
      const measure = (t: Tensor): Tensor => reconstructForMeasure(ae, t, { tile: r.tile ?? undefined, device });
      const recClean = measure(original);
      tensors.push(recClean);
      const recImm = measure(written);
      tensors.push(recImm);
      reconstruction = {
        model: p.model!,
        cleanPsnr: psnr(recClean, original),
        immunizedPsnr: psnr(recImm, written),
        immunizedVsOriginalPsnr: psnr(recImm, original),
      };
    }

    const totalMs = performance.now() - t0;
    const sidecar: ProtectSidecar = {
      tool: { name: 'immunize', version: toolVersion() },
      createdAt,
      input: {
        path: o.inputPath,
        width: probe.width,
        height: probe.height,
        format: probe.format,
        orientation: probe.orientation,
        resizedTo: img.width !== probe.width || img.height !== probe.height ? [img.width, img.height] : null,
        alphaFlattened: img.hadAlpha,
      },
      output: { path: '', sidecar: '', format, width: img.width, height: img.height, xmp: true },
      parameters: p,
      attack,
      results: {
        linf,
        linf255: linf * 255,
        l2,
        psnr: psnr(written, original),
        ssim: ssimValue,
        ...(target === undefined
          ? {}
          : {
              visibility: {
                minSsim: target.min,
                met: ssimValue !== null && ssimValue >= target.min,
                budgetScale: target.budgetScale,
                scaledBack: target.scaledBack,
              },
            }),
        reconstruction,
      },
      timing: {
        totalMs: Math.round(totalMs),
        attackMs: Math.round(attackMs),
        msPerStep: attack && attack.stepsTaken > 0 ? Math.round(attackMs / attack.stepsTaken) : null,
        peakRssMB: peakRssMB(),
      },
      environment: {
        device,
        threads: getNumThreads(),
        libtorch: torchInfo().torchVersion,
        generator: 'cpu',
        node: process.version,
      },
    };
    const check = r.check
      ? await checkImmunized(original, written, models, r, {
          modelName: p.model ?? 'model',
          onStep: o.onStep,
          signal: o.signal,
        })
      : null;
    return { bytes, sidecar, check };
  } finally {
    for (const t of tensors) t.dispose();
  }
}
