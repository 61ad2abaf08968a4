/**
 * The pre-LayerNorm transformer encoder of both CLIP towers (transformers 4.27 `modeling_clip.py`:
 * CLIPAttention, CLIPMLP, CLIPEncoderLayer, CLIPEncoder). Attribute paths are the checkpoint's
 * (`encoder.layers.N.{self_attn.{k,v,q,out}_proj, layer_norm1, mlp.fc1, mlp.fc2, layer_norm2}.*`).
 * The text tower passes its causal/padding mask; the vision tower attends everywhere (no mask).
 */
import { LayerNorm, Linear, ModuleList, activation } from '../../nn/layers.js';
import { Module } from '../../nn/module.js';
import { scope, type Tensor } from '../../torch/index.js';
import { ACTIVATIONS, type CLIPEncoderConfig } from './config.js';

/** What a tower's forward returns (transformers' BaseModelOutputWithPooling); each tower says what its fields hold. */
export interface CLIPTowerOutput {
  lastHiddenState: Tensor;
  pooledOutput: Tensor;
  /** With outputHiddenStates: num_hidden_layers + 1 tensors, as CLIPEncoder.forward returns them. */
  hiddenStates?: Tensor[];
}

class CLIPAttention extends Module {
  readonly kProj: Linear;
  readonly vProj: Linear;
  readonly qProj: Linear;
  readonly outProj: Linear;
  readonly heads: number;
  readonly headDim: number;
  constructor(c: CLIPEncoderConfig) {
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
  /** x [B, L, D]; mask additive [B or 1, 1, L, L], or null to attend everywhere. */
  forward(x: Tensor, mask: Tensor | null): Tensor {
    return scope(() => {
      const [b, l, d] = x.shape as [number, number, number];
      const split = (t: Tensor) => t.view(b, l, this.heads, this.headDim).transpose(1, 2);
      // transformers scales q by head_dim^-0.5 BEFORE q kᵀ; same order here for the same rounding.
      // Plain matmul + softmax (no baddbmm with beta=0: the libtorch 1.13 NaN trap, DESIGN §7).
      const q = split(this.qProj.forward(x).mul(this.headDim ** -0.5));
      const k = split(this.kProj.forward(x));
      const v = split(this.vProj.forward(x));
      const scores = q.matmul(k.transpose(-1, -2));
      const probs = (mask === null ? scores : scores.add(mask)).softmax(-1);
      return this.outProj.forward(probs.matmul(v).transpose(1, 2).reshape(b, l, d));
    });
  }
}

class CLIPMLP extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;
  readonly #act: (x: Tensor) => Tensor;
  constructor(c: CLIPEncoderConfig) {
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
  constructor(c: CLIPEncoderConfig) {
    super();
    this.selfAttn = this.child('self_attn', new CLIPAttention(c));
    this.layerNorm1 = this.child('layer_norm1', new LayerNorm(c.hidden_size, c.layer_norm_eps));
    this.mlp = this.child('mlp', new CLIPMLP(c));
    this.layerNorm2 = this.child('layer_norm2', new LayerNorm(c.hidden_size, c.layer_norm_eps));
  }
  forward(x: Tensor, mask: Tensor | null): Tensor {
    return scope(() => {
      const h = x.add(this.selfAttn.forward(this.layerNorm1.forward(x), mask));
      return h.add(this.mlp.forward(this.layerNorm2.forward(h)));
    });
  }
}

export class CLIPEncoder extends Module {
  readonly layers: ModuleList<CLIPEncoderLayer>;
  constructor(c: CLIPEncoderConfig) {
    super();
    this.layers = this.child(
      'layers',
      new ModuleList(Array.from({ length: c.num_hidden_layers }, () => new CLIPEncoderLayer(c))),
    );
  }
  /**
   * Runs every layer on `h` [B, L, D]; returns the hidden states, num_hidden_layers + 1 of them:
   * `h` itself, then each layer's output (the last is the encoder's output). Call inside a scope.
   */
  forward(h: Tensor, mask: Tensor | null = null): Tensor[] {
    const hidden = [h];
    for (const layer of this.layers.items) hidden.push(layer.forward(hidden.at(-1)!, mask));
    return hidden;
  }
}
