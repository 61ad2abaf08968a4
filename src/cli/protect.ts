/** `immunize protect`: immunize photos against AI editing (encoder attack or the noise baseline). */
import { mkdirSync, writeFileSync, existsSync, statSync, renameSync } from 'node:fs';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { asEncoder, encoderAttack, tiledEncoder, type EncoderTarget } from '../attacks/encoder.js';
import { randomNoise } from '../attacks/noise.js';
import { PRESETS } from '../attacks/presets.js';
import type { Optimizer, PgdOptions, StepSchedule } from '../attacks/pgd.js';
import { encodeImage, formatFromPath, readImage, readMask } from '../io/images.js';
import { createProgress } from '../io/progress.js';
import { psnr } from '../metrics/psnr.js';
import { DEFAULT_MODEL, loadAutoencoder } from '../models/resolve.js';
import { F, noGrad, scope, torchInfo, checkDevice, type Device, type Tensor } from '../torch/index.js';
import { parseChoice, parseInteger, parseNumber, UsageError } from './args.js';

const HELP = `Usage: immunize protect IMAGE... [options]

Adds an imperceptible perturbation so that diffusion-model edits of the photo come out
unrealistic (Salman et al. 2023, encoder attack). Writes IMAGE.immunized.png and a JSON sidecar
with the parameters and results next to it (or into --output).

Options:
  -o, --output PATH        output file (one image) or folder (default: next to each input)
  --method M               encoder (default) | noise (random-noise baseline of the same budget)
  --model ID|PATH          autoencoder to protect against: a Hugging Face repo id, a diffusers
                           folder, a .safetensors file, or TAESD-family weights
                           (default: ${DEFAULT_MODEL}, its vae/ only)
  --preset P               ${Object.entries(PRESETS).map(([k, p]) => `${k}: ${p.description}`).join('\n                           ')}
                           (default: paper)
  --eps E                  L∞ budget on [0,1] pixels, e.g. 16/255 (overrides the preset)
  --step-size S            step size, e.g. 2/255
  --steps N                iterations
  --optimizer O            sign | momentum | adam
  --schedule S             constant | linear-decay
  --target T               gray (default) | zeros | PATH of a target image
  --mask PATH              white where the perturbation may go (e.g. faces), black where the
                           photo must stay untouched
  --size N                 resize so the image is N×N (centre crop) before protecting
  --tile N                 encode in N×N tiles overlapping by N/4 (large images, less memory;
                           N a multiple of the model's downscale factor, e.g. 512)
  --seed N                 random seed (default 0): same seed, same result
  --device D               cpu (default) | cuda | cuda:N
  --fp16                   prefer the model's fp16 weights (computation stays float32 on CPU)
  --json                   print one JSON result line per image instead of a summary
  -h, --help               this help

Save immunized images as PNG: JPEG re-compression is what weakens the protection.`;

interface ProtectResult {
  input: string;
  output: string;
  sidecar: string;
  method: string;
  model: string | null;
  width: number;
  height: number;
  padded: [number, number] | null;
  options: Record<string, unknown>;
  losses: { first: number; final: number } | null;
  stepsTaken: number;
  linf: number;
  psnr: number;
  durationMs: number;
  device: Device;
  threads: number;
  libtorch: string;
  generator: 'cpu';
}

function outputPathFor(input: string, output: string | undefined, many: boolean): string {
  const name = `${basename(input, extname(input))}.immunized.png`;
  if (output === undefined) return join(dirname(input), name);
  if (!many && /\.(png|jpe?g|webp)$/i.test(output)) return output;
  return join(output, name);
}

/** Pads H and W up to a multiple of `m` by reflection (cropped back after the attack). */
function padToMultiple(x: Tensor, m: number): { x: Tensor; pad: [number, number] | null } {
  const [, , h, w] = x.shape as [number, number, number, number];
  const ph = (m - (h % m)) % m;
  const pw = (m - (w % m)) % m;
  if (ph === 0 && pw === 0) return { x: x.alias(), pad: null };
  return { x: noGrad(() => F.pad(x, [0, pw, 0, ph], 'replicate')), pad: [ph, pw] };
}

export const protect = {
  summary: 'immunize photos against AI editing (writes PNG + JSON sidecar)',
  async run(args: string[]): Promise<number> {
    const { values, positionals } = parseArgs({
      args, allowPositionals: true,
      options: {
        output: { type: 'string', short: 'o' }, method: { type: 'string' }, model: { type: 'string' }, preset: { type: 'string' },
        eps: { type: 'string' }, 'step-size': { type: 'string' }, steps: { type: 'string' }, optimizer: { type: 'string' },
        schedule: { type: 'string' }, target: { type: 'string' }, mask: { type: 'string' }, size: { type: 'string' }, tile: { type: 'string' },
        seed: { type: 'string' }, device: { type: 'string' }, fp16: { type: 'boolean' }, json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
    if (values.help) {
      console.log(HELP);
      return 0;
    }
    if (positionals.length === 0) throw new UsageError('no input image given (immunize protect IMAGE... ; see --help)');
    for (const p of positionals) if (!existsSync(p) || !statSync(p).isFile()) throw new UsageError(`input image not found: ${p}`);
    const method = parseChoice('method', values.method, ['encoder', 'noise'] as const) ?? 'encoder';
    const presetName = values.preset ?? 'paper';
    const preset = PRESETS[presetName];
    if (preset === undefined) throw new UsageError(`--preset: expected one of ${Object.keys(PRESETS).join(', ')} but received '${presetName}'`);
    const device = checkDevice(values.device ?? 'cpu');
    const options: PgdOptions = {
      ...preset.options,
      eps: parseNumber('eps', values.eps, { min: 0, max: 1 }) ?? preset.options.eps,
      stepSize: parseNumber('step-size', values['step-size'], { min: 0, max: 1 }) ?? preset.options.stepSize,
      steps: parseInteger('steps', values.steps, { min: 0, max: 1_000_000 }) ?? preset.options.steps,
      optimizer: parseChoice<Optimizer>('optimizer', values.optimizer, ['sign', 'momentum', 'adam']) ?? preset.options.optimizer,
      schedule: parseChoice<StepSchedule>('schedule', values.schedule, ['constant', 'linear-decay']) ?? preset.options.schedule,
      seed: parseInteger('seed', values.seed, { min: 0 }) ?? 0,
    };
    const size = parseInteger('size', values.size, { min: 8, max: 8192 });
    const tile = parseInteger('tile', values.tile, { min: 64, max: 8192 });
    const targetArg = values.target ?? 'gray';
    if (targetArg !== 'gray' && targetArg !== 'zeros' && !existsSync(targetArg)) throw new UsageError(`--target: expected gray, zeros or an image path, but '${targetArg}' does not exist`);
    if (values.mask !== undefined && !existsSync(values.mask)) throw new UsageError(`--mask: file not found: ${values.mask}`);
    if (values.output !== undefined && positionals.length > 1 && /\.(png|jpe?g|webp)$/i.test(values.output)) throw new UsageError('--output: with several inputs, give a folder, not a file name');

    const modelSpec = method === 'encoder' ? (values.model ?? DEFAULT_MODEL) : null;
    const model = modelSpec === null ? null : await loadAutoencoder(modelSpec, { device, variant: values.fp16 ? 'fp16' : undefined });
    const downscale = model?.downscale ?? 1;
    if (tile !== undefined && tile % (4 * downscale) !== 0) throw new UsageError(`--tile: ${tile} must be a multiple of ${4 * downscale} for this model (4 × its downscale factor ${downscale})`);
    const encoder = model === null ? null : tile === undefined ? asEncoder(model) : tiledEncoder(asEncoder(model), downscale, { tile, overlap: tile / 4 });
    const info = torchInfo();
    let failures = 0;
    try {
      for (const input of positionals) {
        const t0 = performance.now();
        const out = resolve(outputPathFor(input, values.output, positionals.length > 1));
        const format = formatFromPath(out);
        const img = await readImage(input, size === undefined ? {} : { width: size, height: size });
        const mask = values.mask === undefined ? null : await readMask(values.mask, img.width, img.height);
        const target: EncoderTarget = targetArg === 'gray' || targetArg === 'zeros' ? targetArg : (await readImage(targetArg, { width: img.width, height: img.height })).tensor;
        try {
          const x = device === 'cpu' ? img.tensor : img.tensor.to(device);
          const { x: xp, pad } = padToMultiple(x, model?.downscale ?? 1);
          const maskP = mask === null ? null : padToMultiple(device === 'cpu' ? mask : mask.to(device), model?.downscale ?? 1).x;
          if (pad && !values.json) process.stderr.write(`${input}: ${img.width}×${img.height} is not a multiple of ${model!.downscale}; padded to ${img.width + pad[1]}×${img.height + pad[0]} for the model and cropped back\n`);
          let adv: Tensor;
          let losses: ProtectResult['losses'] = null;
          let stepsTaken = 0;
          if (method === 'noise') {
            adv = randomNoise(xp, { eps: options.eps, seed: options.seed, mask: maskP });
          } else {
            const bar = createProgress({ label: basename(input), total: options.steps, unit: 'step' });
            const r = encoderAttack(encoder!, xp, { ...options, mask: maskP, target, onStep: (s) => bar.update(s.step, `loss ${s.loss.toFixed(4)}`) });
            bar.done();
            adv = r.adv;
            losses = { first: r.losses[0] ?? r.finalLoss, final: r.finalLoss };
            stepsTaken = r.stepsTaken;
          }
          const cropped = scope(() => adv.narrow(2, 0, img.height).narrow(3, 0, img.width).to('cpu'));
          adv.dispose();
          xp.dispose();
          maskP?.dispose();
          const bytes = await encodeImage(cropped, { format });
          mkdirSync(dirname(out), { recursive: true });
          writeFileSync(out + '.tmp', bytes);
          renameSync(out + '.tmp', out);
          // Measure on what was written: the 8-bit image, as anyone downloading it gets.
          const written = (await readImage(out)).tensor;
          const linf = noGrad(() => scope(() => written.sub(img.tensor).abs().max().item()));
          const result: ProtectResult = {
            input: resolve(input), output: out, sidecar: out.replace(/\.[^.]+$/, '.json'), method, model: modelSpec,
            width: img.width, height: img.height, padded: pad, options: { preset: presetName, ...options, tile: tile ?? null, target: typeof targetArg === 'string' ? targetArg : 'image', mask: values.mask ?? null },
            losses, stepsTaken, linf, psnr: psnr(written, img.tensor), durationMs: Math.round(performance.now() - t0),
            device, threads: info.threads, libtorch: info.torchVersion, generator: 'cpu',
          };
          written.dispose();
          cropped.dispose();
          writeFileSync(result.sidecar, JSON.stringify(result, null, 2) + '\n');
          if (values.json) console.log(JSON.stringify(result));
          else console.log(`${input} → ${out}  (L∞ ${(result.linf * 255).toFixed(1)}/255, PSNR ${result.psnr.toFixed(2)} dB${losses ? `, loss ${losses.first.toFixed(3)} → ${losses.final.toFixed(3)}` : ''}, ${(result.durationMs / 1000).toFixed(1)} s)`);
        } catch (e) {
          failures++;
          process.stderr.write(`immunize protect: ${input}: ${(e as Error).message}\n`);
          if (positionals.length === 1) throw e;
        } finally {
          img.tensor.dispose();
          mask?.dispose();
          if (typeof target !== 'string') target.dispose();
        }
      }
    } finally {
      model?.dispose();
    }
    return failures === 0 ? 0 : 1;
  },
};
