/** Basic layers with PyTorch's parameter names (weight, bias) and defaults. */
import { F, type Tensor } from '../torch/index.js';
import { Module, type ParamRef } from './module.js';

export class ModuleList<M extends Module> extends Module {
  readonly items: M[];
  constructor(items: M[]) {
    super();
    this.items = items;
    items.forEach((m, i) => this.child(String(i), m));
  }
  get length(): number {
    return this.items.length;
  }
  at(i: number): M {
    const m = this.items[i];
    if (m === undefined) throw new RangeError(`ModuleList index ${i} out of range (length ${this.items.length})`);
    return m;
  }
}

export interface Conv2dConfig {
  kernelSize?: number;
  stride?: number;
  padding?: number;
  bias?: boolean;
  groups?: number;
}
export class Conv2d extends Module {
  readonly weight: ParamRef;
  readonly bias: ParamRef | null;
  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    readonly cfg: Conv2dConfig = {},
  ) {
    super();
    const k = cfg.kernelSize ?? 3;
    this.weight = this.param('weight', [outChannels, inChannels / (cfg.groups ?? 1), k, k]);
    this.bias = cfg.bias === false ? null : this.param('bias', [outChannels]);
  }
  forward(x: Tensor): Tensor {
    return F.conv2d(x, this.weight.t, this.bias?.t ?? null, {
      stride: this.cfg.stride ?? 1,
      padding: this.cfg.padding ?? 0,
      groups: this.cfg.groups ?? 1,
    });
  }
}

export class Linear extends Module {
  readonly weight: ParamRef;
  readonly bias: ParamRef | null;
  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    bias = true,
  ) {
    super();
    this.weight = this.param('weight', [outFeatures, inFeatures]);
    this.bias = bias ? this.param('bias', [outFeatures]) : null;
  }
  forward(x: Tensor): Tensor {
    return F.linear(x, this.weight.t, this.bias?.t ?? null);
  }
}

export class GroupNorm extends Module {
  readonly weight: ParamRef;
  readonly bias: ParamRef;
  constructor(
    readonly numGroups: number,
    readonly numChannels: number,
    readonly eps = 1e-5,
  ) {
    super();
    this.weight = this.param('weight', [numChannels]);
    this.bias = this.param('bias', [numChannels]);
  }
  forward(x: Tensor): Tensor {
    return F.groupNorm(x, this.numGroups, this.weight.t, this.bias.t, this.eps);
  }
}

export class LayerNorm extends Module {
  readonly weight: ParamRef;
  readonly bias: ParamRef;
  constructor(
    readonly dim: number,
    readonly eps = 1e-5,
  ) {
    super();
    this.weight = this.param('weight', [dim]);
    this.bias = this.param('bias', [dim]);
  }
  forward(x: Tensor): Tensor {
    return F.layerNorm(x, [this.dim], this.weight.t, this.bias.t, this.eps);
  }
}

export type Activation = 'silu' | 'relu' | 'gelu' | 'gelu_tanh' | 'quick_gelu' | 'tanh' | 'sigmoid';
export function activation(name: string): (x: Tensor) => Tensor {
  switch (name) {
    case 'silu':
    case 'swish':
      return (x) => x.silu();
    case 'relu':
      return (x) => x.relu();
    case 'gelu':
      return (x) => x.gelu();
    case 'gelu_tanh':
    case 'gelu_pytorch_tanh':
      return (x) => x.gelu('tanh');
    case 'tanh':
      return (x) => x.tanh();
    case 'sigmoid':
      return (x) => x.sigmoid();
    case 'quick_gelu':
      return (x) => {
        // x * sigmoid(1.702 x): CLIP's activation (openai/CLIP model.py QuickGELU).
        using s = x.mul(1.702);
        using g = s.sigmoid();
        return x.mul(g);
      };
    default:
      throw new RangeError(
        `unknown activation function '${name}' (expected silu, relu, gelu, gelu_tanh, quick_gelu, tanh or sigmoid)`,
      );
  }
}
