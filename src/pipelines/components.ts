/**
 * A Stable Diffusion pipeline's parts, loaded from a diffusers repository folder
 * (model_index.json, vae/, unet/, text_encoder/, tokenizer/, scheduler/) or a hub repo id.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ImmunizeError } from '../errors.js';
import { isRepoId, listRepoFiles, snapshot, type HubOptions } from '../io/hub.js';
import { AutoencoderKL } from '../models/autoencoder-kl.js';
import { CLIPTextModel, loadCLIPTextModel } from '../models/clip/text-model.js';
import { CLIPTokenizer } from '../models/clip/tokenizer.js';
import { loadAutoencoderFromPath } from '../models/load.js';
import { loadUNet, type UNet2DConditionModel } from '../models/unet/index.js';
import { createScheduler, fromName, type Scheduler, type SchedulerName } from '../schedulers/index.js';
import type { DType, Device } from '../torch/index.js';

export interface StableDiffusion extends Disposable {
  readonly root: string;
  readonly vae: AutoencoderKL;
  readonly unet: UNet2DConditionModel;
  readonly textEncoder: CLIPTextModel;
  readonly tokenizer: CLIPTokenizer;
  readonly scheduler: Scheduler;
  readonly device: Device;
  readonly dtype: DType;
  /** model_index.json's _class_name, e.g. StableDiffusionInpaintPipeline. */
  readonly pipelineClass: string;
  dispose(): void;
}

export interface LoadPipelineOptions {
  dtype?: DType;
  device?: Device;
  variant?: 'fp16';
  /** Replace the repo's scheduler (diffusers' X.from_config(pipe.scheduler.config)). */
  scheduler?: SchedulerName;
  hub?: HubOptions;
}

const PARTS = ['vae', 'unet', 'text_encoder', 'tokenizer', 'scheduler'] as const;

/** Loads from a local diffusers folder. */
export function loadStableDiffusionFromPath(root: string, o: LoadPipelineOptions = {}): StableDiffusion {
  if (!existsSync(root)) throw new ImmunizeError('E_MODEL_FILE', `pipeline not found: ${root} does not exist`);
  const indexPath = join(root, 'model_index.json');
  if (!existsSync(indexPath))
    throw new ImmunizeError('E_MODEL_FILE', `${root}: not a diffusers pipeline folder (no model_index.json)`);
  let index: Record<string, unknown>;
  try {
    index = JSON.parse(readFileSync(indexPath, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new ImmunizeError('E_CONFIG', `${indexPath}: ${(e as Error).message}`);
  }
  for (const p of PARTS)
    if (!existsSync(join(root, p)))
      throw new ImmunizeError('E_MODEL_FILE', `${root}: the pipeline has no ${p}/ folder`);
  const opts = { dtype: o.dtype, device: o.device, variant: o.variant };
  const owned: { dispose(): void }[] = [];
  try {
    const vae = loadAutoencoderFromPath(join(root, 'vae'), opts);
    owned.push(vae);
    if (!(vae instanceof AutoencoderKL))
      throw new ImmunizeError('E_CONFIG', `${root}/vae: a Stable Diffusion pipeline needs an AutoencoderKL`);
    const unet = loadUNet(join(root, 'unet'), opts);
    owned.push(unet);
    const textEncoder = loadCLIPTextModel(join(root, 'text_encoder'), opts);
    owned.push(textEncoder);
    const tokenizer = CLIPTokenizer.fromFolder(join(root, 'tokenizer'));
    const base = join(root, 'scheduler');
    const scheduler = o.scheduler === undefined ? createScheduler(base) : fromName(o.scheduler, base);
    return {
      root,
      vae,
      unet,
      textEncoder,
      tokenizer,
      scheduler,
      device: o.device ?? 'cpu',
      dtype: o.dtype ?? 'float32',
      pipelineClass: String(index['_class_name'] ?? 'unknown'),
      dispose() {
        vae.dispose();
        unet.dispose();
        textEncoder.dispose();
        scheduler.dispose();
      },
      [Symbol.dispose]() {
        this.dispose();
      },
    };
  } catch (e) {
    for (const m of owned) m.dispose();
    throw e;
  }
}

/** Loads from a local folder or a Hugging Face repo id (downloading only what the pipeline needs). */
export async function loadStableDiffusion(spec: string, o: LoadPipelineOptions = {}): Promise<StableDiffusion> {
  if (existsSync(spec) || !isRepoId(spec)) return loadStableDiffusionFromPath(spec, o);
  const files = await listRepoFiles(spec, o.hub ?? {});
  const weight = (folder: string, name: string): string => {
    const fp16 = `${folder}/${name}.fp16.safetensors`;
    if (o.variant === 'fp16' && files.some((f) => f.path === fp16)) return fp16;
    return `${folder}/${name}.safetensors`;
  };
  const allow = [
    'model_index.json',
    'vae/config.json',
    weight('vae', 'diffusion_pytorch_model'),
    'unet/config.json',
    weight('unet', 'diffusion_pytorch_model'),
    'text_encoder/config.json',
    weight('text_encoder', 'model'),
    'tokenizer/*',
    'scheduler/scheduler_config.json',
  ];
  const dir = await snapshot(spec, { ...(o.hub ?? {}), allow });
  return loadStableDiffusionFromPath(dir, o);
}
