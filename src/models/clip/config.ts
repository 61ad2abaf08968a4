/**
 * What CLIP's text and vision configs share (transformers 4.27 `configuration_clip.py`): the
 * encoder's fields, the activation names, and the parsing of one tower's config out of either its
 * own config.json or the `text_config` / `vision_config` of a full CLIPConfig.
 */
import { ImmunizeError, describe } from '../../errors.js';

/** The fields CLIPEncoder is built from; both towers' configs have them. */
export interface CLIPEncoderConfig {
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  hidden_act: string;
  layer_norm_eps: number;
}

// transformers' ACT2FN names that CLIP configs use: quick_gelu (OpenAI CLIP, SD 1.x), gelu
// (OpenCLIP, SD 2.x); 'gelu_new' is the tanh approximation.
export const ACTIVATIONS: Readonly<Record<string, string>> = {
  quick_gelu: 'quick_gelu',
  gelu: 'gelu',
  gelu_new: 'gelu_tanh',
  gelu_pytorch_tanh: 'gelu_tanh',
  relu: 'relu',
  silu: 'silu',
  swish: 'silu',
};

const ENCODER_INT_FIELDS = ['hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads'] as const;

export function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** True when `raw` is a full CLIPConfig (both towers) rather than one tower's config. */
export function isFullCLIPConfig(raw: Record<string, unknown>, tower: 'text' | 'vision'): boolean {
  return isObject(raw[`${tower}_config`]) || isObject(raw[`${tower}_config_dict`]) || raw['model_type'] === 'clip';
}

/**
 * One tower's config from its own config.json or from a full CLIPConfig (where, as in 4.27,
 * `<tower>_config_dict` of older files overrides `<tower>_config`), with `defaults` for absent
 * fields; checks the encoder's fields, the tower's other positive integers (`intFields`), and
 * what the tower's `check` adds (given the label its errors should name).
 */
export function parseTowerConfig<C extends CLIPEncoderConfig>(
  raw: Record<string, unknown>,
  label: string,
  tower: 'text' | 'vision',
  defaults: C,
  intFields: readonly (keyof C & string)[],
  check?: (cfg: C, label: string) => void,
): C {
  if (!isObject(raw))
    throw new ImmunizeError('E_CONFIG', `${label}: expected a JSON object but received ${describe(raw)}`);
  let src = raw;
  if (isFullCLIPConfig(raw, tower)) {
    const sub = (k: string) => (isObject(raw[k]) ? raw[k] : {});
    src = { ...sub(`${tower}_config`), ...sub(`${tower}_config_dict`) };
    label = `${label} (${tower}_config)`;
  }
  const cfg = { ...defaults };
  for (const k of Object.keys(defaults) as (keyof C)[]) {
    if (src[k as string] !== undefined && src[k as string] !== null) cfg[k] = src[k as string] as C[keyof C];
  }
  for (const k of [...ENCODER_INT_FIELDS, ...intFields]) {
    const v = cfg[k];
    if (!Number.isSafeInteger(v) || (v as number) < 1)
      throw new ImmunizeError('E_CONFIG', `${label}: ${k} should be a positive integer but is ${describe(v)}`);
  }
  if (cfg.hidden_size % cfg.num_attention_heads !== 0) {
    throw new ImmunizeError(
      'E_CONFIG',
      `${label}: hidden_size ${cfg.hidden_size} is not divisible by num_attention_heads ${cfg.num_attention_heads}`,
    );
  }
  check?.(cfg, label);
  if (typeof cfg.layer_norm_eps !== 'number' || !(cfg.layer_norm_eps > 0))
    throw new ImmunizeError(
      'E_CONFIG',
      `${label}: layer_norm_eps should be a positive number but is ${describe(cfg.layer_norm_eps)}`,
    );
  if (typeof cfg.hidden_act !== 'string' || ACTIVATIONS[cfg.hidden_act] === undefined) {
    throw new ImmunizeError(
      'E_CONFIG',
      `${label}: unknown hidden_act ${JSON.stringify(cfg.hidden_act)} (expected one of ${Object.keys(ACTIVATIONS).join(', ')})`,
    );
  }
  return cfg;
}
