/**
 * Building blocks shared by diffusers' VAE and UNet (diffusers 0.14 `resnet.py`, `attention.py`,
 * `unet_2d_blocks.py`): attribute names equal the checkpoint's key segments.
 */
import { F, scope, type Tensor } from '../torch/index.js';
import { Conv2d, GroupNorm, Linear, ModuleList, activation } from '../nn/layers.js';
import { Module } from '../nn/module.js';

export interface ResnetOptions {
  tembChannels?: number | null;
  groups: number;
  groupsOut?: number;
  eps: number;
  act?: string;
  outputScaleFactor?: number;
}

/** ResnetBlock2D: norm1 → act → conv1 (+ time embedding) → norm2 → act → conv2, plus shortcut. */
export class ResnetBlock2D extends Module {
  readonly norm1: GroupNorm;
  readonly conv1: Conv2d;
  readonly timeEmbProj: Linear | null;
  readonly norm2: GroupNorm;
  readonly conv2: Conv2d;
  readonly convShortcut: Conv2d | null;
  readonly #act: (x: Tensor) => Tensor;
  readonly #scale: number;
  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    o: ResnetOptions,
  ) {
    super();
    this.norm1 = this.child('norm1', new GroupNorm(o.groups, inChannels, o.eps));
    this.conv1 = this.child('conv1', new Conv2d(inChannels, outChannels, { kernelSize: 3, padding: 1 }));
    this.timeEmbProj = o.tembChannels ? this.child('time_emb_proj', new Linear(o.tembChannels, outChannels)) : null;
    this.norm2 = this.child('norm2', new GroupNorm(o.groupsOut ?? o.groups, outChannels, o.eps));
    this.conv2 = this.child('conv2', new Conv2d(outChannels, outChannels, { kernelSize: 3, padding: 1 }));
    this.convShortcut =
      inChannels !== outChannels
        ? this.child('conv_shortcut', new Conv2d(inChannels, outChannels, { kernelSize: 1 }))
        : null;
    this.#act = activation(o.act ?? 'silu');
    this.#scale = o.outputScaleFactor ?? 1;
  }
  forward(x: Tensor, temb: Tensor | null = null): Tensor {
    return scope(() => {
      let h = this.conv1.forward(this.#act(this.norm1.forward(x)));
      if (temb !== null && this.timeEmbProj !== null) {
        const t = this.timeEmbProj.forward(this.#act(temb)).unsqueeze(-1).unsqueeze(-1);
        h = h.add(t);
      }
      h = this.conv2.forward(this.#act(this.norm2.forward(h)));
      const shortcut = this.convShortcut ? this.convShortcut.forward(x) : x;
      const out = shortcut.add(h);
      return this.#scale === 1 ? out : out.div(this.#scale);
    });
  }
}

/** Downsample2D with a strided conv; padding 0 means diffusers' asymmetric (0,1,0,1) pad first. */
export class Downsample2D extends Module {
  readonly conv: Conv2d;
  constructor(
    channels: number,
    outChannels: number,
    readonly padding: number,
  ) {
    super();
    this.conv = this.child('conv', new Conv2d(channels, outChannels, { kernelSize: 3, stride: 2, padding }));
  }
  forward(x: Tensor): Tensor {
    if (this.padding !== 0) return this.conv.forward(x);
    using p = F.pad(x, [0, 1, 0, 1], 'constant', 0);
    return this.conv.forward(p);
  }
}

/** Upsample2D: nearest ×2 (or to a given size: the UNet's upsample_size for odd latents), then a 3×3 conv. */
export class Upsample2D extends Module {
  readonly conv: Conv2d;
  constructor(channels: number, outChannels: number) {
    super();
    this.conv = this.child('conv', new Conv2d(channels, outChannels, { kernelSize: 3, padding: 1 }));
  }
  forward(x: Tensor, size?: [number, number]): Tensor {
    return scope(() => {
      // As diffusers: bfloat16 is upsampled in float32 and cast back (upsample_nearest2d had no
      // bfloat16 kernel, pytorch#86679); nearest sampling copies values, so nothing is rounded.
      const src = x.dtype === 'bfloat16' ? x.to('float32') : x;
      let up = size
        ? F.interpolate(src, { size, mode: 'nearest' })
        : F.interpolate(src, { scaleFactor: 2, mode: 'nearest' });
      if (src !== x) up = up.to('bfloat16');
      return this.conv.forward(up);
    });
  }
}

/**
 * The VAE's single-head spatial self-attention (diffusers 0.14 AttentionBlock). Weights keep
 * 0.14's names (group_norm, query, key, value, proj_attn) as SD v1.5's published VAE has them;
 * newer diffusers names (to_q, to_k, to_v, to_out.0) are renamed on load (vaeAttentionRename).
 */
export class VaeAttentionBlock extends Module {
  readonly groupNorm: GroupNorm;
  readonly query: Linear;
  readonly key: Linear;
  readonly value: Linear;
  readonly projAttn: Linear;
  constructor(
    readonly channels: number,
    groups: number,
    eps: number,
  ) {
    super();
    this.groupNorm = this.child('group_norm', new GroupNorm(groups, channels, eps));
    this.query = this.child('query', new Linear(channels, channels));
    this.key = this.child('key', new Linear(channels, channels));
    this.value = this.child('value', new Linear(channels, channels));
    this.projAttn = this.child('proj_attn', new Linear(channels, channels));
  }
  forward(x: Tensor): Tensor {
    return scope(() => {
      const [b, c, h, w] = x.shape as [number, number, number, number];
      const seq = this.groupNorm
        .forward(x)
        .view(b, c, h * w)
        .transpose(1, 2);
      const q = this.query.forward(seq);
      const k = this.key.forward(seq);
      const v = this.value.forward(seq);
      // diffusers 0.14 computes baddbmm(empty, q, kᵀ, beta=0, alpha=1/sqrt(c)); beta=0 is the
      // libtorch 1.13 NaN trap (DESIGN §7), so: matmul, then scale.
      const scores = q.matmul(k.transpose(-1, -2)).mul(1 / Math.sqrt(c));
      const probs = scores.softmax(-1);
      const out = this.projAttn.forward(probs.matmul(v));
      return out.transpose(-1, -2).reshape(b, c, h, w).add(x);
    });
  }
}

/** Maps newer diffusers VAE attention names to 0.14's (to_q → query, to_out.0 → proj_attn, norm → group_norm…). */
export function vaeAttentionRename(key: string): string {
  return key
    .replace(/(mid_block\.attentions\.\d+)\.to_q\./, '$1.query.')
    .replace(/(mid_block\.attentions\.\d+)\.to_k\./, '$1.key.')
    .replace(/(mid_block\.attentions\.\d+)\.to_v\./, '$1.value.')
    .replace(/(mid_block\.attentions\.\d+)\.to_out\.0\./, '$1.proj_attn.');
}

/** UNetMidBlock2D without cross-attention (VAE): resnet, [attention, resnet] × layers. */
export class UNetMidBlock2D extends Module {
  readonly resnets: ModuleList<ResnetBlock2D>;
  readonly attentions: ModuleList<VaeAttentionBlock> | null;
  constructor(
    channels: number,
    o: { groups: number; eps: number; addAttention: boolean; tembChannels?: number | null; layers?: number },
  ) {
    super();
    const n = o.layers ?? 1;
    const res = [
      new ResnetBlock2D(channels, channels, { groups: o.groups, eps: o.eps, tembChannels: o.tembChannels ?? null }),
    ];
    const att: VaeAttentionBlock[] = [];
    for (let i = 0; i < n; i++) {
      if (o.addAttention) att.push(new VaeAttentionBlock(channels, o.groups, o.eps));
      res.push(
        new ResnetBlock2D(channels, channels, { groups: o.groups, eps: o.eps, tembChannels: o.tembChannels ?? null }),
      );
    }
    this.attentions = o.addAttention ? this.child('attentions', new ModuleList(att)) : null;
    this.resnets = this.child('resnets', new ModuleList(res));
  }
  forward(x: Tensor, temb: Tensor | null = null): Tensor {
    return scope(() => {
      let h = this.resnets.at(0).forward(x, temb);
      for (let i = 1; i < this.resnets.length; i++) {
        if (this.attentions) h = this.attentions.at(i - 1).forward(h);
        h = this.resnets.at(i).forward(h, temb);
      }
      return h;
    });
  }
}
