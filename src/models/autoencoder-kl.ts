/**
 * AutoencoderKL (Stable Diffusion's VAE), as diffusers 0.14 builds it from `vae/config.json`.
 * Images in [-1, 1]; latents unscaled (pipelines multiply by scaling_factor).
 */
import { ImmunizeError } from '../errors.js';
import { randn, scope, type Generator, type Tensor } from '../torch/index.js';
import { Conv2d, GroupNorm, ModuleList, activation } from '../nn/layers.js';
import { Module } from '../nn/module.js';
import { Downsample2D, ResnetBlock2D, UNetMidBlock2D, Upsample2D } from './blocks.js';

export interface AutoencoderKLConfig {
  in_channels: number;
  out_channels: number;
  down_block_types: string[];
  up_block_types: string[];
  block_out_channels: number[];
  layers_per_block: number;
  act_fn: string;
  latent_channels: number;
  norm_num_groups: number;
  sample_size: number;
  scaling_factor: number;
  shift_factor: number | null;
  mid_block_add_attention: boolean;
  use_quant_conv: boolean;
  use_post_quant_conv: boolean;
}

// diffusers' AutoencoderKL.__init__ defaults; SD v1.5's published config omits scaling_factor.
const DEFAULTS: AutoencoderKLConfig = {
  in_channels: 3, out_channels: 3, down_block_types: ['DownEncoderBlock2D'], up_block_types: ['UpDecoderBlock2D'],
  block_out_channels: [64], layers_per_block: 1, act_fn: 'silu', latent_channels: 4, norm_num_groups: 32,
  sample_size: 32, scaling_factor: 0.18215, shift_factor: null, mid_block_add_attention: true,
  use_quant_conv: true, use_post_quant_conv: true,
};

export function parseAutoencoderKLConfig(raw: Record<string, unknown>, label = 'config.json'): AutoencoderKLConfig {
  if (raw['_class_name'] !== undefined && raw['_class_name'] !== 'AutoencoderKL') {
    throw new ImmunizeError('E_CONFIG', `${label}: _class_name is '${String(raw['_class_name'])}', expected AutoencoderKL`);
  }
  const cfg = { ...DEFAULTS } as AutoencoderKLConfig;
  for (const k of Object.keys(DEFAULTS) as (keyof AutoencoderKLConfig)[]) {
    if (raw[k] !== undefined && raw[k] !== null) (cfg as unknown as Record<string, unknown>)[k] = raw[k];
  }
  const n = cfg.block_out_channels.length;
  if (n === 0 || cfg.down_block_types.length !== n || cfg.up_block_types.length !== n) {
    throw new ImmunizeError('E_CONFIG', `${label}: block_out_channels (${n}), down_block_types (${cfg.down_block_types.length}) and up_block_types (${cfg.up_block_types.length}) must have the same non-zero length`);
  }
  for (const t of cfg.down_block_types) if (t !== 'DownEncoderBlock2D') throw new ImmunizeError('E_CONFIG', `${label}: unknown down block type '${t}' (AutoencoderKL supports DownEncoderBlock2D)`);
  for (const t of cfg.up_block_types) if (t !== 'UpDecoderBlock2D') throw new ImmunizeError('E_CONFIG', `${label}: unknown up block type '${t}' (AutoencoderKL supports UpDecoderBlock2D)`);
  for (const c of cfg.block_out_channels) if (c % cfg.norm_num_groups !== 0) throw new ImmunizeError('E_CONFIG', `${label}: ${c} channels are not divisible by norm_num_groups=${cfg.norm_num_groups}`);
  activation(cfg.act_fn);
  return cfg;
}

const EPS = 1e-6; // diffusers' VAE blocks use resnet_eps=1e-6 everywhere

class DownEncoderBlock2D extends Module {
  readonly resnets: ModuleList<ResnetBlock2D>;
  readonly downsamplers: ModuleList<Downsample2D> | null;
  constructor(inC: number, outC: number, layers: number, groups: number, addDownsample: boolean, act: string) {
    super();
    this.resnets = this.child('resnets', new ModuleList(Array.from({ length: layers }, (_, i) => new ResnetBlock2D(i === 0 ? inC : outC, outC, { groups, eps: EPS, act }))));
    this.downsamplers = addDownsample ? this.child('downsamplers', new ModuleList([new Downsample2D(outC, outC, 0)])) : null;
  }
  forward(x: Tensor): Tensor {
    return scope(() => {
      let h = x;
      for (const r of this.resnets.items) h = r.forward(h);
      if (this.downsamplers) h = this.downsamplers.at(0).forward(h);
      return h;
    });
  }
}

class UpDecoderBlock2D extends Module {
  readonly resnets: ModuleList<ResnetBlock2D>;
  readonly upsamplers: ModuleList<Upsample2D> | null;
  constructor(inC: number, outC: number, layers: number, groups: number, addUpsample: boolean, act: string) {
    super();
    this.resnets = this.child('resnets', new ModuleList(Array.from({ length: layers }, (_, i) => new ResnetBlock2D(i === 0 ? inC : outC, outC, { groups, eps: EPS, act }))));
    this.upsamplers = addUpsample ? this.child('upsamplers', new ModuleList([new Upsample2D(outC, outC)])) : null;
  }
  forward(x: Tensor): Tensor {
    return scope(() => {
      let h = x;
      for (const r of this.resnets.items) h = r.forward(h);
      if (this.upsamplers) h = this.upsamplers.at(0).forward(h);
      return h;
    });
  }
}

export class Encoder extends Module {
  readonly convIn: Conv2d;
  readonly downBlocks: ModuleList<DownEncoderBlock2D>;
  readonly midBlock: UNetMidBlock2D;
  readonly convNormOut: GroupNorm;
  readonly convOut: Conv2d;
  readonly #act: (x: Tensor) => Tensor;
  constructor(c: AutoencoderKLConfig) {
    super();
    const ch = c.block_out_channels;
    const g = c.norm_num_groups;
    this.convIn = this.child('conv_in', new Conv2d(c.in_channels, ch[0]!, { kernelSize: 3, padding: 1 }));
    this.downBlocks = this.child('down_blocks', new ModuleList(ch.map((out, i) => new DownEncoderBlock2D(i === 0 ? ch[0]! : ch[i - 1]!, out, c.layers_per_block, g, i !== ch.length - 1, c.act_fn))));
    this.midBlock = this.child('mid_block', new UNetMidBlock2D(ch[ch.length - 1]!, { groups: g, eps: EPS, addAttention: c.mid_block_add_attention }));
    this.convNormOut = this.child('conv_norm_out', new GroupNorm(g, ch[ch.length - 1]!, EPS));
    this.convOut = this.child('conv_out', new Conv2d(ch[ch.length - 1]!, 2 * c.latent_channels, { kernelSize: 3, padding: 1 }));
    this.#act = activation(c.act_fn);
  }
  forward(x: Tensor): Tensor {
    return scope(() => {
      let h = this.convIn.forward(x);
      for (const b of this.downBlocks.items) h = b.forward(h);
      h = this.midBlock.forward(h);
      return this.convOut.forward(this.#act(this.convNormOut.forward(h)));
    });
  }
}

export class Decoder extends Module {
  readonly convIn: Conv2d;
  readonly upBlocks: ModuleList<UpDecoderBlock2D>;
  readonly midBlock: UNetMidBlock2D;
  readonly convNormOut: GroupNorm;
  readonly convOut: Conv2d;
  readonly #act: (x: Tensor) => Tensor;
  constructor(c: AutoencoderKLConfig) {
    super();
    const rev = [...c.block_out_channels].reverse();
    const g = c.norm_num_groups;
    this.convIn = this.child('conv_in', new Conv2d(c.latent_channels, rev[0]!, { kernelSize: 3, padding: 1 }));
    this.upBlocks = this.child('up_blocks', new ModuleList(rev.map((out, i) => new UpDecoderBlock2D(i === 0 ? rev[0]! : rev[i - 1]!, out, c.layers_per_block + 1, g, i !== rev.length - 1, c.act_fn))));
    this.midBlock = this.child('mid_block', new UNetMidBlock2D(rev[0]!, { groups: g, eps: EPS, addAttention: c.mid_block_add_attention }));
    this.convNormOut = this.child('conv_norm_out', new GroupNorm(g, c.block_out_channels[0]!, EPS));
    this.convOut = this.child('conv_out', new Conv2d(c.block_out_channels[0]!, c.out_channels, { kernelSize: 3, padding: 1 }));
    this.#act = activation(c.act_fn);
  }
  forward(z: Tensor): Tensor {
    return scope(() => {
      let h = this.convIn.forward(z);
      h = this.midBlock.forward(h);
      for (const b of this.upBlocks.items) h = b.forward(h);
      return this.convOut.forward(this.#act(this.convNormOut.forward(h)));
    });
  }
}

/** diffusers' DiagonalGaussianDistribution over latents. Owns its tensors: dispose() when done. */
export class DiagonalGaussian implements Disposable {
  readonly mean: Tensor;
  readonly logvar: Tensor;
  readonly std: Tensor;
  readonly var: Tensor;
  constructor(moments: Tensor) {
    const [mean, logvarRaw] = moments.chunk(2, 1) as [Tensor, Tensor];
    this.mean = mean;
    this.logvar = logvarRaw.clamp(-30, 20);
    logvarRaw.dispose();
    this.std = scope(() => this.logvar.mul(0.5).exp());
    this.var = this.logvar.exp();
  }
  /** mean + std · ε with ε ~ N(0, I) drawn from `generator` (as diffusers' randn_tensor on CPU). */
  sample(generator?: Generator): Tensor {
    return scope(() => {
      const eps = randn(this.mean.shape, { generator, dtype: this.mean.dtype, device: this.mean.device });
      return this.mean.add(this.std.mul(eps));
    });
  }
  mode(): Tensor {
    return this.mean.alias();
  }
  dispose(): void {
    for (const t of [this.mean, this.logvar, this.std, this.var]) t.dispose();
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
}

export class AutoencoderKL extends Module {
  readonly config: AutoencoderKLConfig;
  readonly encoder: Encoder;
  readonly decoder: Decoder;
  readonly quantConv: Conv2d | null;
  readonly postQuantConv: Conv2d | null;
  constructor(config: AutoencoderKLConfig | Record<string, unknown>) {
    super();
    const c = 'down_block_types' in config && 'scaling_factor' in config && 'use_quant_conv' in config ? (config as AutoencoderKLConfig) : parseAutoencoderKLConfig(config as Record<string, unknown>);
    this.config = c;
    this.encoder = this.child('encoder', new Encoder(c));
    this.decoder = this.child('decoder', new Decoder(c));
    const L = c.latent_channels;
    this.quantConv = c.use_quant_conv ? this.child('quant_conv', new Conv2d(2 * L, 2 * L, { kernelSize: 1 })) : null;
    this.postQuantConv = c.use_post_quant_conv ? this.child('post_quant_conv', new Conv2d(L, L, { kernelSize: 1 })) : null;
  }

  /** Spatial downscaling factor (8 for SD). */
  get downscale(): number {
    return 2 ** (this.config.block_out_channels.length - 1);
  }

  /** Encoder output after quant_conv: 2·latent_channels channels (mean, logvar). */
  moments(x: Tensor): Tensor {
    return scope(() => {
      const h = this.encoder.forward(x);
      return this.quantConv ? this.quantConv.forward(h) : h;
    });
  }

  /** x in [-1, 1] → the latent posterior. */
  encode(x: Tensor): DiagonalGaussian {
    using m = this.moments(x);
    return new DiagonalGaussian(m);
  }

  /** z (unscaled latent) → image in about [-1, 1]. */
  decode(z: Tensor): Tensor {
    return scope(() => this.decoder.forward(this.postQuantConv ? this.postQuantConv.forward(z) : z));
  }

  /** vae(x, sample_posterior=False): decode(encode(x).mean). */
  forward(x: Tensor, o: { samplePosterior?: boolean; generator?: Generator } = {}): Tensor {
    using dist = this.encode(x);
    using z = o.samplePosterior ? dist.sample(o.generator) : dist.mode();
    return this.decode(z);
  }
}
