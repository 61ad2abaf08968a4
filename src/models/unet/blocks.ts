/**
 * The UNet's down, mid and up blocks (diffusers 0.14 `unet_2d_blocks.py`). Each block is a pure
 * function of its inputs (hidden states, time embedding, text context, skip connections) to its
 * outputs, with its own scope: these are the boundaries where gradient checkpointing would
 * re-run a block instead of keeping its activations (diffusers checkpoints the same blocks).
 */
import { cat, scope, type Tensor } from '../../torch/index.js';
import { ModuleList } from '../../nn/layers.js';
import { Module } from '../../nn/module.js';
import { Downsample2D, ResnetBlock2D, Upsample2D } from '../blocks.js';
import { Transformer2DModel } from './attention.js';

/** What every UNet block needs to know beyond its channel counts (from the UNet config). */
export interface UNetBlockOptions {
  layers: number;
  tembChannels: number;
  eps: number;
  groups: number;
  act: string;
  /** Number of heads (config.attention_head_dim[i], diffusers 0.14's reading). */
  heads: number;
  crossAttentionDim: number;
  useLinearProjection: boolean;
  onlyCrossAttention: boolean;
  upcastAttention: boolean;
}

function transformer(channels: number, o: UNetBlockOptions): Transformer2DModel {
  // diffusers: Transformer2DModel(heads, out_channels // heads, in_channels=out_channels, …)
  return new Transformer2DModel(channels, {
    heads: o.heads,
    dimHead: Math.floor(channels / o.heads),
    crossAttentionDim: o.crossAttentionDim,
    groups: o.groups,
    useLinearProjection: o.useLinearProjection,
    onlyCrossAttention: o.onlyCrossAttention,
    upcastAttention: o.upcastAttention,
  });
}

/** `count` transformers on `channels` channels. */
function transformers(count: number, channels: number, o: UNetBlockOptions): ModuleList<Transformer2DModel> {
  return new ModuleList(Array.from({ length: count }, () => transformer(channels, o)));
}

/** `count` resnets to `outC` channels; resnet i takes `inC(i)` channels. */
function resnets(
  count: number,
  inC: (i: number) => number,
  outC: number,
  o: UNetBlockOptions,
  outputScaleFactor = 1,
): ModuleList<ResnetBlock2D> {
  const opts = { tembChannels: o.tembChannels, groups: o.groups, eps: o.eps, act: o.act, outputScaleFactor };
  return new ModuleList(Array.from({ length: count }, (_, i) => new ResnetBlock2D(inC(i), outC, opts)));
}

export interface DownOptions {
  addDownsample: boolean;
  downsamplePadding: number;
}
export interface UpOptions {
  addUpsample: boolean;
}

/** A down block's result: its last hidden state and every state the up path will concatenate. */
export interface DownBlockOutput {
  hidden: Tensor;
  states: Tensor[];
}

/** A down or up block's `layers` resnets, each followed by a transformer when it has cross-attention. */
abstract class ResnetsWithAttention extends Module {
  readonly attentions: ModuleList<Transformer2DModel> | null;
  readonly resnets: ModuleList<ResnetBlock2D>;
  /** Resnet i takes `inputChannels(i)` channels and gives `outChannels`. */
  constructor(
    outChannels: number,
    inputChannels: (i: number) => number,
    o: UNetBlockOptions & { crossAttention: boolean },
  ) {
    super();
    // diffusers registers attentions before resnets (state-dict order).
    this.attentions = o.crossAttention ? this.child('attentions', transformers(o.layers, outChannels, o)) : null;
    this.resnets = this.child('resnets', resnets(o.layers, inputChannels, outChannels, o));
  }
  get hasCrossAttention(): boolean {
    return this.attentions !== null;
  }
}

/** DownBlock2D (no attention) and CrossAttnDownBlock2D (a transformer after each resnet). */
export class UNetDownBlock extends ResnetsWithAttention {
  readonly downsamplers: ModuleList<Downsample2D> | null;
  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    o: UNetBlockOptions & DownOptions & { crossAttention: boolean },
  ) {
    super(outChannels, (i) => (i === 0 ? inChannels : outChannels), o);
    this.downsamplers = o.addDownsample
      ? this.child('downsamplers', new ModuleList([new Downsample2D(outChannels, outChannels, o.downsamplePadding)]))
      : null;
  }
  forward(x: Tensor, temb: Tensor, context: Tensor | null): DownBlockOutput {
    return scope(() => {
      let h = x;
      const states: Tensor[] = [];
      this.resnets.items.forEach((r, i) => {
        h = r.forward(h, temb);
        if (this.attentions) h = this.attentions.at(i).forward(h, context);
        states.push(h);
      });
      if (this.downsamplers) {
        h = this.downsamplers.at(0).forward(h);
        states.push(h);
      }
      return { hidden: h, states };
    });
  }
}

/** UNetMidBlock2DCrossAttn: resnet, then (transformer, resnet) per layer. */
export class UNetMidBlock2DCrossAttn extends Module {
  readonly attentions: ModuleList<Transformer2DModel>;
  readonly resnets: ModuleList<ResnetBlock2D>;
  constructor(
    readonly channels: number,
    o: UNetBlockOptions & { outputScaleFactor: number },
  ) {
    super();
    this.attentions = this.child('attentions', transformers(o.layers, channels, o));
    this.resnets = this.child(
      'resnets',
      resnets(o.layers + 1, () => channels, channels, o, o.outputScaleFactor),
    );
  }
  forward(x: Tensor, temb: Tensor, context: Tensor | null): Tensor {
    return scope(() => {
      let h = this.resnets.at(0).forward(x, temb);
      this.attentions.items.forEach((a, i) => {
        h = this.resnets.at(i + 1).forward(a.forward(h, context), temb);
      });
      return h;
    });
  }
}

/**
 * UpBlock2D and CrossAttnUpBlock2D: before each resnet, the newest remaining skip connection is
 * concatenated on channels; resnet j takes prev_output (j = 0) or out channels, plus the skip's
 * channels (the block's `inChannels` for the last one, out channels otherwise).
 */
export class UNetUpBlock extends ResnetsWithAttention {
  readonly upsamplers: ModuleList<Upsample2D> | null;
  constructor(
    readonly inChannels: number,
    readonly prevOutputChannels: number,
    readonly outChannels: number,
    o: UNetBlockOptions & UpOptions & { crossAttention: boolean },
  ) {
    const skip = (i: number): number => (i === o.layers - 1 ? inChannels : outChannels);
    super(outChannels, (i) => (i === 0 ? prevOutputChannels : outChannels) + skip(i), o);
    this.upsamplers = o.addUpsample
      ? this.child('upsamplers', new ModuleList([new Upsample2D(outChannels, outChannels)]))
      : null;
  }
  /** `skips` oldest first (as diffusers' res_hidden_states_tuple); consumed from the end. */
  forward(
    x: Tensor,
    skips: readonly Tensor[],
    temb: Tensor,
    context: Tensor | null,
    upsampleSize?: [number, number],
  ): Tensor {
    if (skips.length !== this.resnets.length)
      throw new RangeError(
        `${this.constructor.name}: expected ${this.resnets.length} skip connections, received ${skips.length}`,
      );
    return scope(() => {
      let h = x;
      this.resnets.items.forEach((r, i) => {
        h = r.forward(cat([h, skips[skips.length - 1 - i]!], 1), temb);
        if (this.attentions) h = this.attentions.at(i).forward(h, context);
      });
      return this.upsamplers ? this.upsamplers.at(0).forward(h, upsampleSize) : h;
    });
  }
}

export class DownBlock2D extends UNetDownBlock {
  constructor(inChannels: number, outChannels: number, o: UNetBlockOptions & DownOptions) {
    super(inChannels, outChannels, { ...o, crossAttention: false });
  }
}
export class CrossAttnDownBlock2D extends UNetDownBlock {
  constructor(inChannels: number, outChannels: number, o: UNetBlockOptions & DownOptions) {
    super(inChannels, outChannels, { ...o, crossAttention: true });
  }
}
export class UpBlock2D extends UNetUpBlock {
  constructor(inChannels: number, prevOutputChannels: number, outChannels: number, o: UNetBlockOptions & UpOptions) {
    super(inChannels, prevOutputChannels, outChannels, { ...o, crossAttention: false });
  }
}
export class CrossAttnUpBlock2D extends UNetUpBlock {
  constructor(inChannels: number, prevOutputChannels: number, outChannels: number, o: UNetBlockOptions & UpOptions) {
    super(inChannels, prevOutputChannels, outChannels, { ...o, crossAttention: true });
  }
}
