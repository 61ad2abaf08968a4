/**
 * Training the learned immunizer G (issue 16) on this engine: the encoder attack's loss,
 * ‖E(x + δ) − E(gray)‖² averaged per latent element (so crops of every size weigh the same), with
 * δ = ε·tanh(G(x)) clipped to the pixel range, minimised over G's parameters by Adam on random
 * crops (several sizes, flips) of a photo set; optional expectation over the differentiable JPEG
 * so that δ survives re-compression. Checkpoints hold the weights, Adam's state, the step, the
 * crop generator's state and the history, so a killed run resumes with the step it would have
 * taken. Parameters and optimiser state are fp32; G and E run in `precision` (bf16 autocast).
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ArgumentError, ImmunizeError, describe } from '../errors.js';
import { SafetensorsFile } from '../io/safetensors.js';
import { loadSafetensors, saveSafetensors } from '../io/tensors.js';
import { reconstructForMeasure, type AnyAutoencoder } from '../models/image-autoencoder.js';
import type { ImmunizerNet } from '../models/immunizer.js';
import { psnr } from '../metrics/psnr.js';
import { Adam } from '../nn/optim.js';
import { diffJpeg } from '../purify/diff-jpeg.js';
import { full, grad, keep, noGrad, scope, stack, type Precision, type Tensor } from '../torch/index.js';
import { atPrecision, asEncoder, type ImageEncoder } from './encoder.js';
import { learnedDelta, learnedOutput } from './learned.js';

export interface TrainImmunizerOptions {
  /** Training photos, each 1×3×H×W fp32 in [0, 1] (every side ≥ the largest crop). */
  train: readonly Tensor[];
  /** Held-out photos for validation (centre crops of `valCrop`). */
  val: readonly Tensor[];
  /** The target: its encoder is attacked, its reconstruction measured. */
  autoencoder: AnyAutoencoder;
  steps: number;
  batch: number;
  /** Crop sides drawn uniformly per step (one size per batch). */
  cropSizes: readonly number[];
  lr: number;
  /** Cosine decay from lr to lr·minLrFactor after a linear warm-up (default 0.1, 50 steps). */
  minLrFactor?: number;
  warmupSteps?: number;
  eps: number;
  precision?: Precision;
  seed: number;
  /**
   * Weight of mean(G(x)²) in the loss (default 1e-3). Without it G's output grows until tanh
   * saturates everywhere (|G| ~ 10⁴ after 100 steps in the first run) and no gradient reaches G
   * again; the penalty pulls saturated outputs back where tanh still has a slope.
   */
  saturationPenalty?: number;
  /** Probability that a step's batch goes through the differentiable JPEG (quality 50–95). Default 0. */
  jpegProb?: number;
  valCrop?: number;
  valEvery?: number;
  /** Where checkpoints go (`checkpoint.safetensors`); none when absent. */
  checkpointDir?: string;
  checkpointEvery?: number;
  /** Resume from checkpointDir's checkpoint when there is one (default true). */
  resume?: boolean;
  /** Called after each step and each validation (progress lines). */
  onProgress?: (e: TrainProgress) => void;
  /** Stop after this many steps of this call (tests: a run killed at a step). */
  stopAfter?: number;
}

export interface TrainProgress {
  kind: 'step' | 'val';
  step: number;
  steps: number;
  loss: number;
  lr: number;
  /** Fraction of δ's pixels with |tanh(G(x))| > 0.99 in this step's batch (saturated: no gradient). */
  saturated: number;
  /** Seconds per step: the median of the last steps (robust to a paused process). */
  secondsPerStep: number;
  etaSeconds: number;
  val?: ValRecord;
}

export interface ValRecord {
  step: number;
  /** Mean latent MSE to E(gray) of the immunized validation crops (what training minimises). */
  loss: number;
  /** Mean reconstruction PSNR through the autoencoder (fp32), immunized vs. original; lower = protected. */
  psnr: number;
  /** The same for the clean crops (the reference). */
  cleanPsnr: number;
}

export interface TrainHistory {
  /** [step, mean training loss over the steps since the previous entry]. */
  loss: [number, number][];
  val: ValRecord[];
}

export interface TrainResult {
  step: number;
  history: TrainHistory;
  /** Training seconds summed over steps (pauses excluded as far as a median can). */
  trainSeconds: number;
}

/** mulberry32: a 32-bit state, so the crop stream is saved in a checkpoint as one number. */
export class CropRandom {
  constructor(public state: number) {}
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.min(n - 1, Math.floor(this.next() * n));
  }
}

/** The learning rate at step t (0-based): linear warm-up, then cosine decay to lr·minLrFactor. */
export function learningRate(
  o: Pick<TrainImmunizerOptions, 'lr' | 'steps' | 'minLrFactor' | 'warmupSteps'>,
  t: number,
): number {
  const warm = Math.min(o.warmupSteps ?? 50, Math.floor(o.steps / 10));
  if (t < warm) return (o.lr * (t + 1)) / warm;
  const p = (t - warm) / Math.max(1, o.steps - warm);
  const lo = o.lr * (o.minLrFactor ?? 0.1);
  return lo + (o.lr - lo) * 0.5 * (1 + Math.cos(Math.PI * Math.min(1, p)));
}

/** One training batch: `batch` random crops of one random size with random horizontal flips. */
export function drawBatch(images: readonly Tensor[], sizes: readonly number[], batch: number, rng: CropRandom): Tensor {
  const s = sizes[rng.int(sizes.length)]!;
  return noGrad(() =>
    scope(() => {
      const crops: Tensor[] = [];
      for (let b = 0; b < batch; b++) {
        const img = images[rng.int(images.length)]!;
        const [h, w] = [img.shape[2]!, img.shape[3]!];
        const top = rng.int(h - s + 1);
        const left = rng.int(w - s + 1);
        let c = img.narrow(2, top, s).narrow(3, left, s);
        if (rng.next() < 0.5) c = c.flip([3]);
        crops.push(c.squeeze(0));
      }
      return stack(crops).contiguous();
    }),
  );
}

function centreCrop(img: Tensor, s: number): Tensor {
  const [h, w] = [img.shape[2]!, img.shape[3]!];
  const c = Math.min(s, h, w);
  return img.narrow(2, (h - c) >> 1, c).narrow(3, (w - c) >> 1, c);
}

function checkTrainOptions(o: TrainImmunizerOptions): void {
  const posInt = (name: string, v: unknown) => {
    if (!Number.isSafeInteger(v) || (v as number) < 1)
      throw new ArgumentError(`Expected ${name} to be a positive integer but received ${describe(v)}`);
  };
  posInt('steps', o.steps);
  posInt('batch', o.batch);
  if (!(typeof o.lr === 'number' && o.lr > 0 && Number.isFinite(o.lr)))
    throw new ArgumentError(`Expected lr to be a positive number but received ${describe(o.lr)}`);
  if (!(typeof o.eps === 'number' && o.eps > 0 && o.eps <= 1))
    throw new ArgumentError(`Expected eps to be in (0, 1] but received ${describe(o.eps)}`);
  if (o.train.length === 0) throw new ArgumentError('training needs at least one training image');
  if (o.cropSizes.length === 0) throw new ArgumentError('cropSizes is empty');
  const largest = Math.max(...o.cropSizes);
  for (const [k, img] of o.train.entries())
    if (
      img.ndim !== 4 ||
      img.shape[0] !== 1 ||
      img.shape[1] !== 3 ||
      img.shape[2]! < largest ||
      img.shape[3]! < largest
    )
      throw new ArgumentError(
        `training image ${k} has shape [${img.shape.join(', ')}]; expected 1×3×H×W with H, W ≥ the largest crop (${largest})`,
      );
}

const CHECKPOINT = 'checkpoint.safetensors';

/** Trains `net` in place (its weights must be loaded or initialised); returns the history. */
export function trainImmunizer(net: ImmunizerNet, o: TrainImmunizerOptions): TrainResult {
  checkTrainOptions(o);
  const precision = o.precision ?? 'fp32';
  const enc: ImageEncoder = atPrecision(asEncoder(o.autoencoder as Parameters<typeof asEncoder>[0]), precision);
  const params = net.parameters();
  net.requiresGrad_(true);
  const adam = new Adam(params, { lr: o.lr });
  const rng = new CropRandom(o.seed >>> 0);
  let step = 0;
  let history: TrainHistory = { loss: [], val: [] };
  let trainSeconds = 0;
  const ckpt = o.checkpointDir ? join(o.checkpointDir, CHECKPOINT) : null;
  if (o.checkpointDir) mkdirSync(o.checkpointDir, { recursive: true });
  if (ckpt !== null && (o.resume ?? true) && existsSync(ckpt)) {
    const r = loadCheckpoint(ckpt, net, adam);
    step = r.step;
    rng.state = r.rng;
    history = r.history;
    trainSeconds = r.trainSeconds;
  }
  const targets = new Map<number, Tensor>(); // E(gray) per crop size, fp32
  const targetFor = (x: Tensor): Tensor => {
    const s = x.shape[2]!;
    let t = targets.get(s);
    if (t === undefined) {
      t = noGrad(() => keep(scope(() => enc.encode01(full([1, 3, s, s], 0.5)).float())));
      targets.set(s, t);
    }
    return t;
  };
  const valCrops = o.val.map((v) => noGrad(() => keep(scope(() => centreCrop(v, o.valCrop ?? 256).contiguous()))));
  const recent: number[] = [];
  let lossSum = 0;
  let lossCount = 0;
  const logEvery = Math.max(1, Math.min(25, Math.floor(o.steps / 20)));
  const validate = (): ValRecord =>
    validateImmunizer(net, enc, o.autoencoder, valCrops, o.eps, precision, targetFor, step);
  try {
    if (o.val.length > 0 && history.val.length === 0) history.val.push(validate());
    let taken = 0;
    while (step < o.steps && (o.stopAfter === undefined || taken < o.stopAfter)) {
      const t0 = performance.now();
      const lr = learningRate(o, step);
      adam.lr = lr;
      let saturated = NaN;
      const loss = scope(() => {
        const x = drawBatch(o.train, o.cropSizes, o.batch, rng);
        const jpeg = (o.jpegProb ?? 0) > 0 && rng.next() < o.jpegProb! ? 50 + rng.int(46) : null;
        const g = learnedOutput(net, x, precision);
        const delta = g.tanh().mul(o.eps);
        saturated = noGrad(() =>
          delta
            .abs()
            .gt(0.99 * o.eps)
            .float()
            .mean()
            .item(),
        );
        let xa = x.add(delta).clamp(0, 1);
        if (jpeg !== null) xa = diffJpeg(xa, { quality: jpeg });
        const z = enc.encode01(xa);
        const attack = z.sub(targetFor(x)).square().mean();
        const value = attack.item();
        const l = attack.add(
          g
            .square()
            .mean()
            .mul(o.saturationPenalty ?? 1e-3),
        );
        if (!Number.isFinite(value))
          throw new ImmunizeError(
            'E_TRAIN',
            `the training loss became ${value} at step ${step}; lower the learning rate`,
          );
        const grads = grad(l, params);
        adam.step(grads);
        return value;
      });
      step++;
      taken++;
      const dt = (performance.now() - t0) / 1000;
      recent.push(dt);
      if (recent.length > 50) recent.shift();
      const perStep = median(recent);
      // A step much longer than usual was paused (SIGSTOP) or starved: count the usual time.
      trainSeconds += Math.min(dt, 3 * perStep);
      lossSum += loss;
      lossCount++;
      if (step % logEvery === 0 || step === o.steps) {
        history.loss.push([step, lossSum / lossCount]);
        lossSum = 0;
        lossCount = 0;
      }
      const progress = {
        step,
        steps: o.steps,
        loss,
        lr,
        saturated,
        secondsPerStep: perStep,
        etaSeconds: perStep * (o.steps - step),
      };
      o.onProgress?.({ kind: 'step', ...progress });
      const valNow = o.val.length > 0 && (step % (o.valEvery ?? 200) === 0 || step === o.steps);
      if (valNow) {
        const v = validate();
        history.val.push(v);
        o.onProgress?.({ kind: 'val', ...progress, val: v });
      }
      if (ckpt !== null && (step % (o.checkpointEvery ?? 100) === 0 || step === o.steps))
        saveCheckpoint(ckpt, net, adam, { step, rng: rng.state, history, trainSeconds });
    }
  } finally {
    net.requiresGrad_(false);
    adam.dispose();
    for (const t of targets.values()) t.dispose();
    for (const t of valCrops) t.dispose();
  }
  return { step, history, trainSeconds };
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

/** Validation loss and reconstruction PSNR (fp32) of the immunized validation crops. */
function validateImmunizer(
  net: ImmunizerNet,
  enc: ImageEncoder,
  ae: AnyAutoencoder,
  crops: readonly Tensor[],
  eps: number,
  precision: Precision,
  targetFor: (x: Tensor) => Tensor,
  step: number,
): ValRecord {
  let loss = 0;
  let p = 0;
  let clean = 0;
  for (const x of crops) {
    noGrad(() =>
      scope(() => {
        const xa = x.add(learnedDelta(net, x, eps, precision)).clamp(0, 1);
        loss += enc.encode01(xa).sub(targetFor(x)).square().mean().item();
        p += psnr(reconstructForMeasure(ae, xa), x);
        clean += psnr(reconstructForMeasure(ae, x), x);
      }),
    );
  }
  const n = Math.max(1, crops.length);
  return { step, loss: loss / n, psnr: p / n, cleanPsnr: clean / n };
}

interface CheckpointState {
  step: number;
  rng: number;
  history: TrainHistory;
  trainSeconds: number;
}

/** Weights (`net.*`), Adam's moments (`adam.*`) and the loop state (metadata), written atomically. */
export function saveCheckpoint(path: string, net: ImmunizerNet, adam: Adam, s: CheckpointState): void {
  const tensors = new Map<string, Tensor>();
  const st = adam.state();
  try {
    for (const [k, t] of net.stateDict()) tensors.set(`net.${k}`, t.detach());
    for (const [k, t] of st.tensors) tensors.set(`adam.${k}`, t);
    saveSafetensors(path, tensors, {
      state: JSON.stringify({ ...s, adamStep: st.step, config: net.config }),
    });
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
}

/** Restores a checkpoint into `net` and `adam`; the config must match the network's. */
export function loadCheckpoint(path: string, net: ImmunizerNet, adam: Adam): CheckpointState {
  const all = loadSafetensors(path);
  try {
    const meta = readMetadata(path);
    if (JSON.stringify(meta.config) !== JSON.stringify(net.config))
      throw new ImmunizeError(
        'E_CHECKPOINT',
        `${path} was written for ${JSON.stringify(meta.config)} but the network is ${JSON.stringify(net.config)}; use another checkpoint directory`,
      );
    const weights = new Map<string, Tensor>();
    const moments = new Map<string, Tensor>();
    for (const [k, t] of all) {
      if (k.startsWith('net.')) weights.set(k.slice(4), t);
      else if (k.startsWith('adam.')) moments.set(k.slice(5), t);
    }
    noGrad(() => {
      for (const [k, p] of net.stateDict()) {
        const w = weights.get(k);
        if (w === undefined) throw new ImmunizeError('E_CHECKPOINT', `${path}: no weights for ${k}`);
        p.copy_(w);
      }
    });
    adam.loadState(meta.adamStep, moments);
    return { step: meta.step, rng: meta.rng, history: meta.history, trainSeconds: meta.trainSeconds };
  } finally {
    for (const t of all.values()) t.dispose();
  }
}

function readMetadata(path: string): CheckpointState & { adamStep: number; config: unknown } {
  using f = SafetensorsFile.open(path);
  const text = f.metadata['state'];
  if (text === undefined)
    throw new ImmunizeError('E_CHECKPOINT', `${path}: not a training checkpoint (no state metadata)`);
  return JSON.parse(text) as CheckpointState & { adamStep: number; config: unknown };
}
