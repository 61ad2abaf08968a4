/**
 * The UNet's spatial transformer, as diffusers 0.14 builds it (`cross_attention.py`,
 * `attention.py`, `transformer_2d.py`): CrossAttention (to_q/to_k/to_v/to_out.0),
 * BasicTransformerBlock (norm1 → attn1 self, norm2 → attn2 cross, norm3 → GEGLU feed-forward,
 * each residual) and Transformer2DModel (GroupNorm → proj_in → blocks → proj_out, + residual).
 */
import { ArgumentError } from '../../errors.js';
import { Conv2d, GroupNorm, LayerNorm, Linear, ModuleList } from '../../nn/layers.js';
import { Module } from '../../nn/module.js';
import { F, scope, type Tensor } from '../../torch/index.js';

/**
 * softmax(q kᵀ · scale) v over [..., L, d] tensors. diffusers 0.14 computes the scores with
 * `baddbmm(empty, q, kᵀ, beta=0, alpha=scale)`, which reads uninitialised memory on libtorch 1.13
 * (DESIGN §7); F.scaledDotProductAttention is matmul + scale + softmax there (never baddbmm) and
 * the fused kernel on libtorch ≥ 2.
 * `upcast` (SD 2.x's upcast_attention): q and k go to float32 before the scores, and the
 * probabilities come back to v's dtype before the product with v — as 0.14's get_attention_scores.
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, scale: number, o: { upcast?: boolean } = {}): Tensor {
  if (!o.upcast || q.dtype === 'float32') return F.scaledDotProductAttention(q, k, v, { scale });
  return scope(() => {
    const scores = q.to('float32').matmul(k.to('float32').transpose(-1, -2)).mul(scale);
    return scores.softmax(-1).to(v.dtype).matmul(v);
  });
}

export interface CrossAttentionOptions {
  heads: number;
  dimHead: number;
  /** Width of the keys/values' source; null = self-attention (query_dim). */
  crossAttentionDim?: number | null;
  /** Bias on to_q/to_k/to_v (attention_bias; false in SD). */
  bias?: boolean;
  upcastAttention?: boolean;
}

/** to_out is `ModuleList([Linear, Dropout])` in diffusers: only index 0 has weights. */
class ToOut extends Module {
  readonly proj: Linear;
  constructor(inner: number, out: number) {
    super();
    this.proj = this.child('0', new Linear(inner, out));
  }
}

/** diffusers 0.14 CrossAttention with its default processor (CrossAttnProcessor). */
export class CrossAttention extends Module {
  readonly toQ: Linear;
  readonly toK: Linear;
  readonly toV: Linear;
  readonly toOut: ToOut;
  readonly heads: number;
  readonly dimHead: number;
  readonly crossAttentionDim: number;
  readonly scale: number;
  readonly upcastAttention: boolean;
  constructor(
    readonly queryDim: number,
    o: CrossAttentionOptions,
  ) {
    super();
    this.heads = o.heads;
    this.dimHead = o.dimHead;
    const inner = o.heads * o.dimHead;
    this.crossAttentionDim = o.crossAttentionDim ?? queryDim;
    this.scale = o.dimHead ** -0.5;
    this.upcastAttention = o.upcastAttention ?? false;
    this.toQ = this.child('to_q', new Linear(queryDim, inner, o.bias ?? false));
    this.toK = this.child('to_k', new Linear(this.crossAttentionDim, inner, o.bias ?? false));
    this.toV = this.child('to_v', new Linear(this.crossAttentionDim, inner, o.bias ?? false));
    this.toOut = this.child('to_out', new ToOut(inner, queryDim));
  }
  /** x [B, L, query_dim]; context [B, S, cross_attention_dim] (null: self-attention on x). */
  forward(x: Tensor, context: Tensor | null = null): Tensor {
    return scope(() => {
      const ctx = context ?? x;
      const [b, l] = [x.shape[0]!, x.shape[1]!];
      const s = ctx.shape[1]!;
      if (ctx.shape[ctx.ndim - 1] !== this.crossAttentionDim) {
        throw new ArgumentError(
          `CrossAttention: ${context ? 'encoder_hidden_states' : 'hidden states'} have ${ctx.shape[ctx.ndim - 1]} features but the layer expects ${this.crossAttentionDim} (shape [${ctx.shape.join(', ')}])`,
        );
      }
      // head_to_batch_dim as a view: [B, L, H·d] → [B, H, L, d].
      const split = (t: Tensor, n: number) => t.view(b, n, this.heads, this.dimHead).transpose(1, 2);
      const q = split(this.toQ.forward(x), l);
      const k = split(this.toK.forward(ctx), s);
      const v = split(this.toV.forward(ctx), s);
      const out = attention(q, k, v, this.scale, { upcast: this.upcastAttention });
      return this.toOut.proj.forward(out.transpose(1, 2).reshape(b, l, this.heads * this.dimHead));
    });
  }
}

/** GEGLU: proj → (value, gate) halves → value · gelu(gate) (exact erf gelu). */
class GEGLU extends Module {
  readonly proj: Linear;
  constructor(dimIn: number, dimOut: number) {
    super();
    this.proj = this.child('proj', new Linear(dimIn, dimOut * 2));
  }
  forward(x: Tensor): Tensor {
    return scope(() => {
      const [h, gate] = this.proj.forward(x).chunk(2, -1) as [Tensor, Tensor];
      return h.mul(gate.gelu());
    });
  }
}

/** `net = ModuleList([GEGLU, Dropout, Linear])`: weights at net.0.proj and net.2. */
class FeedForwardNet extends Module {
  readonly act: GEGLU;
  readonly out: Linear;
  constructor(dim: number, inner: number) {
    super();
    this.act = this.child('0', new GEGLU(dim, inner));
    this.out = this.child('2', new Linear(inner, dim));
  }
}

/** diffusers' FeedForward with activation_fn 'geglu' and mult 4. */
export class FeedForward extends Module {
  readonly net: FeedForwardNet;
  constructor(dim: number, mult = 4) {
    super();
    this.net = this.child('net', new FeedForwardNet(dim, dim * mult));
  }
  forward(x: Tensor): Tensor {
    return scope(() => this.net.out.forward(this.net.act.forward(x)));
  }
}

export interface TransformerBlockOptions {
  heads: number;
  dimHead: number;
  crossAttentionDim: number | null;
  onlyCrossAttention?: boolean;
  upcastAttention?: boolean;
}

/** BasicTransformerBlock: x += attn1(norm1 x); x += attn2(norm2 x, context); x += ff(norm3 x). */
export class BasicTransformerBlock extends Module {
  readonly attn1: CrossAttention;
  readonly ff: FeedForward;
  readonly attn2: CrossAttention | null;
  readonly norm1: LayerNorm;
  readonly norm2: LayerNorm | null;
  readonly norm3: LayerNorm;
  readonly onlyCrossAttention: boolean;
  constructor(dim: number, o: TransformerBlockOptions) {
    super();
    this.onlyCrossAttention = o.onlyCrossAttention ?? false;
    // Registration order = diffusers' (attn1, ff, attn2, norm1, norm2, norm3), so the state dict
    // lists keys in PyTorch's order.
    this.attn1 = this.child(
      'attn1',
      new CrossAttention(dim, {
        heads: o.heads,
        dimHead: o.dimHead,
        crossAttentionDim: this.onlyCrossAttention ? o.crossAttentionDim : null,
        upcastAttention: o.upcastAttention,
      }),
    );
    this.ff = this.child('ff', new FeedForward(dim));
    this.attn2 =
      o.crossAttentionDim !== null
        ? this.child(
            'attn2',
            new CrossAttention(dim, {
              heads: o.heads,
              dimHead: o.dimHead,
              crossAttentionDim: o.crossAttentionDim,
              upcastAttention: o.upcastAttention,
            }),
          )
        : null;
    this.norm1 = this.child('norm1', new LayerNorm(dim));
    this.norm2 = o.crossAttentionDim !== null ? this.child('norm2', new LayerNorm(dim)) : null;
    this.norm3 = this.child('norm3', new LayerNorm(dim));
  }
  forward(x: Tensor, context: Tensor | null): Tensor {
    return scope(() => {
      let h = this.attn1.forward(this.norm1.forward(x), this.onlyCrossAttention ? context : null).add(x);
      if (this.attn2 !== null) h = this.attn2.forward(this.norm2!.forward(h), context).add(h);
      return this.ff.forward(this.norm3.forward(h)).add(h);
    });
  }
}

export interface Transformer2DOptions {
  heads: number;
  dimHead: number;
  crossAttentionDim: number | null;
  groups: number;
  layers?: number;
  useLinearProjection?: boolean;
  onlyCrossAttention?: boolean;
  upcastAttention?: boolean;
}

/** Transformer2DModel on continuous (image) input. */
export class Transformer2DModel extends Module {
  readonly norm: GroupNorm;
  readonly projIn: Conv2d | Linear;
  readonly transformerBlocks: ModuleList<BasicTransformerBlock>;
  readonly projOut: Conv2d | Linear;
  readonly innerDim: number;
  readonly useLinearProjection: boolean;
  constructor(
    readonly inChannels: number,
    o: Transformer2DOptions,
  ) {
    super();
    const inner = o.heads * o.dimHead;
    this.innerDim = inner;
    this.useLinearProjection = o.useLinearProjection ?? false;
    // eps 1e-6 is hard-coded in diffusers' Transformer2DModel (not the UNet's norm_eps).
    this.norm = this.child('norm', new GroupNorm(o.groups, inChannels, 1e-6));
    this.projIn = this.child(
      'proj_in',
      this.useLinearProjection ? new Linear(inChannels, inner) : new Conv2d(inChannels, inner, { kernelSize: 1 }),
    );
    this.transformerBlocks = this.child(
      'transformer_blocks',
      new ModuleList(
        Array.from(
          { length: o.layers ?? 1 },
          () =>
            new BasicTransformerBlock(inner, {
              heads: o.heads,
              dimHead: o.dimHead,
              crossAttentionDim: o.crossAttentionDim,
              onlyCrossAttention: o.onlyCrossAttention,
              upcastAttention: o.upcastAttention,
            }),
        ),
      ),
    );
    this.projOut = this.child(
      'proj_out',
      this.useLinearProjection ? new Linear(inner, inChannels) : new Conv2d(inner, inChannels, { kernelSize: 1 }),
    );
  }
  /** x [B, C, H, W]; context [B, S, cross_attention_dim]. */
  forward(x: Tensor, context: Tensor | null): Tensor {
    return scope(() => {
      const [b, c, hh, ww] = x.shape as [number, number, number, number];
      const tokens = (t: Tensor, ch: number) => t.permute(0, 2, 3, 1).reshape(b, hh * ww, ch);
      const image = (t: Tensor, ch: number) => t.reshape(b, hh, ww, ch).permute(0, 3, 1, 2).contiguous();
      const n = this.norm.forward(x);
      let h = this.useLinearProjection
        ? this.projIn.forward(tokens(n, c))
        : tokens(this.projIn.forward(n), this.innerDim);
      for (const blk of this.transformerBlocks.items) h = blk.forward(h, context);
      const out = this.useLinearProjection
        ? image(this.projOut.forward(h), c)
        : this.projOut.forward(image(h, this.innerDim));
      return out.add(x);
    });
  }
}
