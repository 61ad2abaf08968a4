/**
 * CLIPVisionModel: CLIP's ViT image tower as transformers 4.27 builds it from a CLIPVisionConfig
 * (or the `vision_config` of a CLIPConfig). Module paths are transformers' state-dict keys:
 * `vision_model.embeddings.{class_embedding, patch_embedding.weight, position_embedding.weight,
 * position_ids}`, `vision_model.pre_layrnorm.*` (sic: transformers' spelling), `vision_model.encoder.
 * layers.N.{self_attn.{k,v,q,out}_proj, layer_norm1, mlp.fc1, mlp.fc2, layer_norm2}.*`,
 * `vision_model.post_layernorm.*`.
 *
 * Forward (openai/CLIP VisionTransformer): patches by a stride-P convolution without bias, the
 * class embedding prepended, positions added, pre-LayerNorm, pre-LN transformer blocks (no
 * attention mask), post-LayerNorm on the class token = pooled output.
 *
 *   const vm = new CLIPVisionModel(config).loadStateDict(weights);
 *   const { pooledOutput } = noGrad(() => vm.forward(pixelValues));   // [N, hidden_size]
 */
import { ArgumentError, ImmunizeError, describe } from '../../errors.js';
import { LayerNorm } from '../../nn/layers.js';
import { Module, type ParamRef } from '../../nn/module.js';
import { F, cat, isTensor, scope, type Tensor } from '../../torch/index.js';
import { CLIPPreTrainedModel } from './checkpoint.js';
import { parseTowerConfig, type CLIPEncoderConfig } from './config.js';
import { CLIPEncoder, type CLIPTowerOutput } from './encoder.js';

export interface CLIPVisionConfig extends CLIPEncoderConfig {
  projection_dim: number;
  num_channels: number;
  image_size: number;
  patch_size: number;
}

// transformers 4.27 CLIPVisionConfig.__init__ defaults (configuration_clip.py).
const DEFAULTS: CLIPVisionConfig = {
  hidden_size: 768,
  intermediate_size: 3072,
  projection_dim: 512,
  num_hidden_layers: 12,
  num_attention_heads: 12,
  num_channels: 3,
  image_size: 224,
  patch_size: 32,
  hidden_act: 'quick_gelu',
  layer_norm_eps: 1e-5,
};
const INT_FIELDS = ['projection_dim', 'num_channels', 'image_size', 'patch_size'] as const;

/**
 * Parses a CLIPVisionConfig, or the `vision_config` (overridden by `vision_config_dict`, as 4.27
 * does) of a full CLIPConfig, with transformers' defaults for absent fields.
 */
export function parseCLIPVisionConfig(raw: Record<string, unknown>, label = 'config.json'): CLIPVisionConfig {
  return parseTowerConfig(raw, label, 'vision', DEFAULTS, INT_FIELDS, (cfg, where) => {
    if (cfg.image_size % cfg.patch_size !== 0)
      throw new ImmunizeError(
        'E_CONFIG',
        `${where}: image_size ${cfg.image_size} is not a multiple of patch_size ${cfg.patch_size}`,
      );
  });
}

/** Number of position embeddings: one per patch plus the class token. */
export function numPositions(c: CLIPVisionConfig): number {
  return (c.image_size / c.patch_size) ** 2 + 1;
}

class PatchEmbedding extends Module {
  readonly weight: ParamRef;
  constructor(readonly c: CLIPVisionConfig) {
    super();
    this.weight = this.param('weight', [c.hidden_size, c.num_channels, c.patch_size, c.patch_size]);
  }
  forward(x: Tensor): Tensor {
    return F.conv2d(x, this.weight.t, null, { stride: this.c.patch_size });
  }
}

class PositionEmbedding extends Module {
  readonly weight: ParamRef;
  constructor(n: number, d: number) {
    super();
    this.weight = this.param('weight', [n, d]);
  }
}

class CLIPVisionEmbeddings extends Module {
  readonly classEmbedding: ParamRef;
  readonly patchEmbedding: PatchEmbedding;
  readonly positionEmbedding: PositionEmbedding;
  readonly positionIds: ParamRef;
  constructor(readonly c: CLIPVisionConfig) {
    super();
    this.classEmbedding = this.param('class_embedding', [c.hidden_size]);
    this.patchEmbedding = this.child('patch_embedding', new PatchEmbedding(c));
    this.positionEmbedding = this.child('position_embedding', new PositionEmbedding(numPositions(c), c.hidden_size));
    // A persistent int64 buffer in transformers 4.27 (later versions drop it; supplied on load when absent).
    this.positionIds = this.buffer('position_ids', [1, numPositions(c)]);
  }
  forward(pixelValues: Tensor): Tensor {
    return scope(() => {
      const b = pixelValues.shape[0]!;
      const w = this.patchEmbedding.weight.t;
      const patches = this.patchEmbedding.forward(pixelValues.to(w.dtype)).flatten(2).transpose(1, 2);
      const cls = this.classEmbedding.t.expand(b, 1, -1);
      const pos = this.positionEmbedding.weight.t.indexSelect(0, this.positionIds.t.reshape(-1));
      return cat([cls, patches], 1).add(pos);
    });
  }
}

export interface CLIPVisionForwardOptions {
  /** Also return the embedding output and every layer's output. Default false. */
  outputHiddenStates?: boolean;
}

/**
 * - lastHiddenState [N, 1 + patches, D]: the last layer's output (no final norm, as transformers).
 * - pooledOutput [N, D]: post_layernorm of the class token.
 * - hiddenStates, with outputHiddenStates: num_hidden_layers + 1 tensors (pre_layrnorm's output
 *   first, as transformers).
 */
export type CLIPVisionOutput = CLIPTowerOutput;

/** transformers' CLIPVisionTransformer (the module under `vision_model.`). */
export class CLIPVisionTransformer extends Module {
  readonly embeddings: CLIPVisionEmbeddings;
  readonly preLayrnorm: LayerNorm;
  readonly encoder: CLIPEncoder;
  readonly postLayernorm: LayerNorm;
  constructor(readonly config: CLIPVisionConfig) {
    super();
    this.embeddings = this.child('embeddings', new CLIPVisionEmbeddings(config));
    this.preLayrnorm = this.child('pre_layrnorm', new LayerNorm(config.hidden_size, config.layer_norm_eps));
    this.encoder = this.child('encoder', new CLIPEncoder(config));
    this.postLayernorm = this.child('post_layernorm', new LayerNorm(config.hidden_size, config.layer_norm_eps));
  }

  /** pixel values [N, C, image_size, image_size] (already normalised: see image-processor.ts) → hidden states. */
  forward(pixelValues: Tensor, o: CLIPVisionForwardOptions = {}): CLIPVisionOutput {
    const c = this.config;
    if (!isTensor(pixelValues))
      throw new ArgumentError(
        `CLIPVisionModel.forward: expected pixel values to be a Tensor [N, ${c.num_channels}, ${c.image_size}, ${c.image_size}] but received ${describe(pixelValues)}`,
      );
    const s = pixelValues.shape;
    if (s.length !== 4 || s[1] !== c.num_channels || s[2] !== c.image_size || s[3] !== c.image_size || s[0] === 0) {
      throw new ImmunizeError(
        'E_SHAPE',
        `CLIPVisionModel.forward: expected pixel values [N, ${c.num_channels}, ${c.image_size}, ${c.image_size}] (see clipPreprocess) but received [${s.join(', ')}]`,
      );
    }
    return scope(() => {
      const hidden = this.encoder.forward(this.preLayrnorm.forward(this.embeddings.forward(pixelValues)));
      const h = hidden.at(-1)!;
      const pooledOutput = this.postLayernorm.forward(h.select(1, 0));
      return o.outputHiddenStates
        ? { lastHiddenState: h, pooledOutput, hiddenStates: hidden }
        : { lastHiddenState: h, pooledOutput };
    });
  }
}

/** The vision tower alone, under transformers' `vision_model.` prefix. */
export class CLIPVisionModel extends CLIPPreTrainedModel {
  readonly visionModel: CLIPVisionTransformer;

  constructor(config: Record<string, unknown> | CLIPVisionConfig) {
    super();
    this.visionModel = this.child(
      'vision_model',
      new CLIPVisionTransformer(parseCLIPVisionConfig(config as Record<string, unknown>)),
    );
  }

  get config(): CLIPVisionConfig {
    return this.visionModel.config;
  }

  forward(pixelValues: Tensor, o: CLIPVisionForwardOptions = {}): CLIPVisionOutput {
    return this.visionModel.forward(pixelValues, o);
  }
}
