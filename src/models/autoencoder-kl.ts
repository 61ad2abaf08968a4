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
  in_channels: 3,
  out_channels: 3,
  down_block_types: ['DownEncoderBlock2D'],
  up_block_types: ['UpDecoderBlock2D'],
  block_out_channels: [64],
  layers_per_block: 1,
  act_fn: 'silu',
  latent_channels: 4,
  norm_num_groups: 32,
  sample_size: 32,
  scaling_factor: 0.18215,
  shift_factor: null,
  mid_block_add_attention: true,
  use_quant_conv: true,
  use_post_quant_conv: true,
};

export function parseAutoencoderKLConfig(raw: Record<string, unknown>, label = 'config.json'): AutoencoderKLConfig {
  if (raw['_class_name'] !== undefined && raw['_class_name'] !== 'AutoencoderKL') {
    throw new ImmunizeError(
      'E_CONFIG',
      `${label}: _class_name is '${String(raw['_class_name'])}', expected AutoencoderKL`,
    );
  }
  const cfg = { ...DEFAULTS } as AutoencoderKLConfig;
  for (const k of Object.keys(DEFAULTS) as (keyof AutoencoderKLConfig)[]) {
    if (raw[k] !== undefined && raw[k] !== null) (cfg as unknown as Record<string, unknown>)[k] = raw[k];
  }
  const n = cfg.block_out_channels.length;
  if (n === 0 || cfg.down_block_types.length !== n || cfg.up_block_types.length !== n) {
    throw new ImmunizeError(
      'E_CONFIG',
      `${label}: block_out_channels (${n}), down_block_types (${cfg.down_block_types.length}) and up_block_types (${cfg.up_block_types.length}) must have the same non-zero length`,
    );
  }
  for (const t of cfg.down_block_types)
    if (t !== 'DownEncoderBlock2D')
      throw new ImmunizeError(
        'E_CONFIG',
        `${label}: unknown down block type '${t}' (AutoencoderKL supports DownEncoderBlock2D)`,
      );
  for (const t of cfg.up_block_types)
    if (t !== 'UpDecoderBlock2D')
      throw new ImmunizeError(
        'E_CONFIG',
        `${label}: unknown up block type '${t}' (AutoencoderKL supports UpDecoderBlock2D)`,
      );
  for (const c of cfg.block_out_channels)
    if (c % cfg.norm_num_groups !== 0)
      throw new ImmunizeError(
        'E_CONFIG',
        `${label}: ${c} channels are not divisible by norm_num_groups=${cfg.norm_num_groups}`,
      );
  activation(cfg.act_fn);
  return cfg;
}

const EPS = 1e-6; // diffusers' VAE blocks use resnet_eps=1e-6 everywhere

/**
 * DownEncoderBlock2D / UpDecoderBlock2D: resnets, then (in every block but the last) one
 * resampler, registered as diffusers names it: `downsamplers.0` or `upsamplers.0`.
 */
class VaeBlock2D extends Module {
  readonly resnets: ModuleList<ResnetBlock2D>;
  readonly resampler: Downsample2D | Upsample2D | null;
  constructor(
    inC: number,
    outC: number,
    o: { layers: number; groups: number; act: string },
    resampler: ['downsamplers', Downsample2D] | ['upsamplers', Upsample2D] | null,
  ) {
    super();
    this.resnets = this.child(
      'resnets',
      new ModuleList(
        Array.from(
          { length: o.layers },
          (_, i) => new ResnetBlock2D(i === 0 ? inC : outC, outC, { groups: o.groups, eps: EPS, act: o.act }),
        ),
      ),
    );
    this.resampler =
      resampler === null
        ? null
        : this.child(resampler[0], new ModuleList<Downsample2D | Upsample2D>([resampler[1]])).at(0);
  }
  forward(x: Tensor): Tensor {
    return scope(() => {
      let h = x;
      for (const r of this.resnets.items) h = r.forward(h);
      return this.resampler ? this.resampler.forward(h) : h;
    });
  }
}

interface CoderLayout {
  inChannels: number;
  outChannels: number;
  /** `down_blocks` (run before mid_block: the encoder) or `up_blocks` (after it: the decoder). */
  blocks: ['down_blocks' | 'up_blocks', VaeBlock2D[]];
  /** Widths of conv_in's output, of mid_block (the widest) and of conv_norm_out. */
  stemChannels: number;
  midChannels: number;
  normChannels: number;
}

/** diffusers' VAE Encoder and Decoder share one layout: conv_in, blocks and mid_block, conv_norm_out → act → conv_out. */
class VaeCoder extends Module {
  readonly convIn: Conv2d;
  readonly blocks: ModuleList<VaeBlock2D>;
  readonly midBlock: UNetMidBlock2D;
  readonly convNormOut: GroupNorm;
  readonly convOut: Conv2d;
  readonly #act: (x: Tensor) => Tensor;
  readonly #stages: { forward(x: Tensor): Tensor }[];
  constructor(c: AutoencoderKLConfig, o: CoderLayout) {
    super();
    const g = c.norm_num_groups;
    this.convIn = this.child('conv_in', new Conv2d(o.inChannels, o.stemChannels, { kernelSize: 3, padding: 1 }));
    this.blocks = this.child(o.blocks[0], new ModuleList(o.blocks[1]));
    this.midBlock = this.child(
      'mid_block',
      new UNetMidBlock2D(o.midChannels, { groups: g, eps: EPS, addAttention: c.mid_block_add_attention }),
    );
    this.convNormOut = this.child('conv_norm_out', new GroupNorm(g, o.normChannels, EPS));
    this.convOut = this.child('conv_out', new Conv2d(o.normChannels, o.outChannels, { kernelSize: 3, padding: 1 }));
    this.#act = activation(c.act_fn);
    this.#stages =
      o.blocks[0] === 'down_blocks' ? [...this.blocks.items, this.midBlock] : [this.midBlock, ...this.blocks.items];
  }
  forward(x: Tensor): Tensor {
    return scope(() => {
      let h = this.convIn.forward(x);
      for (const stage of this.#stages) h = stage.forward(h);
      return this.convOut.forward(this.#act(this.convNormOut.forward(h)));
    });
  }
}

/** Image → 2·latent_channels moments: down blocks (each but the last halves the size), then mid_block. */
export class Encoder extends VaeCoder {
  constructor(c: AutoencoderKLConfig) {
    const ch = c.block_out_channels;
    const o = { layers: c.layers_per_block, groups: c.norm_num_groups, act: c.act_fn };
    const blocks = ch.map(
      (out, i) =>
        new VaeBlock2D(
          i === 0 ? ch[0]! : ch[i - 1]!,
          out,
          o,
          i !== ch.length - 1 ? ['downsamplers', new Downsample2D(out, out, 0)] : null,
        ),
    );
    super(c, {
      inChannels: c.in_channels,
      outChannels: 2 * c.latent_channels,
      blocks: ['down_blocks', blocks],
      stemChannels: ch[0]!,
      midChannels: ch.at(-1)!,
      normChannels: ch.at(-1)!,
    });
  }
}

/** Latent → image: mid_block, then up blocks over the channels reversed (one resnet more each than the encoder's). */
export class Decoder extends VaeCoder {
  constructor(c: AutoencoderKLConfig) {
    const rev = [...c.block_out_channels].reverse();
    const o = { layers: c.layers_per_block + 1, groups: c.norm_num_groups, act: c.act_fn };
    const blocks = rev.map(
      (out, i) =>
        new VaeBlock2D(
          i === 0 ? rev[0]! : rev[i - 1]!,
          out,
          o,
          i !== rev.length - 1 ? ['upsamplers', new Upsample2D(out, out)] : null,
        ),
    );
    super(c, {
      inChannels: c.latent_channels,
      outChannels: c.out_channels,
      blocks: ['up_blocks', blocks],
      stemChannels: rev[0]!,
      midChannels: rev[0]!,
      normChannels: rev.at(-1)!,
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
    const c =
      'down_block_types' in config && 'scaling_factor' in config && 'use_quant_conv' in config
        ? (config as AutoencoderKLConfig)
        : parseAutoencoderKLConfig(config as Record<string, unknown>);
    this.config = c;
    this.encoder = this.child('encoder', new Encoder(c));
    this.decoder = this.child('decoder', new Decoder(c));
    const L = c.latent_channels;
    this.quantConv = c.use_quant_conv ? this.child('quant_conv', new Conv2d(2 * L, 2 * L, { kernelSize: 1 })) : null;
    this.postQuantConv = c.use_post_quant_conv
      ? this.child('post_quant_conv', new Conv2d(L, L, { kernelSize: 1 }))
      : null;
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
