/**
 * `immunize protect`: immunize photos against AI editing (the encoder attack, or the random-noise
 * baseline). Every photo is protected at its own size and aspect ratio (padded to the model's
 * multiple and cropped back, never squashed or cropped; `--size` downscales only when asked),
 * written losslessly (PNG) with an XMP label saying it was immunized, next to a JSON sidecar with
 * every parameter and the measured results. Batches are resumable: a photo whose output and
 * sidecar exist with the same parameters is skipped.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { asEncoder, encoderAttack, tiledEncoder, type EncoderTarget } from '../attacks/encoder.js';
import { diffusionAttack } from '../attacks/diffusion.js';
import { randomNoise } from '../attacks/noise.js';
import { loadStableDiffusion, type StableDiffusion } from '../pipelines/components.js';
import { prepareMask } from '../pipelines/generate.js';
import { DEFAULT_INPAINT_MODEL } from './edit.js';
import { DEFAULT_PRESET, PRESETS } from '../attacks/presets.js';
import { robustEot } from '../robustness/robust.js';
import { parsePurification } from '../purify/spec.js';
import { checkProtection, DEFAULT_CHECK_SUITE, formatCheck, type ProtectionCheck } from '../robustness/check.js';
import type { Optimizer, PgdOptions, StepSchedule } from '../attacks/pgd.js';
import { ImmunizeError } from '../errors.js';
import { encodeImage, formatFromPath, probeImage, readImage, readMask, type ImageFormat, type ImageProbe } from '../io/images.js';
import { createProgress } from '../io/progress.js';
import { buildImmunizeXmp, type ImmunizeMarker } from '../io/xmp.js';
import { psnr } from '../metrics/psnr.js';
import { ssim } from '../metrics/ssim.js';
import { AutoencoderKL } from '../models/autoencoder-kl.js';
import type { Autoencoder } from '../models/load.js';
import { DEFAULT_MODEL, loadAutoencoder } from '../models/resolve.js';
import { tiled } from '../models/tiling.js';
import { F, checkDevice, getNumThreads, noGrad, scope, setNumThreads, torchInfo, type Device, type Tensor } from '../torch/index.js';
import { parseChoice, parseCommandArgs, parseInteger, parseNumber, UsageError } from './args.js';
import { expandInputs } from './inputs.js';
import { writeAllOrNothing } from './output.js';
import { toolVersion } from './version.js';

/** Default refusal threshold: 40 MP (a 7,700×5,200 photo) — larger images need a lot of memory. */
export const DEFAULT_MAX_PIXELS = 40_000_000;

const HELP = `Usage: immunize protect IMAGE|FOLDER|'GLOB'... [options]

Adds an imperceptible perturbation so that diffusion-model edits of the photo come out
unrealistic (Salman et al. 2023: encoder or diffusion attack). For each photo writes NAME.immunized.png,
labelled as immunized (XMP, see \`immunize inspect\`), and NAME.immunized.json with every parameter
and the measured results, next to the photo (or into --output). Folders contribute their images;
quoted globs ('photos/*.jpg', 'album/**/*.png') are expanded. Photos already immunized with the
same parameters are skipped (--force redoes them).

Options:
  -o, --output PATH        output file (one image) or folder (default: next to each input)
  --method M               encoder (default) | noise (random-noise baseline of the same budget)
                           | diffusion (photoguard's attack through the inpainting pipeline;
                           needs --mask, white = the region to protect; default model
                           ${DEFAULT_INPAINT_MODEL})
  --robust K               jpeg | all: robust immunization (expectation over transforms): every
                           step optimises through a random differentiable JPEG (quality 50–95),
                           or JPEG/resize/blur/noise (all), so that re-saving the photo as JPEG
                           does not remove the protection; same cost per step as without
  --robust-samples N       random transforms averaged per step (default 1; N× the cost)
  --check                  after immunizing, purify the result (JPEG 95…50, WebP, blur, median,
                           resize, rotation, flip, noise) and write NAME.immunized.check.json:
                           how much protection survives each (reconstruction PSNR through the
                           model); with --method noise it needs --model
  --check-suite S,S        purifications for --check (docs/purify.md grammar), comma-separated
  --diffusion-steps N      diffusion: denoising steps back-propagated per pass (default 4)
  --grad-reps N            diffusion: random passes averaged per step (default 1)
  --model ID|PATH          autoencoder to protect against: a Hugging Face repo id, a diffusers
                           folder, a .safetensors file, or TAESD-family weights
                           (default: ${DEFAULT_MODEL}, its vae/ only)
  --preset P               ${Object.entries(PRESETS).map(([k, p]) => `${k}: ${p.description}`).join('\n                           ')}
                           (default: ${DEFAULT_PRESET}; docs/attacks.md lists the sources)
  --eps E                  L∞ budget on [0,1] pixels, 0 < E ≤ 1, e.g. 16/255 (overrides the preset)
  --step-size S            step size, e.g. 2/255
  --steps N                iterations
  --optimizer O            sign | momentum | adam
  --schedule S             constant | linear-decay
  --target T               gray (default) | zeros | PATH of a target image
  --mask PATH              white where the perturbation may go (e.g. faces), black where the
                           photo must stay untouched; same size as the photo
  --invert-mask            the mask is white where an editor would repaint (photoguard's and
                           inpainting's convention): perturb where it is black
  --size N                 downscale so the longer side is N pixels (aspect ratio kept) first;
                           by default photos are protected at their own size
  --tile N                 encode in N×N tiles overlapping by N/4 (large images, less memory;
                           N a multiple of 4 × the model's downscale factor, e.g. 512)
  --max-pixels N           refuse photos larger than N pixels (default ${DEFAULT_MAX_PIXELS / 1e6} MP)
  --seed N                 random seed (default 0): same seed, same result
  --threads N              CPU threads for libtorch (default: all cores)
  --device D               cpu (default) | cuda | cuda:N
  --fp16                   prefer the model's fp16 weights (computation stays float32 on CPU)
  --force                  redo photos whose output and sidecar already exist
  --json                   print one JSON result line per photo instead of a summary
  -h, --help               this help

Keep immunized photos as PNG: JPEG re-compression is what weakens the protection.`;

/** Everything that decides the output's pixels; a sidecar with the same values means "done". */
export interface ProtectParameters {
  method: 'encoder' | 'noise' | 'diffusion';
  model: string | null;
  fp16: boolean;
  diffusionSteps?: number;
  gradReps?: number;
  robust?: { kind: 'jpeg' | 'all'; samples: number };
  preset: string | null;
  eps: number;
  norm: 'linf';
  stepSize: number | null;
  steps: number | null;
  schedule: StepSchedule | null;
  optimizer: Optimizer | null;
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
  input: { path: string; width: number; height: number; format: string; orientation: number; resizedTo: [number, number] | null; alphaFlattened: boolean };
  output: { path: string; sidecar: string; format: ImageFormat; width: number; height: number; xmp: true };
  parameters: ProtectParameters;
  attack: {
    encoders: string[];
    /** Loss before each update (the encoder distance ‖E(x_adv) − z_target‖₂), then `finalLoss` after the last one. */
    losses: number[];
    finalLoss: number | null;
    stepSizes: number[];
    stepsTaken: number;
    stoppedBy: string;
    paddedTo: [number, number] | null;
  } | null;
  /** Measured on the file as written (8-bit, and after JPEG/WebP compression when chosen) against the photo as read. */
  results: {
    linf: number;
    linf255: number;
    l2: number;
    psnr: number;
    ssim: number | null;
    /** The model's own reconstruction decode(encode(·)): clean photo, immunized photo; PSNR in dB. */
    reconstruction: { model: string; cleanPsnr: number; immunizedPsnr: number; immunizedVsOriginalPsnr: number } | null;
  };
  timing: { totalMs: number; attackMs: number; msPerStep: number | null };
  environment: { device: Device; threads: number; libtorch: string; generator: 'cpu'; node: string };
  /** Only in the command's --json output (the file is NAME.immunized.check.json). */
  check?: ProtectionCheck;
}

interface Job {
  input: string;
  output: string;
  sidecar: string;
  probe: ImageProbe | null;
  params: ProtectParameters | null;
  /** Already immunized with these parameters: only run --check on the existing output. */
  checkOnly?: boolean;
}

/** sharp's default limitInputPixels (0x3FFF²): the most any photo may have before decoding. */
const DECODE_LIMIT = 0x3fff * 0x3fff;

/** The size `--size N` gives: the longer side N, aspect ratio kept, never enlarged (as sharp's fit 'inside'). */
function sizeAfterResize(w: number, h: number, size: number | undefined): [number, number] {
  if (size === undefined || Math.max(w, h) <= size) return [w, h];
  return w >= h ? [size, Math.max(1, Math.round((h * size) / w))] : [Math.max(1, Math.round((w * size) / h)), size];
}

/** 48.0 MP, or an exact count below 0.1 MP. */
function pixels(n: number): string {
  return n >= 100_000 ? `${(n / 1e6).toFixed(1)} MP` : `${n} pixels`;
}

function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/** JSON with sorted keys: parameters compare equal however they were written. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v !== null && typeof v === 'object') return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`).join(',')}}`;
  return JSON.stringify(v);
}

const OUTPUT_EXT = /\.(png|jpe?g|webp|tiff?|gif|avif|bmp)$/i;

function outputPathFor(input: string, output: string | undefined, single: boolean): string {
  const name = `${basename(input, extname(input))}.immunized.png`;
  if (output === undefined) return join(dirname(input), name);
  const isDirLike = output.endsWith('/') || (existsSync(output) && statSync(output).isDirectory());
  if (single && !isDirLike && OUTPUT_EXT.test(output)) return output;
  return join(output, name);
}

function sidecarPathFor(output: string): string {
  return output.replace(/\.[^./\\]+$/, '') + '.json';
}

function checkPathFor(output: string): string {
  return output.replace(/\.[^./\\]+$/, '') + '.check.json';
}

/** Pads H and W up to a multiple of `m` by edge replication (cropped back after the attack). */
function padToMultiple(x: Tensor, m: number): { x: Tensor; pad: [number, number] | null } {
  const [, , h, w] = x.shape as [number, number, number, number];
  const ph = (m - (h % m)) % m;
  const pw = (m - (w % m)) % m;
  if (ph === 0 && pw === 0) return { x: x.alias(), pad: null };
  return { x: noGrad(() => F.pad(x, [0, pw, 0, ph], 'replicate')), pad: [ph, pw] };
}

/** The model's reconstruction decode(encode(x)) in [0, 1], on a padded image, tiled like the attack. */
function reconstruct(model: Autoencoder, xPadded: Tensor, tile: number | undefined): Tensor {
  return noGrad(() => scope(() => {
    const kl = model instanceof AutoencoderKL;
    const enc = (t: Tensor): Tensor => (kl ? scope(() => { using d = (model as AutoencoderKL).encode(t.mul(2).sub(1)); return d.mean.alias(); }) : model.encode(t));
    const dec = (z: Tensor): Tensor => (kl ? (model as AutoencoderKL).decode(z).add(1).div(2).clamp(0, 1) : model.decode(z));
    const ds = model.downscale;
    const z = tile === undefined ? enc(xPadded) : tiled(xPadded, enc, 1 / ds, { tile, overlap: tile / 4 });
    return tile === undefined ? dec(z) : tiled(z, dec, ds, { tile: tile / ds, overlap: tile / 4 / ds });
  }));
}

function crop(t: Tensor, h: number, w: number): Tensor {
  return noGrad(() => scope(() => t.narrow(2, 0, h).narrow(3, 0, w).contiguous()));
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

function label(input: string): string {
  return basename(input);
}

export const protect = {
  summary: 'immunize photos against AI editing (PNG labelled as immunized + JSON sidecar)',
  async run(args: string[]): Promise<number> {
    const { values, positionals } = parseCommandArgs({
      args, allowPositionals: true, strict: true,
      options: {
        output: { type: 'string', short: 'o' }, method: { type: 'string' }, model: { type: 'string' }, preset: { type: 'string' },
        eps: { type: 'string' }, 'step-size': { type: 'string' }, steps: { type: 'string' }, optimizer: { type: 'string' },
        schedule: { type: 'string' }, target: { type: 'string' }, mask: { type: 'string' }, size: { type: 'string' }, tile: { type: 'string' }, 'diffusion-steps': { type: 'string' }, 'grad-reps': { type: 'string' },
        robust: { type: 'string' }, 'robust-samples': { type: 'string' }, check: { type: 'boolean' }, 'check-suite': { type: 'string' },
        'max-pixels': { type: 'string' }, seed: { type: 'string' }, threads: { type: 'string' }, device: { type: 'string' },
        fp16: { type: 'boolean' }, force: { type: 'boolean' }, 'invert-mask': { type: 'boolean' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
      },
    });
    if (values.help) {
      console.log(HELP);
      return 0;
    }
    if (positionals.length === 0) throw new UsageError('no input image given (immunize protect IMAGE... ; see --help)');

    // ---- options, all checked before anything is read or loaded ----
    const method = parseChoice('method', values.method, ['encoder', 'noise', 'diffusion'] as const) ?? 'encoder';
    if (method === 'diffusion' && values.mask === undefined) {
      throw new UsageError('--method diffusion needs --mask: white where the photo must be protected (the region an editor would keep), black where it would be repainted');
    }
    const robustKind = parseChoice('robust', values.robust, ['none', 'jpeg', 'all'] as const) ?? 'none';
    if (robustKind !== 'none' && method !== 'encoder') throw new UsageError(`--robust works with --method encoder (the diffusion attack's gradient is computed step by step, without transforms; the noise baseline has none)`);
    const robustSamples = parseInteger('robust-samples', values['robust-samples'], { min: 1, max: 64 }) ?? 1;
    if (values['robust-samples'] !== undefined && robustKind === 'none') throw new UsageError('--robust-samples needs --robust jpeg|all');
    if (values['check-suite'] !== undefined && !values.check) throw new UsageError('--check-suite needs --check');
    const checkSuite = values['check-suite'] === undefined ? DEFAULT_CHECK_SUITE : values['check-suite'].split(',').map((t) => t.trim()).filter((t) => t !== '');
    if (values.check) {
      for (const spec of checkSuite) {
        try { parsePurification(spec); } catch (e) { throw new UsageError(`--check-suite: ${(e as Error).message}`); }
      }
      if (method === 'noise' && values.model === undefined) throw new UsageError('--check with --method noise needs --model: the protection is measured through a model (e.g. --model ../shared/models/taef2-hf)');
    }
    const diffusionSteps = parseInteger('diffusion-steps', values['diffusion-steps'], { min: 1, max: 1000 }) ?? 4;
    const gradReps = parseInteger('grad-reps', values['grad-reps'], { min: 1, max: 1000 }) ?? 1;
    const presetName = values.preset ?? DEFAULT_PRESET;
    const preset = PRESETS[presetName];
    if (preset === undefined) throw new UsageError(`--preset: expected one of ${Object.keys(PRESETS).join(', ')} but received '${presetName}'`);
    const device = checkDevice(values.device ?? 'cpu');
    const eps = parseNumber('eps', values.eps) ?? preset.options.eps;
    if (!(eps > 0 && eps <= 1)) throw new UsageError(`--eps: must be greater than 0 and at most 1 (an L∞ budget on [0,1] pixels, e.g. 16/255) but received ${values.eps}`);
    const stepSize = parseNumber('step-size', values['step-size']) ?? preset.options.stepSize;
    if (!(stepSize > 0 && stepSize <= 1)) throw new UsageError(`--step-size: must be greater than 0 and at most 1 (e.g. 2/255) but received ${values['step-size']}`);
    const options: PgdOptions = {
      ...preset.options,
      eps,
      stepSize,
      steps: parseInteger('steps', values.steps, { min: 1, max: 1_000_000 }) ?? preset.options.steps,
      optimizer: parseChoice<Optimizer>('optimizer', values.optimizer, ['sign', 'momentum', 'adam']) ?? preset.options.optimizer,
      schedule: parseChoice<StepSchedule>('schedule', values.schedule, ['constant', 'linear-decay']) ?? preset.options.schedule,
      seed: parseInteger('seed', values.seed, { min: 0, max: Number.MAX_SAFE_INTEGER }) ?? 0,
      ...(robustKind === 'none' ? {} : { eot: robustEot(robustKind, robustSamples) }),
    };
    const size = parseInteger('size', values.size, { min: 8, max: 65_536 });
    const tile = parseInteger('tile', values.tile, { min: 32, max: 65_536 });
    const maxPixels = parseInteger('max-pixels', values['max-pixels'], { min: 1 }) ?? DEFAULT_MAX_PIXELS;
    const threads = parseInteger('threads', values.threads, { min: 1, max: 4096 });
    if (threads !== undefined) setNumThreads(threads);
    const targetArg = values.target ?? 'gray';
    if (targetArg !== 'gray' && targetArg !== 'zeros' && !existsSync(targetArg)) throw new UsageError(`--target: expected gray, zeros or an image path, but '${targetArg}' does not exist`);
    if (method === 'diffusion' && targetArg === 'zeros') throw new UsageError('--target zeros is a latent target, for --method encoder; the diffusion attack aims its edit at an image: gray (default) or an image path');
    if (values.mask !== undefined && !existsSync(values.mask)) throw new UsageError(`--mask: file not found: ${values.mask}`);

    // ---- inputs and outputs ----
    const { files, notes } = expandInputs(positionals);
    for (const n of notes) process.stderr.write(`note: ${n}\n`);
    const single = files.length === 1 && positionals.length === 1 && !(existsSync(positionals[0]!) && statSync(positionals[0]!).isDirectory());
    if (values.output !== undefined && !single && OUTPUT_EXT.test(values.output) && !(existsSync(values.output) && statSync(values.output).isDirectory())) {
      throw new UsageError(`--output: with several inputs give a folder, not a file name (${values.output})`);
    }
    const jobs: Job[] = files.map((input) => {
      const output = resolve(outputPathFor(input, values.output, single));
      return { input, output, sidecar: sidecarPathFor(output), probe: null, params: null };
    });
    const format = formatFromPath(jobs[0]!.output);
    const byOutput = new Map<string, string>();
    const inputs = new Set(jobs.map((j) => resolve(j.input)));
    for (const j of jobs) {
      if (inputs.has(j.output)) throw new UsageError(`refusing to overwrite an input photo: ${j.output} (choose another --output)`);
      const other = byOutput.get(j.output);
      if (other !== undefined) throw new UsageError(`${other} and ${j.input} would both be written to ${j.output}; protect them into different folders`);
      byOutput.set(j.output, j.input);
    }
    if (format !== 'png') {
      process.stderr.write(`warning: writing ${format === 'jpeg' ? 'JPEG' : 'WebP'} as asked (${basename(jobs[0]!.output)}), but lossy re-compression weakens the protection: it discards exactly the small high-frequency perturbation that immunization adds (Salman et al. 2023, §5). The sidecar reports L∞/PSNR of the file as written. Use .png to keep the protection intact.\n`);
    }

    const modelSpec = method === 'encoder' ? (values.model ?? DEFAULT_MODEL) : method === 'diffusion' ? (values.model ?? DEFAULT_INPAINT_MODEL) : (values.model ?? null);
    const modelId = modelSpec === null ? null : existsSync(modelSpec) ? resolve(modelSpec) : modelSpec;
    if (values['invert-mask'] && values.mask === undefined) throw new UsageError('--invert-mask needs --mask');
    const maskInfo = values.mask === undefined ? null : { path: resolve(values.mask), sha256: sha256File(values.mask), inverted: values['invert-mask'] === true };
    const target: ProtectParameters['target'] = method === 'noise' ? null : targetArg === 'gray' || targetArg === 'zeros' ? targetArg : { path: resolve(targetArg), sha256: sha256File(targetArg) };
    const maskProbe = values.mask === undefined ? null : await probeImage(values.mask);

    // ---- preflight: every photo readable, small enough, mask of its size; resumable skip ----
    let failures = 0;
    const fail = (job: Job, e: unknown): void => {
      failures++;
      const err = e instanceof ImmunizeError ? e : new ImmunizeError('E_INTERNAL', (e as Error).message ?? String(e));
      if (single) throw err;
      const msg = err.message.includes(job.input) ? err.message : `${job.input}: ${err.message}`;
      process.stderr.write(`immunize protect: ${msg} [${err.code}]\n`);
    };
    const todo: Job[] = [];
    let skipped = 0;
    for (const job of jobs) {
      try {
        if (statSync(job.input).size === 0) throw new ImmunizeError('E_IMAGE', `${job.input}: the file is empty (0 bytes)`);
        const p = await probeImage(job.input);
        if (p.width * p.height > DECODE_LIMIT) {
          throw new ImmunizeError('E_IMAGE_TOO_LARGE', `${job.input}: ${p.width}×${p.height} = ${pixels(p.width * p.height)} is more than can be decoded safely (${pixels(DECODE_LIMIT)}, sharp's decompression-bomb limit)`);
        }
        const [ew, eh] = sizeAfterResize(p.width, p.height, size);
        if (ew * eh > maxPixels) {
          throw new ImmunizeError('E_IMAGE_TOO_LARGE', `${job.input}: ${ew}×${eh} = ${pixels(ew * eh)} is over the limit of ${pixels(maxPixels)} (--max-pixels); downscale it with --size, or raise --max-pixels if this machine has the memory`);
        }
        if (maskProbe !== null && (maskProbe.width !== p.width || maskProbe.height !== p.height)) {
          throw new ImmunizeError('E_IMAGE_SIZE', `the mask ${values.mask} is ${maskProbe.width}×${maskProbe.height} but the photo ${job.input} is ${p.width}×${p.height}; they must have the same size`);
        }
        job.probe = p;
        const attacking = method !== 'noise';
        job.params = {
          method, model: modelId, fp16: values.fp16 === true, preset: attacking ? presetName : null,
          ...(method === 'diffusion' ? { diffusionSteps, gradReps } : {}),
          ...(robustKind === 'none' ? {} : { robust: { kind: robustKind, samples: robustSamples } }),
          eps: options.eps, norm: 'linf',
          stepSize: attacking ? options.stepSize : null, steps: attacking ? options.steps : null,
          schedule: attacking ? options.schedule ?? 'constant' : null, optimizer: attacking ? options.optimizer ?? 'sign' : null,
          randomStart: attacking ? options.randomStart === true : null, seed: options.seed!,
          target, mask: maskInfo, size: size ?? null, tile: tile ?? null, device, format, quality: format === 'png' ? null : 95,
          inputSha256: sha256File(job.input),
        };
        if (!values.force && existsSync(job.output) && existsSync(job.sidecar)) {
          let previous: ProtectSidecar | null = null;
          try { previous = JSON.parse(readFileSync(job.sidecar, 'utf8')) as ProtectSidecar; } catch { /* unreadable: redo */ }
          if (previous !== null && canonical(previous.parameters) === canonical(job.params)) {
            if (values.check && !existsSync(checkPathFor(job.output))) {
              process.stderr.write(`${job.input}: already immunized with the same parameters; running only --check\n`);
              job.checkOnly = true;
              todo.push(job);
              continue;
            }
            skipped++;
            if (values.json) console.log(JSON.stringify({ ...previous, skipped: true }));
            else process.stderr.write(`skip ${job.input}: already immunized with the same parameters (${job.output}; --force to redo)\n`);
            continue;
          }
        }
        todo.push(job);
      } catch (e) {
        fail(job, e);
      }
    }

    // ---- the work ----
    let model: Autoencoder | null = null;
    let sd: StableDiffusion | null = null;
    const info = torchInfo();
    let done = 0;
    try {
      if (todo.length > 0 && method === 'diffusion') {
        sd = await loadStableDiffusion(modelSpec!, { device, variant: values.fp16 ? 'fp16' : undefined });
        if (sd.unet.config.in_channels !== 2 * sd.vae.config.latent_channels + 1) throw new UsageError(`--method diffusion needs an inpainting pipeline (9-channel UNet); ${modelSpec} has ${sd.unet.config.in_channels} input channels`);
      } else if (todo.length > 0 && modelSpec !== null) {
        model = await loadAutoencoder(modelSpec, { device, variant: values.fp16 ? 'fp16' : undefined });
        if (tile !== undefined && tile % (4 * model.downscale) !== 0) throw new UsageError(`--tile: ${tile} must be a multiple of ${4 * model.downscale} for this model (4 × its downscale factor ${model.downscale})`);
      }
      const encoder = model === null ? null : tile === undefined ? asEncoder(model) : tiledEncoder(asEncoder(model), model.downscale, { tile, overlap: tile / 4 });
      for (const job of todo) {
        try {
          const result = await protectOne(job, { method, sd, diffusionSteps, gradReps, checkSuite: values.check ? checkSuite : null, options, size, maxPixels, tile, device, format, model, encoder, targetArg, maskPath: values.mask, presetName, threads: getNumThreads(), libtorch: info.torchVersion });
          done++;
          if (values.json) console.log(JSON.stringify(result));
          else {
            const r = result.results;
            const loss = result.attack ? `, loss ${result.attack.losses[0]?.toFixed(3)} → ${result.attack.finalLoss?.toFixed(3)}` : '';
            const rec = r.reconstruction ? `, reconstruction ${r.reconstruction.cleanPsnr.toFixed(1)} → ${r.reconstruction.immunizedVsOriginalPsnr.toFixed(1)} dB` : '';
            if (!job.checkOnly) console.log(`${job.input} → ${job.output}  (L∞ ${r.linf255.toFixed(1)}/255, PSNR ${r.psnr.toFixed(2)} dB, SSIM ${r.ssim?.toFixed(4) ?? 'n/a'}${loss}${rec}, ${(result.timing.totalMs / 1000).toFixed(1)} s)`);
            if (result.check) console.log(`${formatCheck(result.check)}\n  → ${checkPathFor(job.output)}`);
          }
        } catch (e) {
          fail(job, e);
        }
      }
    } finally {
      model?.dispose();
      sd?.dispose();
    }
    if (jobs.length > 1 && !values.json) process.stderr.write(`${done} immunized, ${skipped} skipped (already done), ${failures} failed\n`);
    return failures === 0 ? 0 : 1;
  },
};

interface OneOptions {
  method: 'encoder' | 'noise' | 'diffusion';
  sd: StableDiffusion | null;
  diffusionSteps: number;
  gradReps: number;
  /** Purifications of --check, or null. */
  checkSuite: readonly string[] | null;
  options: PgdOptions;
  size: number | undefined;
  maxPixels: number;
  tile: number | undefined;
  device: Device;
  format: ImageFormat;
  model: Autoencoder | null;
  encoder: ReturnType<typeof asEncoder> | null;
  targetArg: string;
  maskPath: string | undefined;
  presetName: string;
  threads: number;
  libtorch: string;
}

async function protectOne(job: Job, o: OneOptions): Promise<ProtectSidecar> {
  const t0 = performance.now();
  const createdAt = creationDate();
  const probe = job.probe!;
  const img = await readImage(job.input, { maxPixels: o.size === undefined ? o.maxPixels : DECODE_LIMIT, ...(o.size === undefined ? {} : { width: o.size, height: o.size, fit: 'inside' as const, withoutEnlargement: true }) });
  const tensors: Tensor[] = [img.tensor];
  try {
    const resized = img.width !== probe.width || img.height !== probe.height;
    if (resized) process.stderr.write(`note: ${label(job.input)}: resized from ${probe.width}×${probe.height} to ${img.width}×${img.height} as --size ${o.size} asked; the output has the new size\n`);
    if (img.hadAlpha) process.stderr.write(`note: ${label(job.input)}: has an alpha channel; flattened onto white (the output has none)\n`);
    if (probe.pages > 1) process.stderr.write(`note: ${label(job.input)}: ${probe.pages} frames; only the first is protected\n`);
    const maskRead = o.maskPath === undefined ? null : await readMask(o.maskPath, img.width, img.height, { exact: !resized });
    const mask = maskRead !== null && job.params!.mask?.inverted ? noGrad(() => scope(() => maskRead.neg().add(1))) : maskRead;
    if (maskRead !== null && maskRead !== mask) maskRead.dispose();
    if (mask) tensors.push(mask);
    let targetImage: Tensor | null = null;
    if (o.method !== 'noise' && o.targetArg !== 'gray' && o.targetArg !== 'zeros') {
      targetImage = (await readImage(o.targetArg, { maxPixels: o.maxPixels, width: img.width, height: img.height })).tensor;
      tensors.push(targetImage);
    }

    const m = o.sd !== null ? 8 : o.model?.downscale ?? 1;
    // On the attack's device, padded to the model's multiple (views and copies freed by the scope).
    const prepare = (t: Tensor): Tensor => noGrad(() => scope(() => padToMultiple(t.to(o.device), m).x));
    const padH = (m - (img.height % m)) % m;
    const padW = (m - (img.width % m)) % m;
    const pad: [number, number] | null = padH === 0 && padW === 0 ? null : [padH, padW];
    const xp = prepare(img.tensor);
    tensors.push(xp);
    const maskP = mask === null ? null : prepare(mask);
    if (maskP) tensors.push(maskP);
    const targetP = targetImage === null ? null : prepare(targetImage);
    if (targetP) tensors.push(targetP);
    if (pad) process.stderr.write(`note: ${label(job.input)}: ${img.width}×${img.height} is not a multiple of ${m}; padded to ${img.width + pad[1]}×${img.height + pad[0]} for the model and cropped back\n`);

    // --check: the written photo and the original through the suite, measured by the model.
    const checkModel: Autoencoder | null = o.model ?? o.sd?.vae ?? null;
    const runCheck = async (written: Tensor): Promise<ProtectionCheck> => {
      const bar = createProgress({ label: `${label(job.input)} check`, total: o.checkSuite!.length, unit: 'step' });
      const rec = (t: Tensor): Tensor => scope(() => crop(reconstruct(checkModel!, prepare(t), o.tile), img.height, img.width).to('cpu'));
      const c = await checkProtection(rec, img.tensor, written, { model: job.params!.model ?? 'model', suite: o.checkSuite!, onProgress: (d, _n, spec) => bar.update(d, spec) });
      bar.done();
      return c;
    };
    if (job.checkOnly) {
      const written = (await readImage(job.output, { maxPixels: Number.MAX_SAFE_INTEGER })).tensor;
      tensors.push(written);
      const check = await runCheck(written);
      writeAllOrNothing([{ path: checkPathFor(job.output), data: JSON.stringify(check, null, 2) + '\n' }]);
      const previous = JSON.parse(readFileSync(job.sidecar, 'utf8')) as ProtectSidecar;
      return { ...previous, check };
    }

    let adv: Tensor;
    let attack: ProtectSidecar['attack'] = null;
    const ta = performance.now();
    if (o.method === 'noise') {
      adv = randomNoise(xp, { eps: o.options.eps, seed: o.options.seed, mask: maskP });
    } else if (o.method === 'diffusion') {
      // Our mask is white where the perturbation goes (the kept region); photoguard's is the
      // region the editor repaints. Its attack works on the masked image in [-1, 1], so the
      // [0, 1] budget and step double there; the repainted region keeps the original pixels.
      const repaint = noGrad(() => scope(() => maskP!.lt(0.5).to('float32')));
      tensors.push(repaint);
      const masked = noGrad(() => prepareMask(xp, repaint).masked);
      tensors.push(masked);
      // photoguard's target is a gray image: zeros on the [-1, 1] scale.
      const target = targetP === null ? undefined : noGrad(() => targetP.mul(2).sub(1));
      if (target) tensors.push(target);
      const bar = createProgress({ label: label(job.input), total: o.options.steps, unit: 'step' });
      const r = diffusionAttack(o.sd!, masked, repaint, {
        ...o.options, eps: 2 * o.options.eps, stepSize: 2 * o.options.stepSize, randomStart: false, denoiseSteps: o.diffusionSteps, gradReps: o.gradReps,
        guidance: 7.5, eta: 1, prompt: '', target, onStep: (s) => bar.update(s.step, `loss ${s.loss.toFixed(4)}`),
      });
      bar.done();
      adv = noGrad(() => scope(() => xp.where(repaint.gt(0.5), r.adv.div(2).add(0.5).clamp(0, 1))));
      r.adv.dispose();
      attack = { encoders: [`${job.params!.model} (inpainting, ${o.diffusionSteps} steps × ${o.gradReps} passes)`], losses: r.losses, finalLoss: r.losses.at(-1) ?? NaN, stepSizes: r.stepSizes, stepsTaken: r.stepsTaken, stoppedBy: r.stoppedBy, paddedTo: pad ? [img.width + pad[1], img.height + pad[0]] : null };
    } else {
      const bar = createProgress({ label: label(job.input), total: o.options.steps, unit: 'step' });
      const target: EncoderTarget = targetP ?? (o.targetArg as 'gray' | 'zeros');
      const r = encoderAttack(o.encoder!, xp, { ...o.options, mask: maskP, target, onStep: (s) => bar.update(s.step, `loss ${s.loss.toFixed(4)}`) });
      bar.done(`loss ${r.losses[0]?.toFixed(4)} → ${r.finalLoss.toFixed(4)}`);
      adv = r.adv;
      attack = { encoders: r.encoders, losses: r.losses, finalLoss: r.finalLoss, stepSizes: r.stepSizes, stepsTaken: r.stepsTaken, stoppedBy: r.stoppedBy, paddedTo: pad ? [img.width + pad[1], img.height + pad[0]] : null };
    }
    tensors.push(adv);
    const attackMs = performance.now() - ta;
    const cropped = noGrad(() => scope(() => crop(adv, img.height, img.width).to('cpu')));
    tensors.push(cropped);

    const marker: ImmunizeMarker = {
      tool: 'immunize', toolVersion: toolVersion(), method: o.method, eps: o.options.eps, norm: 'linf',
      // Only a repo id or a file name: an absolute local path would leak the user's folders.
      model: job.params!.model === null ? null : existsSync(job.params!.model) ? basename(job.params!.model) : job.params!.model,
      preset: o.method !== 'noise' ? o.presetName : null, steps: o.method !== 'noise' ? o.options.steps : 0,
      stepsTaken: attack?.stepsTaken ?? 0, stepSize: o.method !== 'noise' ? o.options.stepSize : null,
      optimizer: o.method !== 'noise' ? o.options.optimizer ?? 'sign' : null, seed: o.options.seed ?? 0,
      masked: mask !== null, date: createdAt,
    };
    const bytes = await encodeImage(cropped, { format: o.format, xmp: buildImmunizeXmp(marker), warn: () => { /* warned once, up front */ } });

    // Measure what was written: the 8-bit (and, for JPEG, re-compressed) file anyone downloading it gets.
    const written = (await readImage(bytes, { maxPixels: Number.MAX_SAFE_INTEGER })).tensor;
    tensors.push(written);
    const original = img.tensor;
    const { linf, l2 } = noGrad(() => scope(() => {
      const d = written.sub(original);
      return { linf: d.abs().max().item(), l2: d.norm().item() };
    }));
    const ssimValue = Math.min(img.width, img.height) >= 11 ? ssim(written, original) : null;

    let reconstruction: ProtectSidecar['results']['reconstruction'] = null;
    if (o.model !== null) {
      const recClean = scope(() => crop(reconstruct(o.model!, xp, o.tile), img.height, img.width).to('cpu'));
      tensors.push(recClean);
      const recImm = scope(() => crop(reconstruct(o.model!, prepare(written), o.tile), img.height, img.width).to('cpu'));
      tensors.push(recImm);
      reconstruction = {
        model: job.params!.model!,
        cleanPsnr: psnr(recClean, original),
        immunizedPsnr: psnr(recImm, written),
        immunizedVsOriginalPsnr: psnr(recImm, original),
      };
    }

    const totalMs = performance.now() - t0;
    const sidecar: ProtectSidecar = {
      tool: { name: 'immunize', version: toolVersion() },
      createdAt,
      input: { path: resolve(job.input), width: probe.width, height: probe.height, format: probe.format, orientation: probe.orientation, resizedTo: resized ? [img.width, img.height] : null, alphaFlattened: img.hadAlpha },
      output: { path: job.output, sidecar: job.sidecar, format: o.format, width: img.width, height: img.height, xmp: true },
      parameters: job.params!,
      attack,
      results: { linf, linf255: linf * 255, l2, psnr: psnr(written, original), ssim: ssimValue, reconstruction },
      timing: { totalMs: Math.round(totalMs), attackMs: Math.round(attackMs), msPerStep: attack && attack.stepsTaken > 0 ? Math.round(attackMs / attack.stepsTaken) : null },
      environment: { device: o.device, threads: o.threads, libtorch: o.libtorch, generator: 'cpu', node: process.version },
    };
    const check = o.checkSuite === null ? null : await runCheck(written);
    writeAllOrNothing([
      { path: job.output, data: bytes }, { path: job.sidecar, data: JSON.stringify(sidecar, null, 2) + '\n' },
      ...(check === null ? [] : [{ path: checkPathFor(job.output), data: JSON.stringify(check, null, 2) + '\n' }]),
    ]);
    return check === null ? sidecar : { ...sidecar, check };
  } finally {
    for (const t of tensors) t.dispose();
  }
}
