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
import { LayerNorm, Linear, ModuleList, activation } from '../../nn/layers.js';
import { Module, mapSource, type LoadStateDictOptions, type ParamRef, type WeightSource } from '../../nn/module.js';
import { F, arange, cat, isTensor, scope, type Tensor } from '../../torch/index.js';

export interface CLIPVisionConfig {
  hidden_size: number;
  intermediate_size: number;
  projection_dim: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_channels: number;
  image_size: number;
  patch_size: number;
  hidden_act: string;
  layer_norm_eps: number;
}

// transformers 4.27 CLIPVisionConfig.__init__ defaults (configuration_clip.py).
const DEFAULTS: CLIPVisionConfig = {
  hidden_size: 768, intermediate_size: 3072, projection_dim: 512, num_hidden_layers: 12, num_attention_heads: 12,
  num_channels: 3, image_size: 224, patch_size: 32, hidden_act: 'quick_gelu', layer_norm_eps: 1e-5,
};
const INT_FIELDS = ['hidden_size', 'intermediate_size', 'projection_dim', 'num_hidden_layers', 'num_attention_heads', 'num_channels', 'image_size', 'patch_size'] as const;
// transformers' ACT2FN names CLIP configs use (see text-model.ts).
const ACTIVATIONS: Record<string, string> = { quick_gelu: 'quick_gelu', gelu: 'gelu', gelu_new: 'gelu_tanh', gelu_pytorch_tanh: 'gelu_tanh', relu: 'relu', silu: 'silu', swish: 'silu' };

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/**
 * Parses a CLIPVisionConfig, or the `vision_config` (overridden by `vision_config_dict`, as 4.27
 * does) of a full CLIPConfig, with transformers' defaults for absent fields.
 */
export function parseCLIPVisionConfig(raw: Record<string, unknown>, label = 'config.json'): CLIPVisionConfig {
  if (!isObject(raw)) throw new ImmunizeError('E_CONFIG', `${label}: expected a JSON object but received ${describe(raw)}`);
  let src = raw;
  if (isObject(raw['vision_config']) || isObject(raw['vision_config_dict']) || raw['model_type'] === 'clip') {
    src = { ...(isObject(raw['vision_config']) ? raw['vision_config'] : {}), ...(isObject(raw['vision_config_dict']) ? raw['vision_config_dict'] : {}) };
    label = `${label} (vision_config)`;
  }
  const cfg = { ...DEFAULTS };
  for (const k of Object.keys(DEFAULTS) as (keyof CLIPVisionConfig)[]) {
    if (src[k] !== undefined && src[k] !== null) (cfg as Record<string, unknown>)[k] = src[k];
  }
  for (const k of INT_FIELDS) {
    if (!Number.isSafeInteger(cfg[k]) || cfg[k] < 1) throw new ImmunizeError('E_CONFIG', `${label}: ${k} should be a positive integer but is ${describe(cfg[k])}`);
  }
  if (cfg.hidden_size % cfg.num_attention_heads !== 0) {
    throw new ImmunizeError('E_CONFIG', `${label}: hidden_size ${cfg.hidden_size} is not divisible by num_attention_heads ${cfg.num_attention_heads}`);
  }
  if (cfg.image_size % cfg.patch_size !== 0) throw new ImmunizeError('E_CONFIG', `${label}: image_size ${cfg.image_size} is not a multiple of patch_size ${cfg.patch_size}`);
  if (typeof cfg.layer_norm_eps !== 'number' || !(cfg.layer_norm_eps > 0)) throw new ImmunizeError('E_CONFIG', `${label}: layer_norm_eps should be a positive number but is ${describe(cfg.layer_norm_eps)}`);
  if (typeof cfg.hidden_act !== 'string' || ACTIVATIONS[cfg.hidden_act] === undefined) {
    throw new ImmunizeError('E_CONFIG', `${label}: unknown hidden_act ${JSON.stringify(cfg.hidden_act)} (expected one of ${Object.keys(ACTIVATIONS).join(', ')})`);
  }
  return cfg;
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

class CLIPVisionAttention extends Module {
  readonly kProj: Linear;
  readonly vProj: Linear;
  readonly qProj: Linear;
  readonly outProj: Linear;
  readonly heads: number;
  readonly headDim: number;
  constructor(c: CLIPVisionConfig) {
    super();
    const d = c.hidden_size;
    this.heads = c.num_attention_heads;
    this.headDim = d / this.heads;
    this.kProj = this.child('k_proj', new Linear(d, d));
    this.vProj = this.child('v_proj', new Linear(d, d));
    this.qProj = this.child('q_proj', new Linear(d, d));
    this.outProj = this.child('out_proj', new Linear(d, d));
  }
  forward(x: Tensor): Tensor {
    return scope(() => {
      const [b, l, d] = x.shape as [number, number, number];
      const split = (t: Tensor) => t.view(b, l, this.heads, this.headDim).transpose(1, 2);
      // transformers scales q by head_dim^-0.5 before q kᵀ. matmul + softmax, never baddbmm(beta=0) (DESIGN §7).
      const q = split(this.qProj.forward(x).mul(this.headDim ** -0.5));
      const k = split(this.kProj.forward(x));
      const v = split(this.vProj.forward(x));
      const probs = q.matmul(k.transpose(-1, -2)).softmax(-1);
      return this.outProj.forward(probs.matmul(v).transpose(1, 2).reshape(b, l, d));
    });
  }
}

class CLIPVisionMLP extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;
  readonly #act: (x: Tensor) => Tensor;
  constructor(c: CLIPVisionConfig) {
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
class CLIPVisionEncoderLayer extends Module {
  readonly selfAttn: CLIPVisionAttention;
  readonly layerNorm1: LayerNorm;
  readonly mlp: CLIPVisionMLP;
  readonly layerNorm2: LayerNorm;
  constructor(c: CLIPVisionConfig) {
    super();
    this.selfAttn = this.child('self_attn', new CLIPVisionAttention(c));
    this.layerNorm1 = this.child('layer_norm1', new LayerNorm(c.hidden_size, c.layer_norm_eps));
    this.mlp = this.child('mlp', new CLIPVisionMLP(c));
    this.layerNorm2 = this.child('layer_norm2', new LayerNorm(c.hidden_size, c.layer_norm_eps));
  }
  forward(x: Tensor): Tensor {
    return scope(() => {
      const h = x.add(this.selfAttn.forward(this.layerNorm1.forward(x)));
      return h.add(this.mlp.forward(this.layerNorm2.forward(h)));
    });
  }
}

class CLIPVisionEncoder extends Module {
  readonly layers: ModuleList<CLIPVisionEncoderLayer>;
  constructor(c: CLIPVisionConfig) {
    super();
    this.layers = this.child('layers', new ModuleList(Array.from({ length: c.num_hidden_layers }, () => new CLIPVisionEncoderLayer(c))));
  }
}

/** transformers' CLIPVisionTransformer (the module under `vision_model.`). */
export class CLIPVisionTransformer extends Module {
  readonly embeddings: CLIPVisionEmbeddings;
  readonly preLayrnorm: LayerNorm;
  readonly encoder: CLIPVisionEncoder;
  readonly postLayernorm: LayerNorm;
  constructor(readonly config: CLIPVisionConfig) {
    super();
    this.embeddings = this.child('embeddings', new CLIPVisionEmbeddings(config));
    this.preLayrnorm = this.child('pre_layrnorm', new LayerNorm(config.hidden_size, config.layer_norm_eps));
    this.encoder = this.child('encoder', new CLIPVisionEncoder(config));
    this.postLayernorm = this.child('post_layernorm', new LayerNorm(config.hidden_size, config.layer_norm_eps));
  }
}

export interface CLIPVisionForwardOptions {
  /** Also return the embedding output and every layer's output. Default false. */
  outputHiddenStates?: boolean;
}

export interface CLIPVisionOutput {
  /** [N, 1 + patches, D]: the last layer's output (no final norm, as transformers). */
  lastHiddenState: Tensor;
  /** [N, D]: post_layernorm of the class token. */
  pooledOutput: Tensor;
  /** With outputHiddenStates: num_hidden_layers + 1 tensors (pre_layrnorm input first, as transformers). */
  hiddenStates?: Tensor[];
}

const POSITION_IDS = 'vision_model.embeddings.position_ids';

export class CLIPVisionModel extends Module {
  readonly config: CLIPVisionConfig;
  readonly visionModel: CLIPVisionTransformer;

  constructor(config: Record<string, unknown> | CLIPVisionConfig) {
    super();
    this.config = parseCLIPVisionConfig(config as Record<string, unknown>);
    this.visionModel = this.child('vision_model', new CLIPVisionTransformer(this.config));
  }

  /** loadStateDict that supplies `position_ids` when a checkpoint lacks it and stores it as int64. */
  override loadStateDict(source: WeightSource | ReadonlyMap<string, Tensor>, o: LoadStateDictOptions = {}): this {
    return super.loadStateDict(withPositionIds(source, o, [[POSITION_IDS, numPositions(this.config)]]), { ...o, rename: undefined });
  }

  /** pixel values [N, C, image_size, image_size] (already normalised: see image-processor.ts) → hidden states. */
  forward(pixelValues: Tensor, o: CLIPVisionForwardOptions = {}): CLIPVisionOutput {
    return runVisionTransformer(this.visionModel, pixelValues, o);
  }
}

/** The vision tower's forward (shared by CLIPVisionModel and CLIPModel). */
export function runVisionTransformer(vm: CLIPVisionTransformer, pixelValues: Tensor, o: CLIPVisionForwardOptions = {}): CLIPVisionOutput {
  const c = vm.config;
  if (!isTensor(pixelValues)) throw new ArgumentError(`CLIPVisionModel.forward: expected pixel values to be a Tensor [N, ${c.num_channels}, ${c.image_size}, ${c.image_size}] but received ${describe(pixelValues)}`);
  const s = pixelValues.shape;
  if (s.length !== 4 || s[1] !== c.num_channels || s[2] !== c.image_size || s[3] !== c.image_size || s[0] === 0) {
    throw new ImmunizeError('E_SHAPE', `CLIPVisionModel.forward: expected pixel values [N, ${c.num_channels}, ${c.image_size}, ${c.image_size}] (see clipPreprocess) but received [${s.join(', ')}]`);
  }
  return scope(() => {
    let h = vm.preLayrnorm.forward(vm.embeddings.forward(pixelValues));
    const hidden: Tensor[] = [h];
    for (const layer of vm.encoder.layers.items) {
      h = layer.forward(h);
      hidden.push(h);
    }
    const pooledOutput = vm.postLayernorm.forward(h.select(1, 0));
    return o.outputHiddenStates ? { lastHiddenState: h, pooledOutput, hiddenStates: hidden } : { lastHiddenState: h, pooledOutput };
  });
}

/**
 * A WeightSource view that supplies absent `position_ids` buffers as arange(n) (transformers ≥ 4.31
 * no longer saves them) and converts present ones to int64; applies `o.rename` first.
 */
export function withPositionIds(source: WeightSource | ReadonlyMap<string, Tensor>, o: LoadStateDictOptions, ids: readonly (readonly [string, number])[]): WeightSource {
  const src = source instanceof Map ? mapSource(source) : (source as WeightSource);
  const names = new Map<string, string>();
  for (const k of src.keys()) {
    const mine = o.rename ? o.rename(k) : k;
    if (mine !== null) names.set(mine, k);
  }
  const synth = new Map(ids.filter(([k]) => !names.has(k)));
  const isId = new Set(ids.map(([k]) => k));
  return {
    keys: () => [...names.keys(), ...synth.keys()],
    shape: (k) => (synth.has(k) ? [1, synth.get(k)!] : src.shape(names.get(k)!)),
    read: (k) => {
      const n = synth.get(k);
      if (n !== undefined) {
        using r = arange(0, n, 1, { dtype: 'int64' });
        return r.unsqueeze(0);
      }
      const t = src.read(names.get(k)!);
      if (!isId.has(k) || t.dtype === 'int64') return t;
      using _t = t;
      return t.to('int64');
    },
  };
}
