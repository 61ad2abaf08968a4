/**
 * `immunize purify`: what the adversary does before editing — re-compress, blur, resize, … an
 * (immunized) image, to see what survives of the protection. Every output is PNG (a lossy save
 * would be one more purification: put `jpeg:Q` in the chain instead) and is written whole or not
 * at all; every input and the spec are checked before anything is written.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { ImmunizeError } from '../errors.js';
import { encodeImage, probeImage, readImage } from '../io/images.js';
import type { Autoencoder } from '../models/load.js';
import { loadAutoencoder } from '../models/resolve.js';
import { parsePurification, PURIFICATION_NAMES, type Purification } from '../purify/spec.js';
import { noGrad, scope, setNumThreads } from '../torch/index.js';
import { defineCommand, flags, parseInteger } from './args.js';
import { UsageError } from '../errors.js';
import { expandGlob, hasGlobMagic, isImageName } from './inputs.js';
import { writeAllOrNothing } from '../io/atomic.js';

const HELP = `Usage: immunize purify IMAGE... --apply SPEC [-o OUT] [options]

Applies the purifications an adversary would use (JPEG re-compression, blur, resizing, …) to
each image and saves the result as PNG, e.g. to check what survives of an immunization:
  immunize purify photo.immunized.png --apply jpeg:75 -o photo.jpeg75.png
  immunize purify 'protected/*.png' --apply 'jpeg:75+blur:1' -o purified/

IMAGE may be a file, a folder (its images) or a quoted glob. Outputs are never partial: all
inputs and the spec are checked first, and each PNG appears only once it is completely written.

Options:
  --apply SPEC        the purification chain (required): steps joined by '+', see below
  -o, --output PATH   a .png file (one input) or a folder (default: next to each input,
                      NAME.purified.png; a folder is assumed for a path ending in '/')
  --model ID|PATH     the autoencoder 'impress' steps purify against (a diffusers folder or
                      repo id, a TAESD-family folder or .safetensors file); needed by them only
  --threads N         CPU threads (default: all cores)
  --json              print one JSON line per image (input, output, spec, PSNR to the input)
  -h, --help          this help

Purifications (numbers may be fractions, e.g. 8/255; docs/purify.md has the details):
  jpeg:Q[:mozjpeg][:444]     real JPEG at quality 1–100 through sharp (libjpeg-turbo settings
                             and 4:2:0 by default; mozjpeg's trellis and tables; 4:4:4 chroma)
  webp:Q                     real lossy WebP at quality 1–100
  diffjpeg:Q[:cubic][:444]   the differentiable JPEG (straight-through or cubic rounding)
  blur:SIGMA[:K]             Gaussian blur (K odd, default 2·ceil(3σ)+1), reflect padding
  median:K                   median filter K×K
  resize:S[:bilinear|bicubic|lanczos]   down by S in (0, 1] and back up (default bicubic)
  rotate:DEG                 rotate counter-clockwise about the centre, black corners
  hflip, vflip               mirror
  crop:F                     keep the central fraction F of each side, scale back up
  noise:gaussian:SIGMA[:SEED], noise:uniform:A[:SEED]   add noise (seed default 0), clamp
  impress[:STEPS][:ssim]     IMPRESS-style purifier: make the image consistent for --model's
                             autoencoder, staying close (L2, or SSIM) to the input (50 steps)
  none                       copy (a baseline)`;

export interface PurifyResult {
  input: string;
  output: string;
  spec: string;
  width: number;
  height: number;
  /** PSNR of the purified image against the input, in dB (Infinity when unchanged). */
  psnrDb: number;
}

/** Files, folders (their images, not earlier purify outputs) and glob patterns → image files. */
function expand(args: readonly string[]): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  const add = (p: string): void => {
    if (!seen.has(resolve(p))) {
      seen.add(resolve(p));
      out.push(p);
    }
  };
  const isOwnOutput = (p: string): boolean => /\.purified\.png$/i.test(p);
  for (const arg of args) {
    if (existsSync(arg)) {
      if (statSync(arg).isDirectory()) {
        const images = readdirSync(arg)
          .filter((n) => !n.startsWith('.') && isImageName(n) && !isOwnOutput(n))
          .sort()
          .map((n) => join(arg, n));
        if (images.length === 0) throw new UsageError(`${arg}: the folder has no images`);
        images.forEach(add);
      } else add(arg);
    } else if (hasGlobMagic(arg)) {
      const images = expandGlob(arg).filter((p) => isImageName(p) && !isOwnOutput(p));
      if (images.length === 0) throw new UsageError(`'${arg}' matches no images`);
      images.forEach(add);
    } else throw new UsageError(`input image not found: ${arg}`);
  }
  return out;
}

/** Where each input's result goes; refuses ambiguous or colliding outputs. */
function outputsFor(inputs: readonly string[], output: string | undefined): string[] {
  const asFolder =
    output !== undefined && (/[\\/]$/.test(output) || (existsSync(output) && statSync(output).isDirectory()));
  if (output !== undefined && !asFolder) {
    if (inputs.length > 1)
      throw new UsageError(`-o ${output}: with ${inputs.length} inputs, -o must be a folder (end it with '/')`);
    if (extname(output).toLowerCase() !== '.png')
      throw new UsageError(
        `-o ${output}: the output must be a .png file (purified images are saved losslessly; add 'jpeg:Q' to --apply for a JPEG-compressed result)`,
      );
  }
  const outs = inputs.map((p) => {
    if (output !== undefined && !asFolder) return resolve(output);
    const name = `${basename(p, extname(p))}.purified.png`;
    return resolve(asFolder ? output! : dirname(p), name);
  });
  const seen = new Map<string, string>();
  outs.forEach((o, i) => {
    const prev = seen.get(o);
    if (prev !== undefined)
      throw new UsageError(
        `${prev} and ${inputs[i]} would both be written to ${o}; purify them into different folders`,
      );
    if (o === resolve(inputs[i]!))
      throw new UsageError(`${inputs[i]}: the output would overwrite the input; choose another -o`);
    seen.set(o, inputs[i]!);
  });
  return outs;
}

export const command = defineCommand({
  summary: "apply an adversary's purifications (JPEG, blur, resize, …) to images, save PNG",
  help: HELP,
  options: flags({ values: 'output apply threads model', switches: 'json' }),
  async run({ values, positionals }) {
    if (values.apply === undefined)
      throw new UsageError(
        `--apply is required, e.g. --apply 'jpeg:75+blur:1' (purifications: ${PURIFICATION_NAMES.join(', ')}; see --help)`,
      );
    if (positionals.length === 0)
      throw new UsageError('give at least one input image (immunize purify IMAGE... --apply SPEC; see --help)');
    let chain: Purification;
    try {
      chain = parsePurification(values.apply);
    } catch (e) {
      if (e instanceof ImmunizeError) throw new UsageError(`--apply: ${e.message}`);
      throw e;
    }
    if (chain.needsAutoencoder && values.model === undefined)
      throw new UsageError(
        `--apply '${chain.spec}': 'impress' needs --model ID|PATH (the autoencoder to purify against, e.g. a TAESD-family folder)`,
      );
    if (!chain.needsAutoencoder && values.model !== undefined)
      throw new UsageError(`--model is used only by 'impress' steps, and --apply '${chain.spec}' has none`);
    const threads = parseInteger('threads', values.threads, { min: 1, max: 1024 });
    if (threads !== undefined) setNumThreads(threads);
    const inputs = expand(positionals);
    const outputs = outputsFor(inputs, values.output);
    // Every input must be a readable image before anything is written.
    for (const p of inputs) await probeImage(p);
    const autoencoder = values.model === undefined ? undefined : await loadAutoencoder(values.model);
    try {
      await purifyAll(chain, inputs, outputs, autoencoder, values.json === true);
    } finally {
      autoencoder?.dispose();
    }
    return 0;
  },
});

/** Purifies each input in turn; each output is written whole or not at all. */
async function purifyAll(
  chain: Purification,
  inputs: readonly string[],
  outputs: readonly string[],
  autoencoder: Autoencoder | undefined,
  json: boolean,
): Promise<void> {
  for (let i = 0; i < inputs.length; i++) {
    const input = inputs[i]!;
    const img = await readImage(input);
    let result: PurifyResult;
    try {
      const y = await chain.apply(img.tensor, autoencoder === undefined ? {} : { autoencoder });
      try {
        const mse = noGrad(() => scope(() => y.sub(img.tensor).square().mean().item()));
        const bytes = await encodeImage(y, { format: 'png' });
        writeAllOrNothing([{ path: outputs[i]!, data: bytes }]);
        result = {
          input: resolve(input),
          output: outputs[i]!,
          spec: chain.spec,
          width: img.width,
          height: img.height,
          psnrDb: mse === 0 ? Infinity : 10 * Math.log10(1 / mse),
        };
      } finally {
        y.dispose();
      }
    } finally {
      img.tensor.dispose();
    }
    if (json)
      console.log(
        JSON.stringify({ ...result, psnrDb: Number.isFinite(result.psnrDb) ? Number(result.psnrDb.toFixed(3)) : null }),
      );
    else if (process.env['IMMUNIZE_QUIET'] !== '1')
      console.log(
        `${input} → ${result.output}  (${chain.spec}, PSNR ${Number.isFinite(result.psnrDb) ? result.psnrDb.toFixed(2) : '∞'} dB)`,
      );
  }
}
