/**
 * The paper's evaluation protocol (Salman et al. 2023, §5 and Table 6; docs/evaluate.md): for
 * each photo, edit the clean image, its immunized versions (encoder attack, diffusion attack,
 * pre-immunized files) and the random-noise baseline of the same budget — and, for a
 * purification sweep, their purified versions — all with the same prompt and seed; compare every
 * edit with the clean edit (the 12 full-reference metrics), score every edit against its prompt
 * with CLIP, and compute FID / precision–recall of each method's edits against the clean edits
 * over the set. Everything is cached in a work folder keyed by content hashes and parameters.
 *
 * Phases: (1) images — sources, immunizations, purifications, edits, one pipeline loaded at a
 * time (img2img items first, then inpainting items); (2) full-reference metrics; (3) CLIP;
 * (4) Inception features, FID and precision/recall; (5) aggregates. A fully cached run loads no model.
 */
import { existsSync, readFileSync } from 'node:fs';
import { asEncoder, type ImageEncoder } from '../attacks/encoder.js';
import { robustEot, ROBUST_SETTINGS } from '../robustness/robust.js';
import { immunize as runAttack, type ImmunizeResult } from '../attacks/immunize.js';
import type { PgdStep } from '../attacks/pgd.js';
import { PRESETS } from '../attacks/presets.js';
import { ImmunizeError } from '../errors.js';
import { encodeImage, readImage, readMask } from '../io/images.js';
import { createProgress } from '../io/progress.js';
import { FULL_REFERENCE_METRICS } from '../metrics/index.js';
import { CLIPScorer } from '../metrics/clip-score.js';
import { fidFromFeatures, inceptionFeatures } from '../metrics/fid.js';
import { precisionRecall } from '../metrics/precision-recall.js';
import { loadFIDInception, type FIDInceptionV3 } from '../models/inception.js';
import type { Autoencoder } from '../models/load.js';
import { loadAutoencoder } from '../models/resolve.js';
import { loadStableDiffusion, type StableDiffusion } from '../pipelines/components.js';
import { img2img, inpaint } from '../pipelines/generate.js';
import { seededNoise } from '../pipelines/noise.js';
import { parsePurification } from '../purify/spec.js';
import { noGrad, scope, tensor, torchInfo, type Device, type Tensor } from '../torch/index.js';
import { WorkDir, modelFingerprint, sha256, sha256File } from './cache.js';
import type { Dataset, DatasetItem } from './dataset.js';
import { summarize, type Summary } from './stats.js';
import { sweepFamilies, type SweepFamily } from './sweep.js';

/** Bumped when a change invalidates cached results (it is part of every key). */
export const PROTOCOL_VERSION = 1;

export interface EvaluateOptions {
  workDir: string;
  device?: Device;
  /** Recompute everything, ignoring the cache (what is recomputed is stored again). */
  force?: boolean;
  /** Progress and notes (default: stderr, silenced by IMMUNIZE_QUIET=1 except warnings). */
  log?: (line: string) => void;
}

export interface VariantInfo {
  /** 'encoder', or 'encoder@jpeg:75' for a purified version. */
  key: string;
  method: string;
  purification: string | null;
}

export interface VariantResult extends VariantInfo {
  input: { file: string; sha256: string };
  edit: { file: string; sha256: string };
  /** Each full-reference metric of this edit against the clean edit (null: could not be computed, see notes). */
  metrics: Record<string, number | null>;
  /** CLIP cosine similarity of the edit and the prompt (null when no CLIP model was given). */
  clip: number | null;
}

export interface ItemResult extends Pick<DatasetItem, 'id' | 'image' | 'mask' | 'prompt' | 'negativePrompt' | 'seed'> {
  mode: 'img2img' | 'inpaint';
  /** The images before editing: 'clean' (the resized source) and each immunization, with their distance to the source. */
  inputs: Record<
    string,
    { file: string; sha256: string; origin: 'source' | 'computed' | 'file'; linf255: number; psnr: number }
  >;
  variants: Record<string, VariantResult>;
  /** Methods not applicable to this item, with the reason. */
  skipped: Record<string, string>;
}

export interface VariantAggregate extends VariantInfo {
  items: number;
  metrics: Record<string, Summary | null>;
  clip: Summary | null;
  /** Over the set, this variant's edits against the clean edits of the same items. */
  fid: number | null;
  precision: number | null;
  recall: number | null;
}

export interface EvaluationResults {
  tool: { name: 'immunize'; protocol: number; libtorch: string; node: string };
  createdAt: string;
  dataset: { path: string; name: string; sha256: string; items: number };
  settings: Pick<Dataset, 'size' | 'models' | 'edit' | 'immunize' | 'purify' | 'fid'>;
  methods: string[];
  purifications: string[];
  variants: VariantInfo[];
  metrics: { name: string; better: 'higher' | 'lower'; ideal: number }[];
  items: ItemResult[];
  aggregates: Record<string, VariantAggregate>;
  sweeps: SweepFamily[];
  /** Everything skipped or not computable, said once each (CLIP/FID not given, metrics too large for the size, …). */
  notes: string[];
  work: { dir: string; computed: Record<string, number>; cached: Record<string, number> };
  timing: { totalMs: number };
}

/** The robust method's expectation over transforms (part of its cache key). */
const ROBUST_EOT = { kind: 'jpeg', samples: 1, ...ROBUST_SETTINGS } as const;

const METHOD_ORDER = ['clean', 'noise', 'encoder', 'robust', 'diffusion'];

export function variantKey(method: string, purification: string | null): string {
  return purification === null ? method : `${method}@${purification}`;
}

interface Ctx {
  ds: Dataset;
  work: WorkDir;
  device: Device;
  log: (line: string) => void;
  notes: Set<string>;
  fp: {
    img2img: string | null;
    inpaint: string | null;
    encoder: string | null;
    clip: string | null;
    inception: string | null;
  };
  pipelines: PipelineHolder;
  encoderModel: Autoencoder | null;
}

/** Holds at most one Stable Diffusion pipeline (SD 1.5 is 4 GB; img2img items run before inpainting ones). */
class PipelineHolder {
  private current: { mode: 'img2img' | 'inpaint'; sd: StableDiffusion } | null = null;
  constructor(
    private readonly ds: Dataset,
    private readonly device: Device,
    private readonly log: (l: string) => void,
  ) {}
  async get(mode: 'img2img' | 'inpaint'): Promise<StableDiffusion> {
    if (this.current?.mode === mode) return this.current.sd;
    this.dispose();
    const spec = mode === 'img2img' ? this.ds.models.img2img : this.ds.models.inpaint;
    this.log(`loading the ${mode} pipeline ${spec}`);
    const sd = await loadStableDiffusion(spec, { device: this.device, scheduler: this.ds.edit.scheduler ?? undefined });
    const want = 2 * sd.vae.config.latent_channels + 1;
    if (mode === 'inpaint' && sd.unet.config.in_channels !== want) {
      sd.dispose();
      throw new ImmunizeError(
        'E_DATASET',
        `models.inpaint: ${spec} is not an inpainting pipeline (its UNet has ${sd.unet.config.in_channels} input channels, inpainting needs ${want}); items with a mask are edited by inpainting`,
      );
    }
    if (mode === 'img2img' && sd.unet.config.in_channels !== sd.vae.config.latent_channels) {
      sd.dispose();
      throw new ImmunizeError(
        'E_DATASET',
        `models.img2img: ${spec} has a ${sd.unet.config.in_channels}-channel UNet; items without a mask are edited by img2img, which needs a text-to-image pipeline`,
      );
    }
    this.current = { mode, sd };
    return sd;
  }
  dispose(): void {
    this.current?.sd.dispose();
    this.current = null;
  }
}

async function decodePng(path: string): Promise<Tensor> {
  return (await readImage(path)).tensor;
}

function distance(a: Tensor, b: Tensor): { linf255: number; psnr: number } {
  return noGrad(() =>
    scope(() => {
      const d = a.sub(b);
      const mse = d.square().mean().item();
      return {
        linf255: Math.round(d.abs().max().item() * 255 * 1000) / 1000,
        psnr: mse === 0 ? Infinity : -10 * Math.log10(mse),
      };
    }),
  );
}

/** Runs the protocol; returns the results (the caller writes them and the report). */
export async function evaluate(ds: Dataset, o: EvaluateOptions): Promise<EvaluationResults> {
  const t0 = performance.now();
  const quiet = process.env['IMMUNIZE_QUIET'] === '1';
  const log =
    o.log ??
    ((l: string) => {
      if (!quiet) process.stderr.write(`${l}\n`);
    });
  const device = o.device ?? 'cpu';
  const work = new WorkDir(o.workDir, o.force === true);
  const ctx: Ctx = {
    ds,
    work,
    device,
    log,
    notes: new Set(),
    fp: {
      img2img: modelFingerprint(ds.models.img2img),
      inpaint: modelFingerprint(ds.models.inpaint),
      encoder: modelFingerprint(ds.models.encoder),
      clip: modelFingerprint(ds.models.clip),
      inception: ds.models.inception === null ? null : modelFingerprint(ds.models.inception),
    },
    pipelines: new PipelineHolder(ds, device, log),
    encoderModel: null,
  };
  const items: ItemResult[] = [];
  try {
    // ---- phase 1: images (img2img items first so each pipeline is loaded once) ----
    const order = ds.items
      .map((it, i) => ({ it, i }))
      .sort((a, b) => Number(a.it.mask !== null) - Number(b.it.mask !== null) || a.i - b.i);
    const byIndex = new Map<number, ItemResult>();
    let n = 0;
    for (const { it, i } of order) {
      n++;
      byIndex.set(i, await imagesFor(ctx, it, `[${n}/${ds.items.length}] ${it.id}`));
    }
    items.push(...ds.items.map((_, i) => byIndex.get(i)!));
  } finally {
    ctx.pipelines.dispose();
    ctx.encoderModel?.dispose();
  }

  // ---- phase 2: full-reference metrics against the clean edit ----
  for (const it of items) await metricsFor(ctx, it);

  // ---- phase 3: CLIP image–prompt similarity ----
  await clipFor(ctx, items);

  // ---- methods, variants, aggregates ----
  const methods = [...new Set(items.flatMap((it) => Object.keys(it.inputs)))].sort((a, b) => rank(a) - rank(b));
  const variants: VariantInfo[] = [];
  for (const p of [null, ...ds.purify]) {
    for (const m of methods) {
      if (items.some((it) => it.variants[variantKey(m, p)] !== undefined))
        variants.push({ key: variantKey(m, p), method: m, purification: p });
    }
  }
  const metricNames = Object.keys(FULL_REFERENCE_METRICS);
  const aggregates: Record<string, VariantAggregate> = {};
  for (const v of variants) {
    const rs = items.map((it) => it.variants[v.key]).filter((r): r is VariantResult => r !== undefined);
    aggregates[v.key] = {
      ...v,
      items: rs.length,
      metrics: Object.fromEntries(metricNames.map((m) => [m, summarize(rs.map((r) => r.metrics[m] ?? null))])),
      clip: summarize(rs.map((r) => r.clip)),
      fid: null,
      precision: null,
      recall: null,
    };
  }

  // ---- phase 4: FID and precision/recall over the set ----
  await fidFor(ctx, items, variants, aggregates);

  const datasetBytes = existsSync(ds.path) ? readFileSync(ds.path) : Buffer.from(JSON.stringify(ds.items));
  return {
    tool: { name: 'immunize', protocol: PROTOCOL_VERSION, libtorch: torchInfo().torchVersion, node: process.version },
    createdAt: new Date().toISOString(),
    dataset: { path: ds.path, name: ds.name, sha256: sha256(datasetBytes), items: ds.items.length },
    settings: {
      size: ds.size,
      models: ds.models,
      edit: ds.edit,
      immunize: ds.immunize,
      purify: ds.purify,
      fid: ds.fid,
    },
    methods,
    purifications: ds.purify,
    variants,
    metrics: metricNames.map((name) => ({
      name,
      better: FULL_REFERENCE_METRICS[name]!.better,
      ideal: FULL_REFERENCE_METRICS[name]!.ideal,
    })),
    items,
    aggregates,
    sweeps: sweepFamilies(ds.purify),
    notes: [...ctx.notes],
    work: { dir: work.root, computed: work.computed, cached: work.cached },
    timing: { totalMs: Math.round(performance.now() - t0) },
  };
}

function rank(method: string): number {
  const i = METHOD_ORDER.indexOf(method);
  return i === -1 ? METHOD_ORDER.length : i;
}

/** Looks up an image artifact, or computes, stores and returns it. */
async function imageArtifact(
  ctx: Ctx,
  kind: 'source' | 'immunize' | 'purify' | 'edit',
  parts: Record<string, unknown>,
  what: string,
  compute: () => Promise<{ image: Tensor; meta?: object }>,
): Promise<{ file: string; sha256: string }> {
  const key = ctx.work.key(kind, { protocol: PROTOCOL_VERSION, ...parts });
  const hit = ctx.work.lookup<{ sha256: string }>(key, true);
  if (hit !== null) {
    ctx.work.count(kind, true);
    return { file: ctx.work.png(key), sha256: hit.sha256 };
  }
  const t = performance.now();
  const { image, meta } = await compute();
  const png = await encodeImage(image, { format: 'png' });
  image.dispose();
  const sha = sha256(png);
  ctx.work.store(key, { kind, parts, sha256: sha, ms: Math.round(performance.now() - t), ...(meta ?? {}) }, png);
  ctx.work.count(kind, false);
  ctx.log(`${what} (${((performance.now() - t) / 1000).toFixed(1)} s)`);
  return { file: ctx.work.png(key), sha256: sha };
}

async function imagesFor(ctx: Ctx, it: DatasetItem, label: string): Promise<ItemResult> {
  const { ds } = ctx;
  const S = ds.size;
  const mode = it.mask === null ? 'img2img' : 'inpaint';
  const sourceSha = sha256File(it.image);
  const maskSha = it.mask === null ? null : sha256File(it.mask);
  const before = { ...ctx.work.cached };

  const clean = await imageArtifact(
    ctx,
    'source',
    { image: sourceSha, size: S },
    `${label}: source resized to ${S}×${S}`,
    async () => {
      // Scaled to cover S×S and centre-cropped (the paper evaluates 512×512 squares).
      const img = await readImage(it.image, { width: S, height: S });
      return { image: img.tensor, meta: { from: [img.originalWidth, img.originalHeight] } };
    },
  );
  const x = await decodePng(clean.file);
  const mask = it.mask === null ? null : await readMask(it.mask, S, S);
  const tensors: Tensor[] = [x, ...(mask ? [mask] : [])];
  const result: ItemResult = {
    id: it.id,
    image: it.image,
    mask: it.mask,
    prompt: it.prompt,
    negativePrompt: it.negativePrompt,
    seed: it.seed,
    mode,
    inputs: { clean: { ...clean, origin: 'source', linf255: 0, psnr: Infinity } },
    variants: {},
    skipped: {},
  };
  try {
    const im = ds.immunize;
    const preset = PRESETS[im.preset]!;
    const pgd = { ...preset.options, eps: im.eps, stepSize: im.stepSize, steps: im.steps, seed: im.seed };
    for (const method of ['noise', 'encoder', 'robust', 'diffusion'] as const) {
      if (!im.methods.includes(method)) continue;
      if (it.immunized[method] !== undefined) continue; // a pre-immunized file wins
      if (method === 'diffusion' && mask === null) {
        result.skipped[method] = 'the diffusion attack targets the inpainting pipeline and needs a mask';
        continue;
      }
      const encoderFp = ctx.fp.encoder ?? (mode === 'img2img' ? ctx.fp.img2img : ctx.fp.inpaint);
      const parts =
        method === 'noise'
          ? { method, source: clean.sha256, eps: im.eps, seed: im.seed }
          : method === 'encoder' || method === 'robust'
            ? {
                method,
                source: clean.sha256,
                pgd,
                target: 'gray',
                model: encoderFp,
                ...(method === 'robust' ? { eot: ROBUST_EOT } : {}),
              }
            : {
                method,
                source: clean.sha256,
                mask: maskSha,
                pgd,
                diffusionSteps: im.diffusionSteps,
                gradReps: im.gradReps,
                model: ctx.fp.inpaint,
              };
      const art = await imageArtifact(ctx, 'immunize', parts, `${label}: ${method} immunization`, async () => ({
        image: await immunize(ctx, method, x, mask, mode, pgd, label),
      }));
      result.inputs[method] = { ...art, origin: 'computed', ...(await distanceTo(x, art.file)) };
    }
    for (const [method, file] of Object.entries(it.immunized)) {
      const art = await imageArtifact(
        ctx,
        'source',
        { image: sha256File(file), size: S, immunized: true },
        `${label}: ${method} (pre-immunized file)`,
        async () => {
          const img = await readImage(file, { width: S, height: S });
          if (img.originalWidth !== S || img.originalHeight !== S) {
            ctx.log(
              `warning: ${it.id}: the pre-immunized ${method} file is ${img.originalWidth}×${img.originalHeight}, resized to ${S}×${S}; resizing weakens a perturbation — immunize at the evaluation size`,
            );
          }
          return { image: img.tensor };
        },
      );
      result.inputs[method] = { ...art, origin: 'file', ...(await distanceTo(x, art.file)) };
    }

    // Purified versions, then one edit per variant (same prompt, same seed).
    const editParts = {
      mode,
      mask: maskSha,
      prompt: it.prompt,
      negativePrompt: it.negativePrompt,
      seed: it.seed,
      steps: ds.edit.steps,
      guidance: ds.edit.guidance,
      eta: ds.edit.eta,
      strength: mode === 'img2img' ? ds.edit.strength : null,
      scheduler: ds.edit.scheduler,
      model: mode === 'img2img' ? ctx.fp.img2img : ctx.fp.inpaint,
    };
    for (const purification of [null, ...ds.purify]) {
      for (const [method, input] of Object.entries(result.inputs)) {
        const key = variantKey(method, purification);
        const purified =
          purification === null ? input : await purifyArtifact(ctx, input, purification, mode, `${label}: ${key}`);
        const edit = await imageArtifact(
          ctx,
          'edit',
          { input: purified.sha256, ...editParts },
          `${label}: edit of ${key}`,
          async () => {
            using img = await decodePng(purified.file);
            return { image: await editImage(ctx, img, mask, it, mode, `${it.id} edit ${key}`) };
          },
        );
        result.variants[key] = {
          key,
          method,
          purification,
          input: { file: purified.file, sha256: purified.sha256 },
          edit,
          metrics: {},
          clip: null,
        };
      }
    }
  } finally {
    for (const t of tensors) t.dispose();
  }
  const cachedNow = Object.entries(ctx.work.cached).reduce((a, [k, v]) => a + v - (before[k] ?? 0), 0);
  if (cachedNow > 0) ctx.log(`${label}: ${cachedNow} image(s) reused from the work folder`);
  return result;
}

/**
 * One purified image. An adaptive purifier (impress) works against the model the attack used —
 * the dataset's encoder, or else the editing pipeline's VAE — so that model is part of its key.
 */
async function purifyArtifact(
  ctx: Ctx,
  input: { file: string; sha256: string },
  spec: string,
  mode: 'img2img' | 'inpaint',
  label: string,
): ReturnType<typeof imageArtifact> {
  const p = parsePurification(spec);
  const model = p.needsAutoencoder ? (ctx.fp.encoder ?? (mode === 'img2img' ? ctx.fp.img2img : ctx.fp.inpaint)) : null;
  return imageArtifact(
    ctx,
    'purify',
    { input: input.sha256, spec, ...(model === null ? {} : { model }) },
    label,
    async () => {
      using img = await decodePng(input.file);
      if (!p.needsAutoencoder) return { image: await p.apply(img) };
      using onDevice = img.to(ctx.device);
      using purified = await p.apply(onDevice, { autoencoder: await attackedAutoencoder(ctx, mode) });
      return { image: purified.to('cpu') };
    },
  );
}

/** The autoencoder the encoder attack targets: the dataset's encoder, else the pipeline's VAE. */
async function attackedAutoencoder(ctx: Ctx, mode: 'img2img' | 'inpaint'): Promise<Autoencoder> {
  if (ctx.ds.models.encoder === null) return (await ctx.pipelines.get(mode)).vae;
  ctx.encoderModel ??= await loadAutoencoder(ctx.ds.models.encoder, { device: ctx.device });
  return ctx.encoderModel;
}

async function distanceTo(x: Tensor, file: string): Promise<{ linf255: number; psnr: number }> {
  using y = await decodePng(file);
  return distance(y, x);
}

async function immunize(
  ctx: Ctx,
  method: 'noise' | 'encoder' | 'robust' | 'diffusion',
  x: Tensor,
  mask: Tensor | null,
  mode: 'img2img' | 'inpaint',
  pgd: { eps: number; stepSize: number; steps: number; seed: number } & (typeof PRESETS)[string]['options'],
  label: string,
): Promise<Tensor> {
  if (method === 'noise') return runAttack(x, { method: 'noise', pgd }).adv;
  const xd = x.to(ctx.device);
  try {
    const bar = createProgress({
      label: `${label} ${method === 'robust' ? 'robust encoder' : method} attack`,
      total: pgd.steps,
      unit: 'step',
    });
    const onStep = (s: PgdStep): void => bar.update(s.step, `loss ${s.loss.toFixed(4)}`);
    let r: ImmunizeResult;
    if (method === 'encoder' || method === 'robust') {
      // White-box, as the paper: without a dataset encoder, the VAE of the pipeline that will edit the image.
      const enc: ImageEncoder = asEncoder(await attackedAutoencoder(ctx, mode));
      // robust: `immunize protect --robust jpeg` (EOT over differentiable JPEG, quality 50–95).
      const eot = method === 'robust' ? robustEot(ROBUST_EOT.kind, ROBUST_EOT.samples) : undefined;
      r = runAttack(xd, { method: 'encoder', pgd: { ...pgd, eot }, encoder: enc, target: 'gray', onStep });
      bar.done(`loss ${r.attack!.losses[0]?.toFixed(4)} → ${r.attack!.finalLoss?.toFixed(4)}`);
    } else {
      // The diffusion attack, as `immunize protect --method diffusion`: the dataset's mask is the
      // region the editor repaints, so the perturbation goes where it is black.
      const sd = await ctx.pipelines.get('inpaint');
      const keep = noGrad(() => scope(() => mask!.to(ctx.device).lt(0.5).to('float32')));
      try {
        r = runAttack(xd, {
          method: 'diffusion',
          pgd,
          mask: keep,
          diffusion: {
            pipeline: sd,
            denoiseSteps: ctx.ds.immunize.diffusionSteps,
            gradReps: ctx.ds.immunize.gradReps,
            name: 'inpaint',
          },
          onStep,
        });
      } finally {
        keep.dispose();
      }
      bar.done();
    }
    const out = noGrad(() => r.adv.to('cpu'));
    r.adv.dispose();
    return out;
  } finally {
    if (xd !== x) xd.dispose();
  }
}

async function editImage(
  ctx: Ctx,
  x: Tensor,
  mask: Tensor | null,
  it: DatasetItem,
  mode: 'img2img' | 'inpaint',
  label: string,
): Promise<Tensor> {
  const sd = await ctx.pipelines.get(mode);
  const e = ctx.ds.edit;
  const total = mode === 'img2img' ? Math.min(e.steps, Math.floor(e.steps * e.strength)) : e.steps;
  const bar = createProgress({ label, total, unit: 'step' });
  const common = {
    prompt: it.prompt,
    negativePrompt: it.negativePrompt,
    steps: e.steps,
    guidance: e.guidance,
    eta: e.eta,
    noise: seededNoise(it.seed),
    onStep: (i: number) => bar.update(i),
  };
  const r =
    mode === 'inpaint'
      ? inpaint(sd, x, { ...common, mask: mask! })
      : img2img(sd, x, { ...common, strength: e.strength });
  bar.done();
  const out = noGrad(() => r.image.to('cpu'));
  if (out !== r.image) r.image.dispose();
  return out;
}

/** Every full-reference metric of every variant's edit against the clean edit, one pair at a time (SR-SIM normalises over its batch). */
async function metricsFor(ctx: Ctx, it: ItemResult): Promise<void> {
  const ref = it.variants['clean']!.edit;
  let y: Tensor | null = null;
  try {
    for (const v of Object.values(it.variants)) {
      const key = ctx.work.key('metrics', {
        protocol: PROTOCOL_VERSION,
        x: v.edit.sha256,
        y: ref.sha256,
        metrics: Object.keys(FULL_REFERENCE_METRICS),
      });
      const hit = ctx.work.lookup<{ metrics: Record<string, number | null>; errors: Record<string, string> }>(
        key,
        false,
      );
      if (hit !== null) {
        ctx.work.count('metrics', true);
        v.metrics = Object.fromEntries(
          Object.entries(hit.metrics).map(([k, val]) => [k, val === null ? null : Number(val)]),
        );
        for (const [name, why] of Object.entries(hit.errors))
          ctx.notes.add(`${name}: not computed at ${ctx.ds.size}×${ctx.ds.size} (${why})`);
        continue;
      }
      y ??= await decodePng(ref.file);
      using x = await decodePng(v.edit.file);
      const metrics: Record<string, number | null> = {};
      const errors: Record<string, string> = {};
      for (const [name, info] of Object.entries(FULL_REFERENCE_METRICS)) {
        try {
          metrics[name] = noGrad(() => scope(() => info.fn(x, y!, { reduction: 'none' }).item()));
        } catch (e) {
          metrics[name] = null;
          errors[name] = (e as Error).message.split('\n')[0]!;
          ctx.notes.add(`${name}: not computed at ${ctx.ds.size}×${ctx.ds.size} (${errors[name]})`);
        }
      }
      // JSON has no Infinity: stored as strings, read back with Number().
      ctx.work.store(key, {
        metrics: Object.fromEntries(
          Object.entries(metrics).map(([k, val]) => [k, val !== null && !Number.isFinite(val) ? String(val) : val]),
        ),
        errors,
      });
      ctx.work.count('metrics', false);
      v.metrics = metrics;
    }
  } finally {
    y?.dispose();
  }
}

async function clipFor(ctx: Ctx, items: ItemResult[]): Promise<void> {
  if (ctx.ds.models.clip === null) {
    ctx.notes.add(
      'CLIP image–prompt similarity: skipped (no CLIP model given: --clip-model ID|PATH or models.clip, e.g. openai/clip-vit-large-patch14)',
    );
    return;
  }
  let scorer: CLIPScorer | null = null;
  let computed = 0;
  try {
    for (const it of items) {
      for (const v of Object.values(it.variants)) {
        const key = ctx.work.key('clip', {
          protocol: PROTOCOL_VERSION,
          image: v.edit.sha256,
          prompt: it.prompt,
          model: ctx.fp.clip,
        });
        const hit = ctx.work.lookup<{ cosine: number }>(key, false);
        if (hit !== null) {
          ctx.work.count('clip', true);
          v.clip = hit.cosine;
          continue;
        }
        if (scorer === null) {
          ctx.log(`loading CLIP ${ctx.ds.models.clip}`);
          const loaded = await CLIPScorer.load(ctx.ds.models.clip, { device: ctx.device });
          // Preprocess at the model's own input size (224 for ViT-L/14).
          scorer = new CLIPScorer(loaded.model, loaded.tokenizer, {
            preprocess: { size: loaded.model.config.visionConfig.image_size },
          });
        }
        using img = await decodePng(v.edit.file);
        const s = scorer;
        v.clip = noGrad(() => scope(() => s.similarity(img.to(ctx.device), [it.prompt]).item()));
        ctx.work.store(key, { cosine: v.clip });
        ctx.work.count('clip', false);
        computed++;
      }
    }
  } finally {
    scorer?.dispose();
  }
  if (computed > 0) ctx.log(`CLIP: ${computed} edit(s) scored`);
}

async function fidFor(
  ctx: Ctx,
  items: ItemResult[],
  variants: VariantInfo[],
  aggregates: Record<string, VariantAggregate>,
): Promise<void> {
  if (ctx.ds.models.inception === null) {
    ctx.notes.add(
      'FID and precision/recall: skipped (no Inception checkpoint given: --inception FILE.safetensors or models.inception; docs/metrics.md says how to get it)',
    );
    return;
  }
  const { dims, nearestK } = ctx.ds.fid;
  let net: FIDInceptionV3 | null = null;
  const features = new Map<string, number[]>();
  try {
    for (const it of items) {
      for (const v of Object.values(it.variants)) {
        if (features.has(v.edit.sha256)) continue;
        const key = ctx.work.key('features', {
          protocol: PROTOCOL_VERSION,
          image: v.edit.sha256,
          model: ctx.fp.inception,
          dims,
        });
        const hit = ctx.work.lookup<{ features: number[] }>(key, false);
        if (hit !== null) {
          ctx.work.count('features', true);
          features.set(v.edit.sha256, hit.features);
          continue;
        }
        if (net === null) {
          ctx.log(`loading the FID Inception ${ctx.ds.models.inception}`);
          net = loadFIDInception(ctx.ds.models.inception, { device: ctx.device });
        }
        using img = await decodePng(v.edit.file);
        const n = net;
        const f = noGrad(() =>
          scope(() =>
            Array.from(
              inceptionFeatures(n, img.to(ctx.device), { dims }).to('cpu').to('float64').toTypedArray() as Float64Array,
            ),
          ),
        );
        ctx.work.store(key, { features: f });
        ctx.work.count('features', false);
        features.set(v.edit.sha256, f);
      }
    }
  } finally {
    net?.dispose();
  }
  const matrix = (rows: number[][]): Tensor => tensor(Float64Array.from(rows.flat()), [rows.length, dims]);
  if (items.length < 2 * dims)
    ctx.notes.add(
      `FID over ${items.length} image(s) with ${dims}-d features: the covariances are rank-deficient (FID needs more images than dimensions), so values are biased; compare them only between runs with the same images`,
    );
  for (const v of variants) {
    const its = items.filter((it) => it.variants[v.key] !== undefined);
    if (its.length < 2) {
      ctx.notes.add(`FID/PR for ${v.key}: needs at least 2 items (has ${its.length})`);
      continue;
    }
    const agg = aggregates[v.key]!;
    scope(() => {
      const real = matrix(its.map((it) => features.get(it.variants['clean']!.edit.sha256)!));
      const fake = matrix(its.map((it) => features.get(it.variants[v.key]!.edit.sha256)!));
      try {
        agg.fid = fidFromFeatures(fake, real, { onWarning: (m: string) => ctx.notes.add(`FID ${v.key}: ${m}`) });
      } catch (e) {
        ctx.notes.add(`FID for ${v.key}: ${(e as Error).message.split('\n')[0]}`);
      }
      // k-NN radii need k + 1 points; with few items k shrinks (said in the notes).
      const k = Math.min(nearestK, its.length - 1);
      if (k < nearestK) ctx.notes.add(`precision/recall: k = ${k} instead of ${nearestK} (only ${its.length} items)`);
      const pr = precisionRecall(real.to('float32'), fake.to('float32'), { nearestK: k });
      agg.precision = pr.precision;
      agg.recall = pr.recall;
    });
  }
}
