/**
 * UNet2DConditionModel's config (`unet/config.json`), parsed as diffusers 0.14 reads it: absent
 * fields take `UNet2DConditionModel.__init__`'s defaults, list-or-scalar fields are expanded to
 * one entry per block, and everything this implementation does not build is refused by name —
 * silently ignoring a field would give a model that loads and computes something else.
 */
import { ImmunizeError, describe } from '../../errors.js';
import { activation } from '../../nn/layers.js';

export type DownBlockType = 'CrossAttnDownBlock2D' | 'DownBlock2D';
export type UpBlockType = 'CrossAttnUpBlock2D' | 'UpBlock2D';

export interface UNet2DConditionConfig {
  sample_size: number | [number, number] | null;
  in_channels: number;
  out_channels: number;
  center_input_sample: boolean;
  flip_sin_to_cos: boolean;
  freq_shift: number;
  down_block_types: DownBlockType[];
  mid_block_type: 'UNetMidBlock2DCrossAttn' | null;
  up_block_types: UpBlockType[];
  /** One entry per down block (diffusers accepts a single bool for all). */
  only_cross_attention: boolean[];
  block_out_channels: number[];
  layers_per_block: number;
  downsample_padding: number;
  mid_block_scale_factor: number;
  act_fn: string;
  norm_num_groups: number;
  norm_eps: number;
  cross_attention_dim: number;
  /**
   * One entry per down block. In SD 1.x/2.x configs this is the NUMBER OF HEADS, not the head
   * size (a naming bug diffusers keeps for compatibility): Transformer2DModel gets
   * `heads = attention_head_dim[i]`, `head_dim = channels // heads`.
   */
  attention_head_dim: number[];
  use_linear_projection: boolean;
  upcast_attention: boolean;
  timestep_post_act: string | null;
  conv_in_kernel: number;
  conv_out_kernel: number;
}

// diffusers 0.14 UNet2DConditionModel.__init__ defaults (unet_2d_condition.py).
const DEFAULTS = {
  sample_size: null,
  in_channels: 4,
  out_channels: 4,
  center_input_sample: false,
  flip_sin_to_cos: true,
  freq_shift: 0,
  down_block_types: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
  mid_block_type: 'UNetMidBlock2DCrossAttn',
  up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
  only_cross_attention: false,
  block_out_channels: [320, 640, 1280, 1280],
  layers_per_block: 2,
  downsample_padding: 1,
  mid_block_scale_factor: 1,
  act_fn: 'silu',
  norm_num_groups: 32,
  norm_eps: 1e-5,
  cross_attention_dim: 1280,
  attention_head_dim: 8,
  use_linear_projection: false,
  upcast_attention: false,
  timestep_post_act: null,
  conv_in_kernel: 3,
  conv_out_kernel: 3,
} as const;

/**
 * Fields of diffusers' UNet config (0.14 and later) that this implementation only supports at
 * their neutral value: present with that value (or null/absent) is fine, anything else is an
 * error naming the field. Later diffusers versions write most of these into every config.json.
 */
const NEUTRAL: Record<string, unknown> = {
  dual_cross_attention: false,
  class_embed_type: null,
  num_class_embeds: null,
  projection_class_embeddings_input_dim: null,
  class_embeddings_concat: false,
  resnet_time_scale_shift: 'default',
  time_embedding_type: 'positional',
  time_cond_proj_dim: null,
  time_embedding_dim: null,
  time_embedding_act_fn: null,
  extra_film_condition_dim: null,
  extra_film_use_concat: false,
  addition_embed_type: null,
  addition_time_embed_dim: null,
  encoder_hid_dim: null,
  encoder_hid_dim_type: null,
  cross_attention_norm: null,
  mid_block_only_cross_attention: null,
  resnet_skip_time_act: false,
  resnet_out_scale_factor: 1,
  attention_type: 'default',
  num_attention_heads: null,
  transformer_layers_per_block: 1,
  reverse_transformer_layers_per_block: null,
  addition_embed_type_num_heads: 64,
};

export const DOWN_BLOCK_TYPES: readonly DownBlockType[] = ['CrossAttnDownBlock2D', 'DownBlock2D'];
export const UP_BLOCK_TYPES: readonly UpBlockType[] = ['CrossAttnUpBlock2D', 'UpBlock2D'];

function fail(label: string, msg: string): never {
  throw new ImmunizeError('E_CONFIG', `${label}: ${msg}`);
}
const isPosInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v > 0;
const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

function posInt(label: string, field: string, v: unknown): number {
  if (!isPosInt(v)) fail(label, `${field} should be a positive integer but is ${describe(v)}`);
  return v;
}
function bool(label: string, field: string, v: unknown): boolean {
  if (typeof v !== 'boolean') fail(label, `${field} should be true or false but is ${describe(v)}`);
  return v;
}
function finite(label: string, field: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) fail(label, `${field} should be a number but is ${describe(v)}`);
  return v;
}
/** An int (or bool) for every block, or one value for all of them, as diffusers expands it. */
function perBlock<T>(
  label: string,
  field: string,
  v: unknown,
  n: number,
  check: (x: unknown, where: string) => T,
): T[] {
  if (!Array.isArray(v)) return Array.from({ length: n }, () => check(v, field));
  if (v.length !== n)
    fail(label, `${field} has ${v.length} entries but down_block_types has ${n}; give one per block or a single value`);
  return v.map((x, i) => check(x, `${field}[${i}]`));
}

/** Parses and validates a diffusers UNet2DConditionModel config.json dict. */
export function parseUNet2DConditionConfig(raw: Record<string, unknown>, label = 'config.json'): UNet2DConditionConfig {
  if (!isObject(raw)) fail(label, `expected a JSON object but received ${describe(raw)}`);
  if (raw['_class_name'] !== undefined && raw['_class_name'] !== 'UNet2DConditionModel') {
    fail(label, `_class_name is '${String(raw['_class_name'])}', expected UNet2DConditionModel`);
  }
  const get = (k: keyof typeof DEFAULTS): unknown => (raw[k] === undefined ? DEFAULTS[k] : raw[k]);
  for (const [k, neutral] of Object.entries(NEUTRAL)) {
    const v = raw[k];
    if (v === undefined || v === null || v === neutral) continue;
    if (k === 'transformer_layers_per_block' && Array.isArray(v) && v.every((x) => x === 1)) continue;
    fail(
      label,
      `${k}=${JSON.stringify(v)} is not supported (Immunize builds diffusers 0.14's UNet2DConditionModel, which needs ${k}=${JSON.stringify(neutral)})`,
    );
  }

  const downTypes = get('down_block_types');
  const upTypes = get('up_block_types');
  const channels = get('block_out_channels');
  if (!Array.isArray(channels) || channels.length === 0)
    fail(label, `block_out_channels should be a non-empty list of positive integers but is ${describe(channels)}`);
  channels.forEach((c, i) => posInt(label, `block_out_channels[${i}]`, c));
  if (!Array.isArray(downTypes))
    fail(label, `down_block_types should be a list of block names but is ${describe(downTypes)}`);
  if (!Array.isArray(upTypes))
    fail(label, `up_block_types should be a list of block names but is ${describe(upTypes)}`);
  const n = channels.length;
  if (downTypes.length !== n)
    fail(label, `down_block_types has ${downTypes.length} entries but block_out_channels has ${n}; they must match`);
  if (upTypes.length !== n)
    fail(label, `up_block_types has ${upTypes.length} entries but down_block_types has ${n}; they must match`);
  downTypes.forEach((t, i) => {
    if (!DOWN_BLOCK_TYPES.includes(t as DownBlockType))
      fail(label, `down_block_types[${i}] '${String(t)}' is not supported (supported: ${DOWN_BLOCK_TYPES.join(', ')})`);
  });
  upTypes.forEach((t, i) => {
    if (!UP_BLOCK_TYPES.includes(t as UpBlockType))
      fail(label, `up_block_types[${i}] '${String(t)}' is not supported (supported: ${UP_BLOCK_TYPES.join(', ')})`);
  });
  const mid = raw['mid_block_type'] === undefined ? DEFAULTS.mid_block_type : raw['mid_block_type'];
  if (mid !== null && mid !== 'UNetMidBlock2DCrossAttn')
    fail(
      label,
      `mid_block_type '${String(mid)}' is not supported (supported: UNetMidBlock2DCrossAttn, or null for none)`,
    );

  const groups = posInt(label, 'norm_num_groups', get('norm_num_groups'));
  channels.forEach((c: number, i) => {
    if (c % groups !== 0)
      fail(
        label,
        `norm_num_groups=${groups} does not divide block_out_channels[${i}]=${c} (GroupNorm needs channels divisible by groups)`,
      );
  });
  const heads = perBlock(label, 'attention_head_dim', get('attention_head_dim'), n, (x, where) =>
    posInt(label, where, x),
  );
  heads.forEach((h, i) => {
    if (Math.floor((channels[i] as number) / h) < 1)
      fail(
        label,
        `attention_head_dim[${i}]=${h} heads exceed block_out_channels[${i}]=${String(channels[i])} channels`,
      );
  });
  const onlyCross = perBlock(label, 'only_cross_attention', get('only_cross_attention'), n, (x, where) =>
    bool(label, where, x),
  );

  const act = get('act_fn');
  if (typeof act !== 'string') fail(label, `act_fn should be a string but is ${describe(act)}`);
  try {
    activation(act);
  } catch (e) {
    fail(label, `act_fn: ${(e as Error).message}`);
  }
  const postAct = get('timestep_post_act');
  if (postAct !== null) {
    if (typeof postAct !== 'string')
      fail(label, `timestep_post_act should be null or an activation name but is ${describe(postAct)}`);
    try {
      activation(postAct);
    } catch (e) {
      fail(label, `timestep_post_act: ${(e as Error).message}`);
    }
  }
  const kernel = (field: 'conv_in_kernel' | 'conv_out_kernel'): number => {
    const k = posInt(label, field, get(field));
    if (k % 2 !== 1) fail(label, `${field} should be odd (the conv keeps the size with padding (k-1)/2) but is ${k}`);
    return k;
  };
  const eps = finite(label, 'norm_eps', get('norm_eps'));
  if (!(eps > 0)) fail(label, `norm_eps should be positive but is ${eps}`);
  const padding = get('downsample_padding');
  if (!Number.isSafeInteger(padding) || (padding as number) < 0)
    fail(label, `downsample_padding should be a non-negative integer but is ${describe(padding)}`);
  const size = get('sample_size');
  if (size !== null && !isPosInt(size) && !(Array.isArray(size) && size.length === 2 && size.every(isPosInt))) {
    fail(label, `sample_size should be null, a positive integer or [height, width] but is ${describe(size)}`);
  }
  return {
    sample_size: size as UNet2DConditionConfig['sample_size'],
    in_channels: posInt(label, 'in_channels', get('in_channels')),
    out_channels: posInt(label, 'out_channels', get('out_channels')),
    center_input_sample: bool(label, 'center_input_sample', get('center_input_sample')),
    flip_sin_to_cos: bool(label, 'flip_sin_to_cos', get('flip_sin_to_cos')),
    freq_shift: finite(label, 'freq_shift', get('freq_shift')),
    down_block_types: downTypes as DownBlockType[],
    mid_block_type: mid as UNet2DConditionConfig['mid_block_type'],
    up_block_types: upTypes as UpBlockType[],
    only_cross_attention: onlyCross,
    block_out_channels: channels as number[],
    layers_per_block: posInt(label, 'layers_per_block', get('layers_per_block')),
    downsample_padding: padding as number,
    mid_block_scale_factor: finite(label, 'mid_block_scale_factor', get('mid_block_scale_factor')),
    act_fn: act,
    norm_num_groups: groups,
    norm_eps: eps,
    cross_attention_dim: posInt(label, 'cross_attention_dim', get('cross_attention_dim')),
    attention_head_dim: heads,
    use_linear_projection: bool(label, 'use_linear_projection', get('use_linear_projection')),
    upcast_attention: bool(label, 'upcast_attention', get('upcast_attention')),
    timestep_post_act: postAct as string | null,
    conv_in_kernel: kernel('conv_in_kernel'),
    conv_out_kernel: kernel('conv_out_kernel'),
  };
}
