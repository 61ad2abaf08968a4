/**
 * CLIPModel: the text and vision towers with their projections and logit scale, as transformers
 * 4.27 builds it from a CLIPConfig (`config.json` with text_config and vision_config) and names
 * its weights (`text_model.*`, `vision_model.*`, `visual_projection.weight`,
 * `text_projection.weight`, `logit_scale`). The default is `openai/clip-vit-large-patch14` (the
 * ViT-L/14 whose text tower conditions SD 1.x).
 *
 *   const clip = await loadCLIPModel('openai/clip-vit-large-patch14');        // or a local folder
 *   const img = noGrad(() => clip.getImageFeatures(clipPreprocess(images)));  // [N, 768]
 *   const txt = noGrad(() => clip.getTextFeatures(ids));                       // [M, 768]
 */
import { existsSync } from 'node:fs';
import { basename } from 'node:path';
import { ImmunizeError, describe } from '../../errors.js';
import { isRepoId, listRepoFiles, snapshot, type HubOptions } from '../../io/hub.js';
import { Linear } from '../../nn/layers.js';
import { type ParamRef } from '../../nn/module.js';
import { scope, type DType, type Device, type Tensor } from '../../torch/index.js';
import { SafetensorsSource } from '../load.js';
import { CLIPPreTrainedModel, locateCheckpoint, readConfigJson } from './checkpoint.js';
import { CLIPTextModel, parseCLIPTextConfig, type CLIPTextConfig } from './text-model.js';
import { CLIPVisionTransformer, parseCLIPVisionConfig, type CLIPVisionConfig } from './vision-model.js';

/** The default CLIP for the image–prompt similarity metric. */
export const DEFAULT_CLIP_MODEL = 'openai/clip-vit-large-patch14';

export interface CLIPConfig {
  textConfig: CLIPTextConfig;
  visionConfig: CLIPVisionConfig;
  projection_dim: number;
  logit_scale_init_value: number;
}

/** Parses a transformers CLIPConfig (4.27 defaults: projection_dim 512, logit_scale_init_value 2.6592). */
export function parseCLIPConfig(raw: Record<string, unknown>, label = 'config.json'): CLIPConfig {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
    throw new ImmunizeError('E_CONFIG', `${label}: expected a JSON object but received ${describe(raw)}`);
  const projection = raw['projection_dim'] ?? 512;
  if (!Number.isSafeInteger(projection) || (projection as number) < 1)
    throw new ImmunizeError(
      'E_CONFIG',
      `${label}: projection_dim should be a positive integer but is ${describe(projection)}`,
    );
  const scale = raw['logit_scale_init_value'] ?? 2.6592;
  if (typeof scale !== 'number')
    throw new ImmunizeError(
      'E_CONFIG',
      `${label}: logit_scale_init_value should be a number but is ${describe(scale)}`,
    );
  // model_type 'clip' marks a full CLIPConfig: each tower's parser then reads its text_config / vision_config.
  const full = { model_type: 'clip', ...raw };
  return {
    textConfig: parseCLIPTextConfig(full, label),
    visionConfig: parseCLIPVisionConfig(full, label),
    projection_dim: projection as number,
    logit_scale_init_value: scale,
  };
}

export interface CLIPOutput {
  /** [N_images, N_texts]: logit_scale.exp() · cosine similarity. */
  logitsPerImage: Tensor;
  logitsPerText: Tensor;
  /** L2-normalised projections. */
  imageEmbeds: Tensor;
  textEmbeds: Tensor;
}

export class CLIPModel extends CLIPPreTrainedModel {
  readonly config: CLIPConfig;
  /** The text tower (its transformer is this module's `text_model`). */
  readonly textModel: CLIPTextModel;
  readonly visionModel: CLIPVisionTransformer;
  readonly visualProjection: Linear;
  readonly textProjection: Linear;
  readonly logitScale: ParamRef;

  constructor(config: Record<string, unknown> | CLIPConfig) {
    super();
    this.config = 'textConfig' in config ? (config as CLIPConfig) : parseCLIPConfig(config as Record<string, unknown>);
    const c = this.config;
    this.textModel = new CLIPTextModel(c.textConfig);
    this.child('text_model', this.textModel.textModel);
    this.visionModel = this.child('vision_model', new CLIPVisionTransformer(c.visionConfig));
    this.visualProjection = this.child(
      'visual_projection',
      new Linear(c.visionConfig.hidden_size, c.projection_dim, false),
    );
    this.textProjection = this.child('text_projection', new Linear(c.textConfig.hidden_size, c.projection_dim, false));
    this.logitScale = this.param('logit_scale', []);
  }

  /** visual_projection(post_layernorm(CLS)) of preprocessed pixel values [N, 3, S, S] → [N, projection_dim] (not normalised). */
  getImageFeatures(pixelValues: Tensor): Tensor {
    return scope(() => this.visualProjection.forward(this.visionModel.forward(pixelValues).pooledOutput));
  }

  /** text_projection(final_layer_norm(text)[EOS = argmax(ids)]) of token ids [M, L] → [M, projection_dim] (not normalised). */
  getTextFeatures(inputIds: Tensor): Tensor {
    return scope(() => {
      const out = this.textModel.forward(inputIds);
      return this.textProjection.forward(out.pooledOutput);
    });
  }

  /** transformers CLIPModel.forward: normalised embeddings and scaled cosine logits. */
  forward(inputIds: Tensor, pixelValues: Tensor): CLIPOutput {
    return scope(() => {
      const img = this.getImageFeatures(pixelValues);
      const txt = this.getTextFeatures(inputIds);
      const imageEmbeds = img.div(img.norm(2, -1, true));
      const textEmbeds = txt.div(txt.norm(2, -1, true));
      const logitsPerText = textEmbeds.matmul(imageEmbeds.transpose(0, 1)).mul(this.logitScale.t.exp());
      return { logitsPerImage: logitsPerText.transpose(0, 1), logitsPerText, imageEmbeds, textEmbeds };
    });
  }
}

export interface LoadCLIPOptions {
  /** Compute dtype (fp16 weights are converted). Default float32. */
  dtype?: DType;
  device?: Device;
  hub?: HubOptions;
}

/**
 * A local CLIP folder (config.json + model.safetensors, or a folder with one .safetensors file) or a
 * single .safetensors file with config.json beside it. Pickle checkpoints are refused.
 */
export function loadCLIPModelFromPath(path: string, o: LoadCLIPOptions = {}): CLIPModel {
  const { folder, weights } = locateCheckpoint(path, ['model.safetensors', 'weights.safetensors']);
  const config = readConfigJson(folder, 'a CLIP model needs its transformers CLIPConfig');
  const model = new CLIPModel(parseCLIPConfig(config.raw, config.path));
  try {
    using source = new SafetensorsSource([{ path: weights }]);
    model.loadStateDict(source, { dtype: o.dtype ?? 'float32', device: o.device, label: basename(weights) });
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}

/** Files of a CLIP repo that the similarity metric needs: config, weights, tokenizer. */
const TOKENIZER_FILES = ['vocab.json', 'merges.txt', 'tokenizer_config.json', 'special_tokens_map.json'];

/**
 * The local folder of a CLIP model: `spec` itself when it exists, else the hub snapshot of the repo
 * id (config.json, model.safetensors and the tokenizer files only; HF_HOME/HF_HUB_OFFLINE honoured).
 */
export async function resolveCLIPFolder(spec: string = DEFAULT_CLIP_MODEL, hub: HubOptions = {}): Promise<string> {
  if (existsSync(spec) || !isRepoId(spec)) return spec;
  const files = (await listRepoFiles(spec, hub)).map((f) => f.path);
  const weights = files.includes('model.safetensors')
    ? 'model.safetensors'
    : files.find((f) => !f.includes('/') && f.endsWith('.safetensors'));
  if (weights === undefined) {
    throw new ImmunizeError(
      'E_MODEL_FILE',
      `repo '${spec}' has no .safetensors weights at its root (files: ${files.slice(0, 20).join(', ')}); pickle checkpoints are never loaded`,
    );
  }
  return snapshot(spec, {
    ...hub,
    allow: ['config.json', weights, ...TOKENIZER_FILES.filter((f) => files.includes(f))],
  });
}

/** CLIPModel from a local path or a Hugging Face repo id (default openai/clip-vit-large-patch14). */
export async function loadCLIPModel(spec: string = DEFAULT_CLIP_MODEL, o: LoadCLIPOptions = {}): Promise<CLIPModel> {
  return loadCLIPModelFromPath(await resolveCLIPFolder(spec, o.hub ?? {}), o);
}
