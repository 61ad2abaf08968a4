/**
 * Loading autoencoders from what users have: a diffusers folder (`vae/config.json` +
 * `diffusion_pytorch_model[.fp16].safetensors`, or the repo root with model_index.json), a single
 * `.safetensors` file, a TAESD-family file or folder without config.json (recognised from keys
 * and shapes), or a Hugging Face repo id through the hub cache. Pickle checkpoints are refused.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';
import { ImmunizeError } from '../errors.js';
import { SafetensorsFile } from '../io/safetensors.js';
import { readTensor } from '../io/tensors.js';
import type { WeightSource } from '../nn/module.js';
import type { DType, Device, Tensor } from '../torch/index.js';
import { AutoencoderKL, parseAutoencoderKLConfig } from './autoencoder-kl.js';
import {
  AutoencoderTiny,
  inferTinyConfig,
  parseAutoencoderTinyConfig,
  taesdOriginalRename,
} from './autoencoder-tiny.js';
import { vaeAttentionRename } from './blocks.js';

export type Autoencoder = AutoencoderKL | AutoencoderTiny;

export interface LoadModelOptions {
  /** Compute dtype (weights stored as fp16 are converted). Default float32. */
  dtype?: DType;
  device?: Device;
  /** Prefer `*.fp16.safetensors` when a folder has both. */
  variant?: 'fp16';
}

const PICKLE = new Set(['.pth', '.pt', '.ckpt', '.bin', '.pkl']);

export function refusePickle(path: string): void {
  if (PICKLE.has(extname(path).toLowerCase())) {
    throw new ImmunizeError(
      'E_PICKLE_REFUSED',
      `${path}: pickle checkpoints can run arbitrary code when loaded, so Immunize never opens them. ` +
        `Convert it once to safetensors with Python: python -c "import torch; from safetensors.torch import save_file; ` +
        `sd = torch.load('${basename(path)}', map_location='cpu', weights_only=True); save_file({k: v.contiguous() for k, v in sd.get('state_dict', sd).items()}, '${basename(path, extname(path))}.safetensors')"`,
    );
  }
}

/** A WeightSource reading tensors on demand from one or more safetensors files (with optional key rename). */
export class SafetensorsSource implements WeightSource, Disposable {
  readonly #files: SafetensorsFile[] = [];
  readonly #where = new Map<string, [SafetensorsFile, string]>();
  constructor(parts: { path: string; rename?: (key: string) => string | null }[]) {
    try {
      for (const p of parts) {
        const f = SafetensorsFile.open(p.path);
        this.#files.push(f);
        for (const k of f.keys()) {
          const mine = p.rename ? p.rename(k) : k;
          if (mine !== null) this.#where.set(mine, [f, k]);
        }
      }
    } catch (e) {
      this.dispose();
      throw e;
    }
  }
  keys(): Iterable<string> {
    return this.#where.keys();
  }
  shape(key: string): number[] {
    const [f, k] = this.#where.get(key)!;
    return f.entry(k).shape;
  }
  read(key: string): Tensor {
    const [f, k] = this.#where.get(key)!;
    return readTensor(f, k);
  }
  shapes(): Map<string, number[]> {
    return new Map([...this.#where.keys()].map((k) => [k, this.shape(k)]));
  }
  dispose(): void {
    for (const f of this.#files) f.close();
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** A JSON object from `path`: E_MODEL_FILE when unreadable, E_CONFIG when not a JSON object. */
export function readJson(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ImmunizeError('E_MODEL_FILE', `cannot read ${path}: ${(e as Error).message}`);
  }
  try {
    const v = JSON.parse(text) as unknown;
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('not a JSON object');
    return v as Record<string, unknown>;
  } catch (e) {
    throw new ImmunizeError('E_CONFIG', `${path}: ${(e as Error).message}`);
  }
}

/**
 * The weights file of a diffusers model folder: `diffusion_pytorch_model[.fp16].safetensors`
 * (`.fp16` first when asked for), else the folder's only .safetensors; pickles are refused.
 */
export function weightsIn(folder: string, variant?: 'fp16'): string {
  const files = readdirSync(folder);
  for (const f of files)
    if (PICKLE.has(extname(f)) && !files.some((g) => g.endsWith('.safetensors'))) refusePickle(join(folder, f));
  const st = files.filter((f) => f.endsWith('.safetensors')).sort();
  const pick = (name: string) => (st.includes(name) ? join(folder, name) : null);
  const chosen =
    (variant === 'fp16' ? pick('diffusion_pytorch_model.fp16.safetensors') : null) ??
    pick('diffusion_pytorch_model.safetensors') ??
    pick('diffusion_pytorch_model.fp16.safetensors') ??
    (st.length === 1 ? join(folder, st[0]!) : null);
  if (chosen === null) {
    throw new ImmunizeError(
      'E_MODEL_FILE',
      st.length === 0
        ? `${folder}: no .safetensors weights found (files: ${files.join(', ') || 'none'})`
        : `${folder}: several .safetensors files and none is diffusion_pytorch_model.safetensors: ${st.join(', ')}`,
    );
  }
  return chosen;
}

function build(
  config: Record<string, unknown> | null,
  source: SafetensorsSource,
  label: string,
  o: LoadModelOptions,
): Autoencoder {
  const shapes = source.shapes();
  const cls = config?.['_class_name'];
  let model: Autoencoder;
  if (cls === 'AutoencoderKL') model = new AutoencoderKL(parseAutoencoderKLConfig(config!, label));
  else if (cls === 'AutoencoderTiny') model = new AutoencoderTiny(parseAutoencoderTinyConfig(config!, label));
  else if (cls !== undefined)
    throw new ImmunizeError(
      'E_CONFIG',
      `${label}: unknown architecture '${String(cls)}' (supported: AutoencoderKL, AutoencoderTiny)`,
    );
  else if ([...shapes.keys()].some((k) => k.startsWith('encoder.layers.') || k.startsWith('decoder.layers.')))
    model = new AutoencoderTiny(inferTinyConfig(shapes));
  else if (shapes.has('encoder.conv_in.weight') || shapes.has('decoder.conv_in.weight'))
    model = new AutoencoderKL(inferKLConfig(shapes, label));
  else
    throw new ImmunizeError(
      'E_CONFIG',
      `${label}: cannot recognise the architecture from its keys (first keys: ${[...shapes.keys()].slice(0, 5).join(', ')}); add a config.json`,
    );
  try {
    const tinyHalf =
      model instanceof AutoencoderTiny &&
      (!shapes.has('encoder.layers.0.weight') || !shapes.has('decoder.layers.0.weight'));
    model.loadStateDict(source, {
      dtype: o.dtype ?? 'float32',
      device: o.device,
      label,
      rename: model instanceof AutoencoderKL ? vaeAttentionRename : undefined,
      strict: !tinyHalf,
    });
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}

/** Recovers an AutoencoderKL config from diffusers-keyed weights alone (single-file checkpoints). */
export function inferKLConfig(shapes: ReadonlyMap<string, number[]>, label: string): Record<string, unknown> {
  const blocks: number[] = [];
  for (let i = 0; shapes.has(`encoder.down_blocks.${i}.resnets.0.conv1.weight`); i++)
    blocks.push(shapes.get(`encoder.down_blocks.${i}.resnets.0.conv1.weight`)![0]!);
  if (blocks.length === 0)
    throw new ImmunizeError(
      'E_CONFIG',
      `${label}: no encoder.down_blocks.*; cannot infer the AutoencoderKL config (add a config.json)`,
    );
  let layers = 0;
  while (shapes.has(`encoder.down_blocks.0.resnets.${layers}.conv1.weight`)) layers++;
  const latent = shapes.get('decoder.conv_in.weight')?.[1] ?? shapes.get('encoder.conv_out.weight')![0]! / 2;
  // GroupNorm group counts leave no trace in the weights: every released VAE uses 32; smaller
  // test models get the largest count that divides all their widths.
  const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
  const groups = blocks.reduce(gcd, 32);
  return {
    norm_num_groups: groups,
    _class_name: 'AutoencoderKL',
    block_out_channels: blocks,
    layers_per_block: layers,
    latent_channels: latent,
    in_channels: shapes.get('encoder.conv_in.weight')?.[1] ?? 3,
    out_channels: shapes.get('decoder.conv_out.weight')?.[0] ?? 3,
    down_block_types: blocks.map(() => 'DownEncoderBlock2D'),
    up_block_types: blocks.map(() => 'UpDecoderBlock2D'),
    mid_block_add_attention: [...shapes.keys()].some((k) => k.includes('mid_block.attentions.')),
    use_quant_conv: shapes.has('quant_conv.weight'),
    use_post_quant_conv: shapes.has('post_quant_conv.weight'),
  };
}

/**
 * Loads an autoencoder from a local path: a diffusers model folder (or its repo root), a folder
 * with TAESD-family weights, or a single .safetensors file (original taesd `*_encoder`/`*_decoder`
 * files pair up automatically when both sit side by side).
 */
export function loadAutoencoderFromPath(path: string, o: LoadModelOptions = {}): Autoencoder {
  if (!existsSync(path)) throw new ImmunizeError('E_MODEL_FILE', `model not found: ${path} does not exist`);
  refusePickle(path);
  if (statSync(path).isDirectory()) {
    if (
      existsSync(join(path, 'model_index.json')) ||
      (!existsSync(join(path, 'config.json')) && existsSync(join(path, 'vae')))
    ) {
      if (!existsSync(join(path, 'vae')))
        throw new ImmunizeError('E_MODEL_FILE', `${path}: a pipeline folder without a vae/ subfolder`);
      return loadAutoencoderFromPath(join(path, 'vae'), o);
    }
    const config = existsSync(join(path, 'config.json')) ? readJson(join(path, 'config.json')) : null;
    const file = weightsIn(path, o.variant);
    const parts = originalTaesdParts(file);
    using source = new SafetensorsSource(parts);
    return build(config, source, file, o);
  }
  if (!path.endsWith('.safetensors'))
    throw new ImmunizeError('E_MODEL_FILE', `${path}: expected a .safetensors file or a model folder`);
  const config = existsSync(join(dirname(path), 'config.json')) ? readJson(join(dirname(path), 'config.json')) : null;
  using source = new SafetensorsSource(originalTaesdParts(path));
  return build(config, source, path, o);
}

/** taesd's original files hold one half each with bare `N.` keys; pair `X_encoder` with `X_decoder`. */
function originalTaesdParts(file: string): { path: string; rename?: (k: string) => string | null }[] {
  using f = SafetensorsFile.open(file);
  const bare = f.keys().length > 0 && f.keys().every((k) => /^\d+\./.test(k));
  if (!bare) return [{ path: file }];
  const m = /^(.*)_(encoder|decoder)\.safetensors$/.exec(file);
  if (m === null) {
    // Decide the half by the first conv: 3 input channels means the encoder.
    const first = f.keys().find((k) => /^\d+\.weight$/.test(k));
    const half = first !== undefined && f.entry(first).shape[1] === 3 ? 'encoder' : 'decoder';
    return [{ path: file, rename: taesdOriginalRename(half) }];
  }
  const other = `${m[1]}_${m[2] === 'encoder' ? 'decoder' : 'encoder'}.safetensors`;
  const parts: { path: string; rename?: (k: string) => string | null }[] = [
    { path: file, rename: taesdOriginalRename(m[2] as 'encoder' | 'decoder') },
  ];
  if (existsSync(other))
    parts.push({ path: other, rename: taesdOriginalRename(m[2] === 'encoder' ? 'decoder' : 'encoder') });
  return parts;
}
