/**
 * Resolving a protect request: raw values from any door (command-line text, multipart form text,
 * JSON values) checked against the schema (schema.ts), defaults and the preset applied, and the
 * rules between parameters enforced. Every refusal is an ArgumentError whose `field` names the
 * parameter, so the CLI can say `--step-size: …` and the API `{ field: 'stepSize' }`.
 */
import type { ImmunizeMethod } from '../attacks/immunize.js';
import type { Optimizer, PgdOptions, StepSchedule } from '../attacks/pgd.js';
import { DEFAULT_CONVERGENCE } from '../attacks/convergence.js';
import { presetNamed, type BudgetKind, type StopRule } from '../attacks/presets.js';
import { ArgumentError } from '../errors.js';
import { DEFAULT_INPAINT_MODEL, DEFAULT_MODEL } from '../models/defaults.js';
import { parseNumberText } from '../numbers.js';
import { defaultCheckSuite, parseCheckSuite } from '../robustness/check.js';
import type { RobustKind } from '../robustness/robust.js';
import { autoPrecision, checkDevice, checkPrecision, type Precision } from '../torch/index.js';
import { PROTECT_PARAMETERS, type Door, type ParameterSpec } from './schema.js';

/** The methods whose network may run in bf16/fp16: the encoder attack and the learned immunizer. */
const REDUCED_PRECISION_METHODS: readonly ImmunizeMethod[] = ['encoder', 'learned'];

/** A resolved protect request: every parameter with its value, ready for protectImage. */
export interface ProtectRequest {
  method: ImmunizeMethod;
  /** A repo id, folder or file (the API: its model id until the runner maps it); null: none (noise without a model). */
  model: string | null;
  /** The preset's name (an old alias resolved: `default` is `strong`). */
  preset: string;
  /** uniform (photoguard's L∞ ball) or texture (budget.ts: follows local contrast; `eps` at average contrast). */
  budget: BudgetKind;
  /** The visibility target: SSIM of the result to the original at least this; null: none. */
  minSsim: number | null;
  eps: number;
  stepSize: number;
  /** The most steps (stop converged) or exactly these steps (stop steps). */
  steps: number;
  /** converged: stop at a plateau of the loss (attacks/convergence.ts); steps: take every step. */
  stop: StopRule;
  optimizer: Optimizer;
  schedule: StepSchedule;
  /** From the preset (photoguard's random start); not a user parameter. */
  randomStart: boolean;
  /** encoder: 'learned' starts PGD from the learned immunizer's perturbation. */
  start: 'preset' | 'learned';
  /** 'gray', 'zeros', or the path of a target image (command line only). */
  target: string;
  invertMask: boolean;
  robust: 'none' | RobustKind;
  robustSamples: number;
  diffusionSteps: number;
  gradReps: number;
  size: number | null;
  tile: number | null;
  seed: number;
  check: boolean;
  checkSuite: string[];
  maxPixels: number;
  device: string;
  /** As asked: 'auto' is decided where the job runs (precisionOf). */
  precision: 'auto' | Precision;
  fp16: boolean;
  /** What the door should tell the person (a deprecated preset name). */
  notes: string[];
}

export interface ResolveContext {
  /** Which door the request came through: values of parameters it does not offer are refused. Default 'cli'. */
  door?: Door;
  /** Whether a mask comes with the request (the diffusion attack and invertMask need one). */
  hasMask?: boolean;
  /** The most steps this door allows (the service's --max-steps). */
  maxSteps?: number;
  /** The models this door offers, by id (the service); the first is the default. */
  models?: readonly string[];
}

/**
 * A refusal whose text names parameters as `{name}`, so each door says it in its own words:
 * `--step-size` on the command line, `stepSize` in the API (`render`).
 */
export class ParameterError extends ArgumentError {
  constructor(
    field: string,
    readonly template: string,
  ) {
    super(
      ParameterError.fill(template, (n) => n),
      { field },
    );
    this.name = 'ParameterError';
  }
  static fill(template: string, nameOf: (name: string) => string): string {
    return template.replace(/\{(\w+)\}/g, (_, n: string) => nameOf(n));
  }
  render(nameOf: (name: string) => string): string {
    return ParameterError.fill(this.template, nameOf);
  }
}

/** `{field}: message` (the message may name other parameters as `{name}`). */
const fail = (field: string, message: string): ParameterError => new ParameterError(field, `{${field}}: ${message}`);
/** A rule between parameters, in its own words. */
const rule = (field: string, template: string): ParameterError => new ParameterError(field, template);

function shown(v: unknown): string {
  return typeof v === 'string' ? `'${v.slice(0, 80)}'` : String(v);
}

function rangeText(p: { min?: number; max?: number; above?: number }): string {
  const lo = p.above !== undefined ? `greater than ${p.above}` : p.min !== undefined ? `at least ${p.min}` : null;
  const hi = p.max !== undefined ? `at most ${p.max}` : null;
  return [lo, hi].filter((s) => s !== null).join(' and ');
}

/** One value, checked against its declaration. */
function parseValue(p: ParameterSpec, raw: unknown, door: Door, maxOverride?: number): unknown {
  switch (p.type) {
    case 'number':
    case 'integer': {
      const n = typeof raw === 'number' ? raw : typeof raw === 'string' ? parseNumberText(raw) : null;
      const expected =
        p.type === 'integer' ? 'an integer' : p.fraction ? 'a number or a fraction like 16/255' : 'a number';
      if (n === null || !Number.isFinite(n)) throw fail(p.name, `expected ${expected} but received ${shown(raw)}`);
      if (p.type === 'integer' && !Number.isSafeInteger(n))
        throw fail(p.name, `expected an integer but received ${shown(raw)}`);
      const max = maxOverride ?? p.max;
      const bounds = { ...p, max };
      if (
        (p.above !== undefined && !(n > p.above)) ||
        (p.min !== undefined && n < p.min) ||
        (max !== undefined && n > max)
      ) {
        throw fail(p.name, `must be ${rangeText(bounds)} but received ${typeof raw === 'string' ? raw : n}`);
      }
      // '-0' is zero: normalised here so that no later step (a seed, a record) sees a negative zero.
      return n === 0 ? 0 : n;
    }
    case 'choice': {
      if (typeof raw !== 'string')
        throw fail(p.name, `expected one of ${p.choices.join(', ')} but received ${shown(raw)}`);
      if (!p.choices.includes(raw) && !(p.cliPath && door === 'cli'))
        throw fail(p.name, `expected one of ${p.choices.join(', ')} but received ${shown(raw)}`);
      return raw;
    }
    case 'boolean':
      if (raw === true || raw === 'true') return true;
      if (raw === false || raw === 'false') return false;
      throw fail(p.name, `expected true or false but received ${shown(raw)}`);
    case 'string':
      if (typeof raw !== 'string' || raw === '')
        throw fail(p.name, `expected a non-empty text but received ${shown(raw)}`);
      if (p.maxLength !== undefined && raw.length > p.maxLength)
        throw fail(p.name, `longer than ${p.maxLength} characters`);
      return raw;
    case 'list': {
      const items = Array.isArray(raw) ? raw : typeof raw === 'string' ? raw.split(',') : null;
      if (items === null || !items.every((s) => typeof s === 'string'))
        throw fail(p.name, `expected comma-separated text but received ${shown(raw)}`);
      return items.map((s: string) => s.trim()).filter((s: string) => s !== '');
    }
  }
}

/**
 * Resolves `request` (field → raw value; absent or undefined = default). Throws an ArgumentError
 * naming the field for an unknown field, a value out of its range or type, or a rule between
 * parameters that does not hold.
 */
export function resolveProtectParameters(
  request: Readonly<Record<string, unknown>>,
  ctx: ResolveContext = {},
): ProtectRequest {
  const door = ctx.door ?? 'cli';
  const offered = PROTECT_PARAMETERS.filter((p) => p.doors.includes(door));
  for (const k of Object.keys(request)) {
    if (request[k] === undefined) continue;
    if (!offered.some((p) => p.name === k))
      throw fail(k.slice(0, 40), `unknown parameter (expected ${offered.map((p) => p.name).join(', ')})`);
  }
  const given: Record<string, unknown> = {};
  for (const p of offered) {
    const raw = request[p.name];
    if (raw === undefined) continue;
    given[p.name] = parseValue(p, raw, door, p.name === 'steps' ? ctx.maxSteps : undefined);
  }
  const value = <T>(name: string, fallback: T): T => (given[name] === undefined ? fallback : (given[name] as T));
  const fixed = (name: string): unknown => {
    const p = PROTECT_PARAMETERS.find((s) => s.name === name)!;
    return p.default === 'preset' ? undefined : p.default;
  };

  const method = value<ImmunizeMethod>('method', fixed('method') as ImmunizeMethod);
  const named = presetNamed(value<string>('preset', fixed('preset') as string))!;
  const presetName = named.name;
  const preset = named.preset.options;
  const notes =
    named.alias === null
      ? []
      : [
          `preset '${named.alias}' is now called '${named.name}' (the same attack); the old name is deprecated and will be removed — the default is now 'balanced'`,
        ];
  const hasMask = ctx.hasMask === true;
  if (method === 'diffusion' && !hasMask)
    throw rule(
      'mask',
      '{method} diffusion needs {mask}: white where the photo must be protected (the region an editor would keep), black where it would be repainted',
    );
  const invertMask = value('invertMask', false);
  if (invertMask && !hasMask) throw rule('invertMask', '{invertMask} needs {mask}');

  const robust = value<ProtectRequest['robust']>('robust', 'none');
  if (robust !== 'none' && method !== 'encoder')
    throw rule(
      'robust',
      "{robust} works with {method} encoder (the diffusion attack's gradient is computed step by step, without transforms; the noise baseline has none)",
    );
  if (given['robustSamples'] !== undefined && robust === 'none')
    throw rule('robustSamples', '{robustSamples} needs {robust} jpeg|all');
  const check = value('check', false);
  if (given['checkSuite'] !== undefined && !check) throw rule('checkSuite', '{checkSuite} needs {check}');
  // Not given: the default suite, its IMPRESS row shortened to fit a server's --max-steps.
  const checkSuite = value<string[]>('checkSuite', defaultCheckSuite(ctx.maxSteps));
  if (check) {
    try {
      parseCheckSuite(checkSuite, ctx.maxSteps === undefined ? {} : { maxCost: ctx.maxSteps });
    } catch (e) {
      throw fail('checkSuite', (e as Error).message);
    }
  }
  // The rule was measured on the encoder attack's loss; the diffusion attack's is a random estimate per step.
  const stop = value<StopRule>('stop', method === 'encoder' ? named.preset.stop : 'steps');
  // Per-pixel budgets and the visibility target are the encoder attack's; the other methods use the preset's eps.
  const budget = value<BudgetKind>('budget', method === 'encoder' ? named.preset.budget : 'uniform');
  if (budget !== 'uniform' && method !== 'encoder')
    throw rule('budget', `{budget} ${budget} works with {method} encoder; the ${method} method has a uniform budget`);
  const givenSsim = given['minSsim'] as number | undefined;
  if (givenSsim !== undefined && givenSsim > 0 && method !== 'encoder')
    throw rule(
      'minSsim',
      `{minSsim} works with {method} encoder; the ${method} method has no visibility target (use {minSsim} 0 or leave it out)`,
    );
  const presetSsim = method === 'encoder' ? named.preset.minSsim : null;
  const minSsim = givenSsim === undefined ? presetSsim : givenSsim > 0 ? givenSsim : null;
  if (stop === 'converged' && method !== 'encoder')
    throw rule(
      'stop',
      "{stop} converged works with {method} encoder (the diffusion attack's loss is a random estimate, the noise baseline takes no steps); use {stop} steps",
    );
  const start = value<ProtectRequest['start']>('start', 'preset');
  if (start === 'learned' && method !== 'encoder')
    throw rule(
      'start',
      '{start} learned works with {method} encoder (PGD refines the learned perturbation); {method} learned alone is one forward pass',
    );
  const target = value<string>('target', 'gray');
  if (method === 'learned' && target !== 'gray')
    throw rule(
      'target',
      '{method} learned was trained for the gray target only; use {method} encoder for another target',
    );
  if (method === 'diffusion' && target === 'zeros')
    throw rule(
      'target',
      '{target} zeros is a latent target, for {method} encoder; the diffusion attack aims its edit at an image: gray (default) or an image path',
    );

  let model: string | null = value<string | null>('model', null);
  if (ctx.models !== undefined) {
    if (model !== null && !ctx.models.includes(model))
      throw fail('model', `expected one of ${ctx.models.join(', ')} but received ${shown(model)}`);
    if (model === null && method !== 'noise') model = ctx.models[0] ?? null;
  } else if (model === null) {
    model = method === 'encoder' ? DEFAULT_MODEL : method === 'diffusion' ? DEFAULT_INPAINT_MODEL : null;
  }
  const device = value('device', 'cpu');
  try {
    checkDevice(device);
  } catch (e) {
    throw fail('device', (e as Error).message);
  }
  const precision = value<ProtectRequest['precision']>('precision', 'auto');
  if (precision !== 'auto')
    try {
      checkPrecision(precision, device); // the engine's rule: fp16 on CUDA only
    } catch (e) {
      throw fail('precision', (e as Error).message);
    }
  if ((precision === 'bf16' || precision === 'fp16') && !REDUCED_PRECISION_METHODS.includes(method))
    throw rule(
      'precision',
      `{precision} ${precision} works with {method} encoder or learned; the ${method} method runs in fp32 (use auto or fp32)`,
    );
  if (check && (method === 'noise' || method === 'learned') && model === null)
    throw rule(
      'model',
      `{check} with {method} ${method} needs {model}: the protection is measured through a model (e.g. ../shared/models/taef2-hf)`,
    );

  return {
    method,
    model,
    preset: presetName,
    budget,
    minSsim,
    eps: value('eps', preset.eps),
    stepSize: value('stepSize', start === 'learned' ? LEARNED_REFINE.stepScale * preset.stepSize : preset.stepSize),
    steps: value('steps', start === 'learned' ? Math.min(LEARNED_REFINE.steps, preset.steps) : preset.steps),
    stop,
    optimizer: value('optimizer', preset.optimizer ?? 'sign'),
    schedule: value('schedule', preset.schedule ?? 'constant'),
    randomStart: preset.randomStart === true,
    start,
    target,
    invertMask,
    robust,
    robustSamples: value('robustSamples', 1),
    diffusionSteps: value('diffusionSteps', 4),
    gradReps: value('gradReps', 1),
    size: value<number | null>('size', null),
    tile: value<number | null>('tile', null),
    seed: value('seed', 0),
    check,
    checkSuite,
    maxPixels: value('maxPixels', fixed('maxPixels') as number),
    device,
    precision,
    fp16: value('fp16', false),
    notes,
  };
}

/**
 * The precision a request runs in where it runs: `auto` becomes bf16 on CUDA or on a CPU with
 * native bf16 (fp32 elsewhere), and always fp32 for the methods other than the encoder attack;
 * `reason` says why, for the job's note.
 */
export function precisionOf(r: Pick<ProtectRequest, 'precision' | 'device' | 'method'>): {
  requested: ProtectRequest['precision'];
  used: Precision;
  reason: string;
} {
  if (r.precision !== 'auto') return { requested: r.precision, used: r.precision, reason: 'as asked' };
  if (!REDUCED_PRECISION_METHODS.includes(r.method))
    return { requested: 'auto', used: 'fp32', reason: `the ${r.method} method runs in fp32` };
  const a = autoPrecision(r.device);
  return { requested: 'auto', used: a.precision, reason: a.reason };
}

/**
 * PGD started from the learned δ refines a good start in a few steps: by default 20 steps at 4×
 * the preset's step (ε/2 for strong, decaying as the preset's). Measured at 256² on the six shared
 * photos (TAEF2, docs/learned.md#refining): 20 steps at 4× the step end 0.5 dB lower than at the
 * preset's own step (3–6× within 0.1 dB of each other; at 60 steps 2× and 4× are 0.1 dB ahead of 1×).
 */
export const LEARNED_REFINE = Object.freeze({ steps: 20, stepScale: 4 });

/** The PGD options of a request (the attack's state stays on the [0, 1] scale). */
export function pgdOptionsOf(r: ProtectRequest): Omit<PgdOptions, 'mask' | 'onStep'> {
  return {
    eps: r.eps,
    stepSize: r.stepSize,
    steps: r.steps,
    norm: 'linf',
    schedule: r.schedule,
    randomStart: r.randomStart,
    optimizer: r.optimizer,
    seed: r.seed,
    ...(r.stop === 'converged' ? { converge: { ...DEFAULT_CONVERGENCE } } : {}),
  };
}
