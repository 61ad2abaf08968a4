/**
 * Validation of an immunization request's fields, with the ranges and meanings of
 * `immunize protect`'s flags. The output is the list of flags to give `immunize protect` (the
 * values exactly as received, so the command parses them itself and the result is the command's)
 * and a normalized copy for display.
 */
import { DEFAULT_PRESET, PRESETS } from '../attacks/presets.js';
import { ImmunizeError } from '../errors.js';
import type { ModelEntry } from './models.js';

/** An error with its HTTP status; `field` names the request field at fault. */
export class HttpError extends ImmunizeError {
  constructor(readonly status: number, code: string, message: string, readonly field?: string, readonly retryAfter?: number) {
    super(code, message);
    this.name = 'HttpError';
  }
}

const invalid = (field: string, message: string): HttpError => new HttpError(400, 'E_VALIDATION', `${field}: ${message}`, field);

export const OPTION_FIELDS = ['method', 'model', 'preset', 'eps', 'stepSize', 'steps', 'optimizer', 'schedule', 'target', 'size', 'seed', 'diffusionSteps', 'gradReps', 'invertMask'] as const;
export type OptionField = (typeof OPTION_FIELDS)[number];

const FLAGS: Record<Exclude<OptionField, 'model' | 'invertMask'>, string> = {
  method: '--method', preset: '--preset', eps: '--eps', stepSize: '--step-size', steps: '--steps', optimizer: '--optimizer',
  schedule: '--schedule', target: '--target', size: '--size', seed: '--seed', diffusionSteps: '--diffusion-steps', gradReps: '--grad-reps',
};

function number(field: string, v: string, o: { min?: number; max?: number; gt?: number; integer?: boolean }): number {
  const m = /^\s*(-?\d+(?:\.\d+)?(?:e-?\d+)?)\s*(?:\/\s*(\d+(?:\.\d+)?))?\s*$/i.exec(v);
  if (m === null) throw invalid(field, `expected ${o.integer ? 'an integer' : 'a number or a fraction like 16/255'} but received '${v.slice(0, 40)}'`);
  const n = Number(m[1]) / (m[2] === undefined ? 1 : Number(m[2]));
  if (!Number.isFinite(n)) throw invalid(field, `'${v}' is not a finite number`);
  if (o.integer && !Number.isSafeInteger(n)) throw invalid(field, `expected an integer but received '${v}'`);
  if (o.gt !== undefined && !(n > o.gt)) throw invalid(field, `must be greater than ${o.gt} but received ${v}`);
  if (o.min !== undefined && n < o.min) throw invalid(field, `must be at least ${o.min} but received ${v}`);
  if (o.max !== undefined && n > o.max) throw invalid(field, `must be at most ${o.max} but received ${v}`);
  return n;
}

function choice<T extends string>(field: string, v: string, choices: readonly T[]): T {
  if (!(choices as readonly string[]).includes(v)) throw invalid(field, `expected one of ${choices.join(', ')} but received '${v.slice(0, 40)}'`);
  return v as T;
}

export interface ValidatedOptions {
  args: string[];
  options: Record<string, unknown>;
  invertMask: boolean;
}

export function validateOptions(fields: Record<string, string>, o: { models: readonly ModelEntry[]; maxSteps: number; hasMask: boolean }): ValidatedOptions {
  for (const k of Object.keys(fields)) {
    if (!(OPTION_FIELDS as readonly string[]).includes(k)) throw new HttpError(400, 'E_VALIDATION', `unknown field '${k.slice(0, 40)}' (expected image, mask, ${OPTION_FIELDS.join(', ')})`, k.slice(0, 40));
  }
  const f = fields as Partial<Record<OptionField, string>>;
  const method = f.method === undefined ? 'encoder' : choice('method', f.method, ['encoder', 'noise', 'diffusion'] as const);
  if (method === 'diffusion' && !o.hasMask) throw new HttpError(400, 'E_VALIDATION', 'method diffusion needs a mask: white where the photo must be protected, black where an editor would repaint', 'mask');
  const presetName = f.preset === undefined ? DEFAULT_PRESET : choice('preset', f.preset, Object.keys(PRESETS));
  const preset = PRESETS[presetName]!.options;
  const eps = f.eps === undefined ? preset.eps : number('eps', f.eps, { gt: 0, max: 1 });
  const stepSize = f.stepSize === undefined ? preset.stepSize : number('stepSize', f.stepSize, { gt: 0, max: 1 });
  const steps = f.steps === undefined ? preset.steps : number('steps', f.steps, { min: 1, max: o.maxSteps, integer: true });
  const optimizer = f.optimizer === undefined ? preset.optimizer ?? 'sign' : choice('optimizer', f.optimizer, ['sign', 'momentum', 'adam'] as const);
  const schedule = f.schedule === undefined ? preset.schedule ?? 'constant' : choice('schedule', f.schedule, ['constant', 'linear-decay'] as const);
  const target = f.target === undefined ? 'gray' : choice('target', f.target, ['gray', 'zeros'] as const);
  const size = f.size === undefined ? null : number('size', f.size, { min: 8, max: 65_536, integer: true });
  const seed = f.seed === undefined ? 0 : number('seed', f.seed, { min: 0, max: Number.MAX_SAFE_INTEGER, integer: true });
  const diffusionSteps = f.diffusionSteps === undefined ? 4 : number('diffusionSteps', f.diffusionSteps, { min: 1, max: 1000, integer: true });
  const gradReps = f.gradReps === undefined ? 1 : number('gradReps', f.gradReps, { min: 1, max: 1000, integer: true });
  const invertMask = f.invertMask === undefined ? false : choice('invertMask', f.invertMask, ['true', 'false'] as const) === 'true';
  if (invertMask && !o.hasMask) throw new HttpError(400, 'E_VALIDATION', 'invertMask needs a mask', 'invertMask');
  let model: string | null;
  if (f.model === undefined) model = method === 'noise' ? null : o.models[0]!.id;
  else {
    if (!o.models.some((m) => m.id === f.model)) throw invalid('model', `expected one of ${o.models.map((m) => m.id).join(', ')} but received '${f.model.slice(0, 80)}'`);
    model = f.model;
  }
  const args: string[] = [];
  for (const [k, flag] of Object.entries(FLAGS)) {
    const v = f[k as keyof typeof FLAGS];
    if (v !== undefined) args.push(flag, v);
  }
  if (invertMask) args.push('--invert-mask');
  return {
    args,
    invertMask,
    options: {
      method, model, preset: method === 'noise' ? null : presetName, eps, stepSize, steps, optimizer, schedule, target, size, seed,
      ...(method === 'diffusion' ? { diffusionSteps, gradReps } : {}), invertMask, mask: o.hasMask,
    },
  };
}
