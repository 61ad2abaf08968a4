/** `immunize edit`: what the adversary does — edit a photo with Stable Diffusion (img2img, or inpainting with --mask). */
import { existsSync, statSync } from 'node:fs';
import { writeFileAtomic } from '../io/atomic.js';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { encodeImage, readImage, readMask } from '../io/images.js';
import { createProgress } from '../io/progress.js';
import { loadStableDiffusion } from '../pipelines/components.js';
import { img2img, inpaint } from '../pipelines/generate.js';
import { seededNoise } from '../pipelines/noise.js';
import { SCHEDULER_NAMES, type SchedulerName } from '../schedulers/index.js';
import { checkDevice, torchInfo } from '../torch/index.js';
import { defineCommand, flags, onePositional, parseChoice, parseInteger, parseNumber } from './args.js';
import { UsageError } from '../errors.js';

import { DEFAULT_IMG2IMG_MODEL, DEFAULT_INPAINT_MODEL } from '../models/defaults.js';

const HELP = `Usage: immunize edit IMAGE --prompt TEXT [options]

Edits a photo with Stable Diffusion, as a malicious editor would: img2img, or inpainting when
--mask is given (white = repaint). Use it to see what an edit of a clean or an immunized photo
looks like. Writes IMAGE.edit.png and a JSON sidecar.

Options:
  --prompt TEXT        what to make of the photo (required)
  --negative TEXT      negative prompt (default: none)
  --mask PATH          inpainting mask, white = repaint (switches to the inpainting model)
  --model ID|PATH      diffusers pipeline (default: ${DEFAULT_IMG2IMG_MODEL},
                       with --mask: ${DEFAULT_INPAINT_MODEL})
  --strength S         img2img: how much to repaint, 0–1 (default 0.8)
  --steps N            denoising steps (default 50)
  --guidance G         classifier-free guidance scale (default 7.5)
  --eta E              DDIM η (default 0)
  --scheduler NAME     ${Object.keys(SCHEDULER_NAMES).join(' | ')} (default: the model's own)
  --size N             resize to N×N first (default: the photo's size, rounded down to a multiple of 8)
  --seed N             random seed (default 0); same seed, same edit as diffusers
  --device D           cpu (default) | cuda | cuda:N
  -o, --output PATH    output PNG (default: next to the input)
  --json               print the result as one JSON line
  -h, --help           this help`;

export const command = defineCommand({
  summary: 'edit a photo with Stable Diffusion (img2img or inpainting), as an adversary would',
  help: HELP,
  options: flags({
    values: 'output prompt negative mask model strength steps guidance eta scheduler size seed device',
    switches: 'json',
  }),
  async run({ values, positionals }) {
    const input = onePositional(positionals, 'input image', 'immunize edit IMAGE --prompt TEXT');
    if (!existsSync(input) || !statSync(input).isFile()) throw new UsageError(`input image not found: ${input}`);
    if (values.prompt === undefined) throw new UsageError('--prompt is required');
    if (values.mask !== undefined && !existsSync(values.mask))
      throw new UsageError(`--mask: file not found: ${values.mask}`);
    const strength = parseNumber('strength', values.strength, { min: 0, max: 1 }) ?? 0.8;
    const steps = parseInteger('steps', values.steps, { min: 1, max: 1000 }) ?? 50;
    const guidance = parseNumber('guidance', values.guidance, { min: 0, max: 100 }) ?? 7.5;
    const eta = parseNumber('eta', values.eta, { min: 0, max: 1 }) ?? 0;
    const seed = parseInteger('seed', values.seed, { min: 0 }) ?? 0;
    const size = parseInteger('size', values.size, { min: 8, max: 4096 });
    const scheduler = parseChoice<SchedulerName>(
      'scheduler',
      values.scheduler,
      Object.keys(SCHEDULER_NAMES) as SchedulerName[],
    );
    const device = checkDevice(values.device ?? 'cpu');
    const inpainting = values.mask !== undefined;
    const modelSpec = values.model ?? (inpainting ? DEFAULT_INPAINT_MODEL : DEFAULT_IMG2IMG_MODEL);
    const out = resolve(values.output ?? join(dirname(input), `${basename(input, extname(input))}.edit.png`));

    const t0 = performance.now();
    const img = await readImage(input, size === undefined ? {} : { width: size, height: size });
    // diffusers rounds the size down to a multiple of 8; so do we (a resize, not a crop).
    const w8 = img.width - (img.width % 8),
      h8 = img.height - (img.height % 8);
    const photo = w8 === img.width && h8 === img.height ? img : await readImage(input, { width: w8, height: h8 });
    if (photo !== img) img.tensor.dispose();
    const mask = inpainting ? await readMask(values.mask!, photo.width, photo.height) : null;
    using sd = await loadStableDiffusion(modelSpec, { device, scheduler });
    if (inpainting && sd.unet.config.in_channels !== 9)
      throw new UsageError(
        `--mask needs an inpainting model (9-channel UNet); ${modelSpec} has ${sd.unet.config.in_channels} input channels`,
      );
    const bar = createProgress({
      label: basename(input),
      total: inpainting ? steps : Math.min(steps, Math.floor(steps * strength)),
      unit: 'step',
    });
    const common = {
      prompt: values.prompt,
      negativePrompt: values.negative ?? '',
      steps,
      guidance,
      eta,
      noise: seededNoise(seed),
      onStep: (i: number) => bar.update(i),
    };
    const r = inpainting
      ? inpaint(sd, photo.tensor, { ...common, mask: mask! })
      : img2img(sd, photo.tensor, { ...common, strength });
    bar.done();
    photo.tensor.dispose();
    mask?.dispose();
    const bytes = await encodeImage(r.image, { format: 'png' });
    r.image.dispose();
    const sidecar = out.replace(/\.[^.]+$/, '') + '.json';
    writeFileAtomic(out, bytes);
    const result = {
      input: resolve(input),
      output: out,
      sidecar,
      mode: inpainting ? 'inpaint' : 'img2img',
      model: modelSpec,
      prompt: values.prompt,
      negativePrompt: values.negative ?? '',
      mask: values.mask ?? null,
      strength: inpainting ? null : strength,
      steps,
      stepsRun: r.steps,
      guidance,
      eta,
      scheduler: sd.scheduler.className,
      seed,
      width: photo.width,
      height: photo.height,
      durationMs: Math.round(performance.now() - t0),
      device,
      libtorch: torchInfo().torchVersion,
    };
    writeFileAtomic(sidecar, JSON.stringify(result, null, 2) + '\n');
    if (values.json) console.log(JSON.stringify(result));
    else
      console.log(`${input} → ${out}  (${result.mode}, ${r.steps} steps, ${(result.durationMs / 1000).toFixed(1)} s)`);
    return 0;
  },
});
