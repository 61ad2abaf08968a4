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
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';
import { ArgumentError, ImmunizeError, describe } from '../../errors.js';
import { LayerNorm, Linear, ModuleList, activation } from '../../nn/layers.js';
import { Module, mapSource, type LoadStateDictOptions, type ParamRef, type WeightSource } from '../../nn/module.js';
import { arange, full, isTensor, noGrad, scope, type DType, type Device, type Tensor } from '../../torch/index.js';
import { SafetensorsSource, refusePickle } from '../load.js';

export interface CLIPTextConfig {
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  max_position_embeddings: number;
  hidden_act: string;
  layer_norm_eps: number;
  /** Used by CLIPTextModelWithProjection only; kept for completeness. */
  projection_dim: number;
  bos_token_id: number;
  eos_token_id: number;
  pad_token_id: number;
}

// transformers 4.27 CLIPTextConfig.__init__ defaults (configuration_clip.py).
const DEFAULTS: CLIPTextConfig = {
  vocab_size: 49408, hidden_size: 512, intermediate_size: 2048, num_hidden_layers: 12, num_attention_heads: 8,
  max_position_embeddings: 77, hidden_act: 'quick_gelu', layer_norm_eps: 1e-5, projection_dim: 512,
  bos_token_id: 0, eos_token_id: 2, pad_token_id: 1,
};
const INT_FIELDS = ['vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'max_position_embeddings', 'projection_dim'] as const;
// transformers' ACT2FN names that CLIP text configs use: quick_gelu (OpenAI CLIP, SD 1.x), gelu
// (OpenCLIP, SD 2.x); 'gelu_new' is the tanh approximation.
const ACTIVATIONS: Record<string, string> = { quick_gelu: 'quick_gelu', gelu: 'gelu', gelu_new: 'gelu_tanh', gelu_pytorch_tanh: 'gelu_tanh', relu: 'relu', silu: 'silu', swish: 'silu' };

/** True when `raw` is a full CLIPConfig (text and vision towers) rather than a CLIPTextConfig. */
export function isFullCLIPConfig(raw: Record<string, unknown>): boolean {
  return isObject(raw['text_config']) || isObject(raw['text_config_dict']) || raw['model_type'] === 'clip';
}

/**
 * Parses a transformers CLIPTextConfig (`text_encoder/config.json`), or the `text_config` of a full
 * CLIPConfig, filling transformers' defaults for absent fields.
 */
export function parseCLIPTextConfig(raw: Record<string, unknown>, label = 'config.json'): CLIPTextConfig {
  if (!isObject(raw)) throw new ImmunizeError('E_CONFIG', `${label}: expected a JSON object but received ${describe(raw)}`);
  let src = raw;
  if (isFullCLIPConfig(raw)) {
    // CLIPConfig 4.27: text_config_dict (older files) overrides text_config.
    src = { ...(isObject(raw['text_config']) ? raw['text_config'] : {}), ...(isObject(raw['text_config_dict']) ? raw['text_config_dict'] : {}) };
    label = `${label} (text_config)`;
  }
  const cfg = { ...DEFAULTS };
  for (const k of Object.keys(DEFAULTS) as (keyof CLIPTextConfig)[]) {
    if (src[k] !== undefined && src[k] !== null) (cfg as Record<string, unknown>)[k] = src[k];
  }
  for (const k of INT_FIELDS) {
    if (!Number.isSafeInteger(cfg[k]) || cfg[k] < 1) throw new ImmunizeError('E_CONFIG', `${label}: ${k} should be a positive integer but is ${describe(cfg[k])}`);
  }
  if (cfg.hidden_size % cfg.num_attention_heads !== 0) {
    throw new ImmunizeError('E_CONFIG', `${label}: hidden_size ${cfg.hidden_size} is not divisible by num_attention_heads ${cfg.num_attention_heads}`);
  }
  if (typeof cfg.layer_norm_eps !== 'number' || !(cfg.layer_norm_eps > 0)) throw new ImmunizeError('E_CONFIG', `${label}: layer_norm_eps should be a positive number but is ${describe(cfg.layer_norm_eps)}`);
  if (typeof cfg.hidden_act !== 'string' || ACTIVATIONS[cfg.hidden_act] === undefined) {
    throw new ImmunizeError('E_CONFIG', `${label}: unknown hidden_act ${JSON.stringify(cfg.hidden_act)} (expected one of ${Object.keys(ACTIVATIONS).join(', ')})`);
  }
  return cfg;
}

/** nn.Embedding: a [num, dim] table looked up by integer ids (index_select, as PyTorch's forward). */
class Embedding extends Module {
  readonly weight: ParamRef;
  constructor(readonly numEmbeddings: number, readonly dim: number) {
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

class CLIPAttention extends Module {
  readonly kProj: Linear;
  readonly vProj: Linear;
  readonly qProj: Linear;
  readonly outProj: Linear;
  readonly heads: number;
  readonly headDim: number;
  constructor(c: CLIPTextConfig) {
    super();
    const d = c.hidden_size;
    this.heads = c.num_attention_heads;
    this.headDim = d / this.heads;
    // Registration order k, v, q, out is transformers' (the manifest's key order).
    this.kProj = this.child('k_proj', new Linear(d, d));
    this.vProj = this.child('v_proj', new Linear(d, d));
    this.qProj = this.child('q_proj', new Linear(d, d));
    this.outProj = this.child('out_proj', new Linear(d, d));
  }
  /** x [B, L, D]; mask additive [B or 1, 1, L, L]. */
  forward(x: Tensor, mask: Tensor): Tensor {
    return scope(() => {
      const [b, l, d] = x.shape as [number, number, number];
      const split = (t: Tensor) => t.view(b, l, this.heads, this.headDim).transpose(1, 2);
      // transformers scales q by head_dim^-0.5 BEFORE q kᵀ; same order here for the same rounding.
      // Plain matmul + softmax (no baddbmm with beta=0: the libtorch 1.13 NaN trap, DESIGN §7).
      const q = split(this.qProj.forward(x).mul(this.headDim ** -0.5));
      const k = split(this.kProj.forward(x));
      const v = split(this.vProj.forward(x));
      const probs = q.matmul(k.transpose(-1, -2)).add(mask).softmax(-1);
      return this.outProj.forward(probs.matmul(v).transpose(1, 2).reshape(b, l, d));
    });
  }
}

class CLIPMLP extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;
  readonly #act: (x: Tensor) => Tensor;
  constructor(c: CLIPTextConfig) {
    super();
    this.fc1 = this.child('fc1', new Linear(c.hidden_size, c.intermediate_size));
    this.fc2 = this.child('fc2', new Linear(c.intermediate_size, c.hidden_size));
    this.#act = activation(ACTIVATIONS[c.hidden_act]!);
  }
  forward(x: Tensor): Tensor {
    return scope(() => this.fc2.forward(this.#act(this.fc1.forward(x))));
  }
}

/** Pre-LayerNorm block: x + attn(ln1(x)), then + mlp(ln2(x)). */
class CLIPEncoderLayer extends Module {
  readonly selfAttn: CLIPAttention;
  readonly layerNorm1: LayerNorm;
  readonly mlp: CLIPMLP;
  readonly layerNorm2: LayerNorm;
  constructor(c: CLIPTextConfig) {
    super();
    this.selfAttn = this.child('self_attn', new CLIPAttention(c));
    this.layerNorm1 = this.child('layer_norm1', new LayerNorm(c.hidden_size, c.layer_norm_eps));
    this.mlp = this.child('mlp', new CLIPMLP(c));
    this.layerNorm2 = this.child('layer_norm2', new LayerNorm(c.hidden_size, c.layer_norm_eps));
  }
  forward(x: Tensor, mask: Tensor): Tensor {
    return scope(() => {
      const h = x.add(this.selfAttn.forward(this.layerNorm1.forward(x), mask));
      return h.add(this.mlp.forward(this.layerNorm2.forward(h)));
    });
  }
}

class CLIPEncoder extends Module {
  readonly layers: ModuleList<CLIPEncoderLayer>;
  constructor(c: CLIPTextConfig) {
    super();
    this.layers = this.child('layers', new ModuleList(Array.from({ length: c.num_hidden_layers }, () => new CLIPEncoderLayer(c))));
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

export interface CLIPTextOutput {
  /** [B, L, D] after final_layer_norm: SD 1.x's UNet conditioning. */
  lastHiddenState: Tensor;
  /** [B, D]: lastHiddenState at each row's first maximal id (the first <|endoftext|> for CLIP vocabularies). */
  pooledOutput: Tensor;
  /**
   * With outputHiddenStates: num_hidden_layers + 1 tensors [B, L, D] — the embedding output, then
   * each layer's output before final_layer_norm. `hiddenStates.at(-2)` is the penultimate layer
   * ("clip skip 2").
   */
  hiddenStates?: Tensor[];
}

// torch.finfo(dtype).min: the additive mask value transformers uses (not -inf).
const FINFO_MIN: Partial<Record<DType, number>> = { float32: -3.4028234663852886e38, float64: -1.7976931348623157e308, float16: -65504, bfloat16: -3.3895313892515355e38 };

const POSITION_IDS = 'text_model.embeddings.position_ids';

export class CLIPTextModel extends Module {
  readonly config: CLIPTextConfig;
  readonly textModel: CLIPTextTransformer;

  /** From a CLIPTextConfig / CLIPConfig dict (config.json) or a parsed CLIPTextConfig. */
  constructor(config: Record<string, unknown> | CLIPTextConfig) {
    super();
    this.config = parseCLIPTextConfig(config as Record<string, unknown>);
    this.textModel = this.child('text_model', new CLIPTextTransformer(this.config));
  }

  /**
   * loadStateDict that accepts checkpoints with or without `position_ids` (transformers >= 4.31
   * no longer saves it; it is then arange(max_position_embeddings)) and stores it as int64
   * whatever dtype it was saved in (a float copy is truncated, as torch's load_state_dict does).
   */
  override loadStateDict(source: WeightSource | ReadonlyMap<string, Tensor>, o: LoadStateDictOptions = {}): this {
    const src = source instanceof Map ? mapSource(source) : (source as WeightSource);
    const names = new Map<string, string>(); // this model's key -> source key
    for (const k of src.keys()) {
      const mine = o.rename ? o.rename(k) : k;
      if (mine !== null) names.set(mine, k);
    }
    const n = this.config.max_position_embeddings;
    const synth = !names.has(POSITION_IDS);
    const view: WeightSource = {
      keys: () => (synth ? [...names.keys(), POSITION_IDS] : names.keys()),
      shape: (k) => (synth && k === POSITION_IDS ? [1, n] : src.shape(names.get(k)!)),
      read: (k) => {
        if (synth && k === POSITION_IDS) {
          using r = arange(0, n, 1, { dtype: 'int64' });
          return r.unsqueeze(0);
        }
        const t = src.read(names.get(k)!);
        if (k !== POSITION_IDS || t.dtype === 'int64') return t;
        using _t = t;
        return t.to('int64');
      },
    };
    return super.loadStateDict(view, { ...o, rename: undefined });
  }

  /** input ids [B, L] (int64 or int32, L ≤ max_position_embeddings) → hidden states; see CLIPTextOutput. */
  forward(inputIds: Tensor, o: CLIPTextForwardOptions = {}): CLIPTextOutput {
    this.#checkIds(inputIds);
    const outputHiddenStates = o.outputHiddenStates ?? false;
    return scope(() => {
      const tm = this.textModel;
      let h = tm.embeddings.forward(inputIds);
      const mask = this.#mask(inputIds.shape[1]!, h, o.attentionMask ?? null);
      const hidden: Tensor[] = [h];
      for (const layer of tm.encoder.layers.items) {
        h = layer.forward(h, mask);
        hidden.push(h);
      }
      const lastHiddenState = tm.finalLayerNorm.forward(h);
      // transformers 4.27: last_hidden_state[arange(B), input_ids.argmax(-1)]. argmax returns the
      // first maximal index, and <|endoftext|> (49407) is CLIP's largest id, so this is the EOS
      // even when the padding is also <|endoftext|>.
      const rows = arange(0, inputIds.shape[0]!, 1, { dtype: 'int64', device: h.device });
      const pooledOutput = lastHiddenState.index([rows, inputIds.argmax(-1)]);
      return outputHiddenStates ? { lastHiddenState, pooledOutput, hiddenStates: hidden } : { lastHiddenState, pooledOutput };
    });
  }

  #checkIds(ids: Tensor): void {
    if (!isTensor(ids)) throw new ArgumentError(`CLIPTextModel.forward: Expected input ids to be an int64 Tensor [batch, length] but received ${describe(ids)}`);
    if (ids.dtype !== 'int64' && ids.dtype !== 'int32') throw new ArgumentError(`CLIPTextModel.forward: Expected integer input ids (int64 or int32) but received ${ids.dtype}`);
    const shape = ids.shape;
    if (shape.length !== 2 || shape[0] === 0 || shape[1] === 0) throw new ImmunizeError('E_SHAPE', `CLIPTextModel.forward: Expected input ids of shape [batch, length] with both > 0 but received [${shape.join(', ')}]`);
    const max = this.config.max_position_embeddings;
    if (shape[1]! > max) throw new ImmunizeError('E_SHAPE', `CLIPTextModel.forward: ${shape[1]} tokens per row, but the model has ${max} positions (max_position_embeddings); tokenize with truncation to ${max}`);
    const [lo, hi] = noGrad(() => scope(() => [ids.min().item(), ids.max().item()]));
    if (lo! < 0 || hi! >= this.config.vocab_size) throw new ArgumentError(`CLIPTextModel.forward: token ids must be in [0, ${this.config.vocab_size}) (vocab_size) but range over [${lo}, ${hi}]`);
  }

  /** Additive mask [B or 1, 1, L, L]: finfo.min above the diagonal (causal) and on padded keys, 0 elsewhere. */
  #mask(l: number, like: Tensor, padding: Tensor | null): Tensor {
    const min = FINFO_MIN[like.dtype];
    if (min === undefined) throw new ArgumentError(`CLIPTextModel: weights must be floating point but are ${like.dtype}`);
    return scope(() => {
      const ones = full([l, l], true, { dtype: 'bool', device: like.device });
      let blocked = ones.triu(1).view(1, 1, l, l);
      if (padding !== null) {
        const [b, pl] = padding.shape;
        if (padding.ndim !== 2 || pl !== l || b !== like.shape[0]) throw new ImmunizeError('E_SHAPE', `CLIPTextModel.forward: attentionMask must be [${like.shape[0]}, ${l}] but is [${padding.shape.join(', ')}]`);
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
  if (!existsSync(path)) throw new ImmunizeError('E_MODEL_FILE', `${path} does not exist`);
  let folder: string;
  let weights: string;
  if (statSync(path).isDirectory()) {
    folder = !existsSync(join(path, 'config.json')) && existsSync(join(path, 'text_encoder', 'config.json')) ? join(path, 'text_encoder') : path;
    weights = weightsIn(folder, o.variant);
  } else {
    refusePickle(path);
    if (extname(path) !== '.safetensors') throw new ImmunizeError('E_MODEL_FILE', `${path}: expected a .safetensors file or a folder`);
    folder = dirname(path);
    weights = path;
  }
  const configPath = join(folder, 'config.json');
  const raw = readJson(configPath);
  const fullClip = isFullCLIPConfig(raw);
  const model = new CLIPTextModel(parseCLIPTextConfig(raw, configPath));
  try {
    using source = new SafetensorsSource([{ path: weights, rename: fullClip ? (k) => (k.startsWith('text_model.') ? k : null) : undefined }]);
    model.loadStateDict(source, { dtype: o.dtype ?? 'float32', device: o.device, label: basename(weights) });
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}

function weightsIn(folder: string, variant?: 'fp16'): string {
  const files = readdirSync(folder);
  const st = files.filter((f) => f.endsWith('.safetensors')).sort();
  const pick = (name: string) => (st.includes(name) ? join(folder, name) : null);
  const chosen = (variant === 'fp16' ? pick('model.fp16.safetensors') : null) ?? pick('model.safetensors') ?? pick('model.fp16.safetensors') ?? (st.length === 1 ? join(folder, st[0]!) : null);
  if (chosen !== null) return chosen;
  const pickle = files.find((f) => ['.bin', '.pt', '.pth', '.ckpt'].includes(extname(f)));
  if (pickle !== undefined && st.length === 0) refusePickle(join(folder, pickle));
  throw new ImmunizeError('E_MODEL_FILE', st.length === 0
    ? `${folder}: no .safetensors weights found (files: ${files.join(', ') || 'none'})`
    : `${folder}: several .safetensors files and none is model.safetensors: ${st.join(', ')}`);
}

function readJson(path: string): Record<string, unknown> {
  if (!existsSync(path)) throw new ImmunizeError('E_MODEL_FILE', `${path} is missing (a CLIP text encoder needs its transformers config.json)`);
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new ImmunizeError('E_CONFIG', `${path} is not valid JSON: ${(e as Error).message}`);
  }
  if (!isObject(v)) throw new ImmunizeError('E_CONFIG', `${path} should hold a JSON object but holds ${describe(v)}`);
  return v;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}
