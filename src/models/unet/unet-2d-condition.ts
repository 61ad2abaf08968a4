/**
 * UNet2DConditionModel (Stable Diffusion's denoiser), as diffusers 0.14 builds it from
 * `unet/config.json`: SD 1.x (768-d CLIP context, conv projections), SD 2.x (1024-d context,
 * linear projections, per-block head counts, upcast_attention) and inpainting (9 input
 * channels) configs. forward(sample, timestep, encoderHiddenStates) → predicted noise, the
 * same shape as the latents; differentiable end to end.
 *
 *   const unet = loadUNet('sd15/unet');
 *   const eps = noGrad(() => unet.forward(latents, 981, textEmbeddings));
 */
import { ArgumentError, ImmunizeError } from '../../errors.js';
import { Conv2d, GroupNorm, ModuleList } from '../../nn/layers.js';
import { Module } from '../../nn/module.js';
import { isFloatingPoint, scope, type DType, type Tensor } from '../../torch/index.js';
import {
  CrossAttnDownBlock2D,
  CrossAttnUpBlock2D,
  DownBlock2D,
  UNetMidBlock2DCrossAttn,
  UpBlock2D,
  type UNetBlockOptions,
  type UNetDownBlock,
  type UNetUpBlock,
} from './blocks.js';
import { parseUNet2DConditionConfig, type UNet2DConditionConfig } from './config.js';
import { TimestepEmbedding, Timesteps, timestepsForBatch } from './embeddings.js';

export interface UNetForwardOptions {
  /**
   * Receives intermediate tensors by module path, as PyTorch forward hooks would: `time_proj`,
   * `time_embedding`, `conv_in`, `down_blocks.i` (the block's last hidden state), `mid_block`,
   * `up_blocks.i`. Borrowed: clone to keep.
   */
  trace?: (name: string, t: Tensor) => void;
}

export class UNet2DConditionModel extends Module {
  readonly config: UNet2DConditionConfig;
  readonly convIn: Conv2d;
  readonly timeProj: Timesteps;
  readonly timeEmbedding: TimestepEmbedding;
  readonly downBlocks: ModuleList<UNetDownBlock>;
  readonly upBlocks: ModuleList<UNetUpBlock>;
  readonly midBlock: UNetMidBlock2DCrossAttn | null;
  readonly convNormOut: GroupNorm;
  readonly convOut: Conv2d;
  /** 2^(number of upsamplers): latent sides that are not multiples of it take the upsample_size path. */
  readonly overallUpFactor: number;

  constructor(config: UNet2DConditionConfig | Record<string, unknown>) {
    super();
    // Parsing is idempotent (a parsed config parses to itself), so raw and parsed dicts both work.
    const c = parseUNet2DConditionConfig(config as Record<string, unknown>);
    this.config = c;
    const ch = c.block_out_channels;
    const n = ch.length;
    const tembChannels = ch[0]! * 4;
    this.convIn = this.child(
      'conv_in',
      new Conv2d(c.in_channels, ch[0]!, { kernelSize: c.conv_in_kernel, padding: (c.conv_in_kernel - 1) / 2 }),
    );
    this.timeProj = this.child('time_proj', new Timesteps(ch[0]!, c.flip_sin_to_cos, c.freq_shift));
    this.timeEmbedding = this.child(
      'time_embedding',
      new TimestepEmbedding(ch[0]!, tembChannels, { act: c.act_fn, postAct: c.timestep_post_act }),
    );
    const common = (i: number, layers: number): UNetBlockOptions => ({
      layers,
      tembChannels,
      eps: c.norm_eps,
      groups: c.norm_num_groups,
      act: c.act_fn,
      heads: c.attention_head_dim[i]!,
      crossAttentionDim: c.cross_attention_dim,
      useLinearProjection: c.use_linear_projection,
      onlyCrossAttention: c.only_cross_attention[i]!,
      upcastAttention: c.upcast_attention,
    });
    // Registration order as diffusers (down_blocks, up_blocks, then mid_block), so stateShapes()
    // lists keys in PyTorch's state-dict order.
    this.downBlocks = this.child(
      'down_blocks',
      new ModuleList(
        c.down_block_types.map((type, i) => {
          const o = {
            ...common(i, c.layers_per_block),
            addDownsample: i !== n - 1,
            downsamplePadding: c.downsample_padding,
          };
          const inC = i === 0 ? ch[0]! : ch[i - 1]!;
          return type === 'CrossAttnDownBlock2D'
            ? new CrossAttnDownBlock2D(inC, ch[i]!, o)
            : new DownBlock2D(inC, ch[i]!, o);
        }),
      ),
    );
    const rev = [...ch].reverse();
    // Per-block lists run in reverse on the way up (diffusers reverses attention_head_dim and
    // only_cross_attention): up block i mirrors down block n-1-i.
    this.upBlocks = this.child(
      'up_blocks',
      new ModuleList(
        c.up_block_types.map((type, i) => {
          const o = { ...common(n - 1 - i, c.layers_per_block + 1), addUpsample: i !== n - 1 };
          const prev = rev[Math.max(i - 1, 0)]!;
          const inC = rev[Math.min(i + 1, n - 1)]!;
          return type === 'CrossAttnUpBlock2D'
            ? new CrossAttnUpBlock2D(inC, prev, rev[i]!, o)
            : new UpBlock2D(inC, prev, rev[i]!, o);
        }),
      ),
    );
    this.overallUpFactor = 2 ** (n - 1);
    this.midBlock =
      c.mid_block_type === null
        ? null
        : this.child(
            'mid_block',
            new UNetMidBlock2DCrossAttn(ch[n - 1]!, {
              ...common(n - 1, 1),
              onlyCrossAttention: false,
              outputScaleFactor: c.mid_block_scale_factor,
            }),
          );
    this.convNormOut = this.child('conv_norm_out', new GroupNorm(c.norm_num_groups, ch[0]!, c.norm_eps));
    this.convOut = this.child(
      'conv_out',
      new Conv2d(ch[0]!, c.out_channels, { kernelSize: c.conv_out_kernel, padding: (c.conv_out_kernel - 1) / 2 }),
    );
  }

  /** The compute dtype: that of the loaded weights (diffusers' `self.dtype`). */
  get dtype(): DType {
    return this.convIn.weight.t.dtype;
  }

  /**
   * sample [B, in_channels, H, W] (inpainting: cat([latents, mask, masked-image latents], 1)),
   * timestep a number or a tensor (0-d, or 1 or B entries; integral or fractional),
   * encoderHiddenStates [B, S, cross_attention_dim] → noise prediction [B, out_channels, H, W].
   */
  forward(sample: Tensor, timestep: number | Tensor, encoderHiddenStates: Tensor, o: UNetForwardOptions = {}): Tensor {
    this.#check(sample, encoderHiddenStates);
    const trace = o.trace ?? (() => {});
    const [b, , hh, ww] = sample.shape as [number, number, number, number];
    return scope(() => {
      const forwardUpsampleSize = hh % this.overallUpFactor !== 0 || ww % this.overallUpFactor !== 0;
      // 1. time: sinusoidal projection (always float32), cast to the weights' dtype, then the MLP.
      const tProj = this.timeProj.forward(timestepsForBatch(timestep, b, sample.device));
      trace('time_proj', tProj);
      const dtype = this.dtype;
      const temb = this.timeEmbedding.forward(tProj.dtype === dtype ? tProj : tProj.to(dtype));
      trace('time_embedding', temb);
      // 2. pre-process
      let h = this.convIn.forward(this.config.center_input_sample ? sample.mul(2).sub(1) : sample);
      trace('conv_in', h);
      // 3. down: every state is kept for the skip connections.
      const skips: Tensor[] = [h];
      this.downBlocks.items.forEach((blk, i) => {
        const out = blk.forward(h, temb, encoderHiddenStates);
        h = out.hidden;
        skips.push(...out.states);
        trace(`down_blocks.${i}`, h);
      });
      // 4. mid
      if (this.midBlock !== null) {
        h = this.midBlock.forward(h, temb, encoderHiddenStates);
        trace('mid_block', h);
      }
      // 5. up: each block takes as many skips as it has resnets, newest last. For sides that are
      // not multiples of 2^upsamplers, upsampling goes to the next skip's size instead of ×2.
      this.upBlocks.items.forEach((blk, i) => {
        const mine = skips.splice(skips.length - blk.resnets.length, blk.resnets.length);
        const last = skips[skips.length - 1];
        const size =
          forwardUpsampleSize && i !== this.upBlocks.length - 1 && last !== undefined
            ? ([last.shape[2]!, last.shape[3]!] as [number, number])
            : undefined;
        h = blk.forward(h, mine, temb, encoderHiddenStates, size);
        trace(`up_blocks.${i}`, h);
      });
      // 6. post-process: diffusers' conv_act is SiLU whatever act_fn says.
      return this.convOut.forward(this.convNormOut.forward(h).silu());
    });
  }

  #check(sample: Tensor, context: Tensor): void {
    const c = this.config;
    if (sample.ndim !== 4)
      throw new ArgumentError(
        `UNet2DConditionModel: sample should be [batch, ${c.in_channels}, height, width] but has shape [${sample.shape.join(', ')}]`,
      );
    if (!isFloatingPoint(sample.dtype))
      throw new ArgumentError(`UNet2DConditionModel: sample should be floating point but is ${sample.dtype}`);
    const [b, ch] = sample.shape as [number, number];
    if (ch !== c.in_channels) {
      const hint =
        c.in_channels === 9
          ? ' (an inpainting UNet takes cat([latents (4), mask (1), masked-image latents (4)]) on channels)'
          : ch === 9
            ? ' (9 channels is the inpainting layout; this UNet is not an inpainting one)'
            : '';
      throw new ImmunizeError(
        'E_SHAPE',
        `UNet2DConditionModel: sample has ${ch} channels but this UNet's in_channels is ${c.in_channels}${hint}; shape [${sample.shape.join(', ')}]`,
      );
    }
    if (context.ndim !== 3 || context.shape[2] !== c.cross_attention_dim) {
      throw new ImmunizeError(
        'E_SHAPE',
        `UNet2DConditionModel: encoderHiddenStates should be [batch, tokens, ${c.cross_attention_dim}] (cross_attention_dim) but has shape [${context.shape.join(', ')}]`,
      );
    }
    if (context.shape[0] !== b) {
      throw new ImmunizeError(
        'E_SHAPE',
        `UNet2DConditionModel: encoderHiddenStates has batch ${context.shape[0]} but sample has batch ${b}`,
      );
    }
  }
}
