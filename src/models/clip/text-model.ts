/**
 * CLIPTextModel: CLIP's text transformer as transformers 4.27 builds it from `config.json` —
 * Stable Diffusion's text encoder (SD 1.x: OpenAI CLIP ViT-L/14's text tower). Module paths are
 * transformers' state-dict keys (`text_model.encoder.layers.0.self_attn.q_proj.weight`, …), so
 * `text_encoder/model.safetensors` loads without renaming.
 *
 *   const enc = loadCLIPTextModel('sd15/text_encoder');
 *   const { lastHiddenState } = noGrad(() => enc.forward(tok.inputIdsTensor(['a photo of a cat'])));
 *   // lastHiddenState [1, 77, 768]: what SD 1.x conditions its UNet on
 */
import { existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import { ArgumentError, ImmunizeError, describe } from '../../errors.js';
import { LayerNorm } from '../../nn/layers.js';
import { Module, type ParamRef } from '../../nn/module.js';
import { arange, full, isTensor, noGrad, scope, type DType, type Device, type Tensor } from '../../torch/index.js';
import { SafetensorsSource } from '../load.js';
import { CLIPPreTrainedModel, locateCheckpoint, readConfigJson } from './checkpoint.js';
import { isFullCLIPConfig, parseTowerConfig, type CLIPEncoderConfig } from './config.js';
import { CLIPEncoder, type CLIPTowerOutput } from './encoder.js';

export interface CLIPTextConfig extends CLIPEncoderConfig {
  vocab_size: number;
  max_position_embeddings: number;
  /** Used by CLIPTextModelWithProjection only; kept for completeness. */
  projection_dim: number;
  bos_token_id: number;
  eos_token_id: number;
  pad_token_id: number;
}

// transformers 4.27 CLIPTextConfig.__init__ defaults (configuration_clip.py).
const DEFAULTS: CLIPTextConfig = {
  vocab_size: 49408,
  hidden_size: 512,
  intermediate_size: 2048,
  num_hidden_layers: 12,
  num_attention_heads: 8,
  max_position_embeddings: 77,
  hidden_act: 'quick_gelu',
  layer_norm_eps: 1e-5,
  projection_dim: 512,
  bos_token_id: 0,
  eos_token_id: 2,
  pad_token_id: 1,
};
const INT_FIELDS = ['vocab_size', 'max_position_embeddings', 'projection_dim'] as const;

/**
 * Parses a transformers CLIPTextConfig (`text_encoder/config.json`), or the `text_config` of a full
 * CLIPConfig, filling transformers' defaults for absent fields.
 */
export function parseCLIPTextConfig(raw: Record<string, unknown>, label = 'config.json'): CLIPTextConfig {
  return parseTowerConfig(raw, label, 'text', DEFAULTS, INT_FIELDS);
}

/** nn.Embedding: a [num, dim] table looked up by integer ids (index_select, as PyTorch's forward). */
class Embedding extends Module {
  readonly weight: ParamRef;
  constructor(
    readonly numEmbeddings: number,
    readonly dim: number,
  ) {
    super();
    this.weight = this.param('weight', [numEmbeddings, dim]);
  }
  forward(ids: Tensor): Tensor {
    using flat = ids.reshape(-1);
    using rows = this.weight.t.indexSelect(0, flat);
    return rows.view([...ids.shape, this.dim]);
  }
}

class CLIPTextEmbeddings extends Module {
  readonly positionIds: ParamRef;
  readonly tokenEmbedding: Embedding;
  readonly positionEmbedding: Embedding;
  constructor(c: CLIPTextConfig) {
    super();
    // A persistent int64 buffer in transformers <= 4.30 (SD 1.5's checkpoint has it); later
    // versions drop it from the state dict, so CLIPTextModel.loadStateDict supplies it when absent.
    this.positionIds = this.buffer('position_ids', [1, c.max_position_embeddings]);
    this.tokenEmbedding = this.child('token_embedding', new Embedding(c.vocab_size, c.hidden_size));
    this.positionEmbedding = this.child('position_embedding', new Embedding(c.max_position_embeddings, c.hidden_size));
  }
  forward(inputIds: Tensor): Tensor {
    return scope(() => {
      const positions = this.positionIds.t.narrow(1, 0, inputIds.shape[1]!);
      return this.tokenEmbedding.forward(inputIds).add(this.positionEmbedding.forward(positions));
    });
  }
}

class CLIPTextTransformer extends Module {
  readonly embeddings: CLIPTextEmbeddings;
  readonly encoder: CLIPEncoder;
  readonly finalLayerNorm: LayerNorm;
  constructor(c: CLIPTextConfig) {
    super();
    this.embeddings = this.child('embeddings', new CLIPTextEmbeddings(c));
    this.encoder = this.child('encoder', new CLIPEncoder(c));
    this.finalLayerNorm = this.child('final_layer_norm', new LayerNorm(c.hidden_size, c.layer_norm_eps));
  }
}

export interface CLIPTextForwardOptions {
  /** Also return every layer's output (hiddenStates). Default false. */
  outputHiddenStates?: boolean;
  /**
   * Padding mask [B, L] (1 = token, 0 = padding), as transformers' attention_mask. Stable
   * Diffusion pipelines pass none: padding tokens are attended to and only the causal mask applies.
   */
  attentionMask?: Tensor | null;
}

/**
 * - lastHiddenState [B, L, D] after final_layer_norm: SD 1.x's UNet conditioning.
 * - pooledOutput [B, D]: lastHiddenState at each row's first maximal id (the first <|endoftext|>
 *   for CLIP vocabularies).
 * - hiddenStates, with outputHiddenStates: num_hidden_layers + 1 tensors [B, L, D] — the embedding
 *   output, then each layer's output before final_layer_norm. `hiddenStates.at(-2)` is the
 *   penultimate layer ("clip skip 2").
 */
export type CLIPTextOutput = CLIPTowerOutput;

// torch.finfo(dtype).min: the additive mask value transformers uses (not -inf).
const FINFO_MIN: Partial<Record<DType, number>> = {
  float32: -3.4028234663852886e38,
  float64: -1.7976931348623157e308,
  float16: -65504,
  bfloat16: -3.3895313892515355e38,
};

export class CLIPTextModel extends CLIPPreTrainedModel {
  readonly config: CLIPTextConfig;
  readonly textModel: CLIPTextTransformer;

  /** From a CLIPTextConfig / CLIPConfig dict (config.json) or a parsed CLIPTextConfig. */
  constructor(config: Record<string, unknown> | CLIPTextConfig) {
    super();
    this.config = parseCLIPTextConfig(config as Record<string, unknown>);
    this.textModel = this.child('text_model', new CLIPTextTransformer(this.config));
  }

  /** input ids [B, L] (int64 or int32, L ≤ max_position_embeddings) → hidden states; see CLIPTextOutput. */
  forward(inputIds: Tensor, o: CLIPTextForwardOptions = {}): CLIPTextOutput {
    this.#checkIds(inputIds);
    const outputHiddenStates = o.outputHiddenStates ?? false;
    return scope(() => {
      const tm = this.textModel;
      const h = tm.embeddings.forward(inputIds);
      const mask = this.#mask(inputIds.shape[1]!, h, o.attentionMask ?? null);
      const hidden = tm.encoder.forward(h, mask);
      const lastHiddenState = tm.finalLayerNorm.forward(hidden.at(-1)!);
      // transformers 4.27: last_hidden_state[arange(B), input_ids.argmax(-1)]. argmax returns the
      // first maximal index, and <|endoftext|> (49407) is CLIP's largest id, so this is the EOS
      // even when the padding is also <|endoftext|>.
      const rows = arange(0, inputIds.shape[0]!, 1, { dtype: 'int64', device: h.device });
      const pooledOutput = lastHiddenState.index([rows, inputIds.argmax(-1)]);
      return outputHiddenStates
        ? { lastHiddenState, pooledOutput, hiddenStates: hidden }
        : { lastHiddenState, pooledOutput };
    });
  }

  #checkIds(ids: Tensor): void {
    if (!isTensor(ids))
      throw new ArgumentError(
        `CLIPTextModel.forward: Expected input ids to be an int64 Tensor [batch, length] but received ${describe(ids)}`,
      );
    if (ids.dtype !== 'int64' && ids.dtype !== 'int32')
      throw new ArgumentError(
        `CLIPTextModel.forward: Expected integer input ids (int64 or int32) but received ${ids.dtype}`,
      );
    const shape = ids.shape;
    if (shape.length !== 2 || shape[0] === 0 || shape[1] === 0)
      throw new ImmunizeError(
        'E_SHAPE',
        `CLIPTextModel.forward: Expected input ids of shape [batch, length] with both > 0 but received [${shape.join(', ')}]`,
      );
    const max = this.config.max_position_embeddings;
    if (shape[1]! > max)
      throw new ImmunizeError(
        'E_SHAPE',
        `CLIPTextModel.forward: ${shape[1]} tokens per row, but the model has ${max} positions (max_position_embeddings); tokenize with truncation to ${max}`,
      );
    const [lo, hi] = noGrad(() => scope(() => [ids.min().item(), ids.max().item()]));
    if (lo! < 0 || hi! >= this.config.vocab_size)
      throw new ArgumentError(
        `CLIPTextModel.forward: token ids must be in [0, ${this.config.vocab_size}) (vocab_size) but range over [${lo}, ${hi}]`,
      );
  }

  /** Additive mask [B or 1, 1, L, L]: finfo.min above the diagonal (causal) and on padded keys, 0 elsewhere. */
  #mask(l: number, like: Tensor, padding: Tensor | null): Tensor {
    const min = FINFO_MIN[like.dtype];
    if (min === undefined)
      throw new ArgumentError(`CLIPTextModel: weights must be floating point but are ${like.dtype}`);
    return scope(() => {
      const ones = full([l, l], true, { dtype: 'bool', device: like.device });
      let blocked = ones.triu(1).view(1, 1, l, l);
      if (padding !== null) {
        const [b, pl] = padding.shape;
        if (padding.ndim !== 2 || pl !== l || b !== like.shape[0])
          throw new ImmunizeError(
            'E_SHAPE',
            `CLIPTextModel.forward: attentionMask must be [${like.shape[0]}, ${l}] but is [${padding.shape.join(', ')}]`,
          );
        blocked = blocked.logicalOr(padding.eq(0).view(b!, 1, 1, l));
      }
      return full(blocked.shape, 0, { dtype: like.dtype, device: like.device }).maskedFill(blocked, min);
    });
  }
}

export interface LoadCLIPTextModelOptions {
  /** Compute dtype (fp16 weights are converted). Default float32. */
  dtype?: DType;
  device?: Device;
  /** Prefer `model.fp16.safetensors` when a folder has both. */
  variant?: 'fp16';
}

/**
 * Loads a CLIPTextModel from a `text_encoder/` folder (config.json + model[.fp16].safetensors),
 * a diffusers pipeline folder (uses its text_encoder/), or one .safetensors file with config.json
 * beside it. A full CLIP checkpoint (CLIPConfig with text_config) loads its text tower only.
 * Pickle checkpoints (pytorch_model.bin) are refused.
 */
export function loadCLIPTextModel(path: string, o: LoadCLIPTextModelOptions = {}): CLIPTextModel {
  const preferred =
    o.variant === 'fp16'
      ? ['model.fp16.safetensors', 'model.safetensors']
      : ['model.safetensors', 'model.fp16.safetensors'];
  const pipelineTextEncoder = (dir: string) =>
    !existsSync(join(dir, 'config.json')) && existsSync(join(dir, 'text_encoder', 'config.json'))
      ? join(dir, 'text_encoder')
      : dir;
  const { folder, weights } = locateCheckpoint(path, preferred, pipelineTextEncoder);
  const config = readConfigJson(folder, 'a CLIP text encoder needs its transformers config.json');
  const fullClip = isFullCLIPConfig(config.raw, 'text');
  const model = new CLIPTextModel(parseCLIPTextConfig(config.raw, config.path));
  try {
    using source = new SafetensorsSource([
      { path: weights, rename: fullClip ? (k) => (k.startsWith('text_model.') ? k : null) : undefined },
    ]);
    model.loadStateDict(source, { dtype: o.dtype ?? 'float32', device: o.device, label: basename(weights) });
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}
