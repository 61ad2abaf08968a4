/**
 * Scheduler configs: `scheduler_config.json` dicts as diffusers 0.14 reads them. Each class
 * states its `__init__` defaults once; a config is those defaults overlaid with what was given
 * (keys a class does not take are kept, as diffusers keeps them "hidden", and ignored), and every
 * field a class uses is validated with a message naming the field, what was expected and what
 * was received.
 */
import { ArgumentError, describe, ImmunizeError } from '../errors.js';
import type { BetaSchedule, BetaSpec } from './numerics.js';

/** A bad scheduler config: names the class, the field and the value. */
export class SchedulerConfigError extends ImmunizeError {
  readonly field: string | null;
  constructor(message: string, field: string | null = null) {
    super('E_CONFIG', message);
    this.name = 'SchedulerConfigError';
    this.field = field;
  }
}

/** A scheduler used out of order (e.g. step() before setTimesteps()). */
export class SchedulerStateError extends ImmunizeError {
  constructor(message: string) {
    super('E_SCHEDULER_STATE', message);
    this.name = 'SchedulerStateError';
  }
}

export type RawConfig = Readonly<Record<string, unknown>>;

/** The β schedule's defaults, the same in every diffusers 0.14 scheduler's __init__. */
export const BETA_DEFAULTS: RawConfig = Object.freeze({
  num_train_timesteps: 1000,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: 'linear',
  trained_betas: null,
});

/** The config a scheduler ends up with: defaults ⊕ given keys, `_class_name` set to the class. */
export function mergeConfig(className: string, defaults: RawConfig, given: RawConfig): Record<string, unknown> {
  const out: Record<string, unknown> = { ...defaults };
  for (const [k, v] of Object.entries(given)) if (!k.startsWith('_') && v !== undefined) out[k] = v;
  out['_class_name'] = className;
  return out;
}

/** Typed, validated reads from a merged config. */
export class ConfigReader {
  constructor(
    readonly className: string,
    readonly cfg: RawConfig,
  ) {}

  #fail(key: string, expected: string): never {
    throw new SchedulerConfigError(
      `${this.className} config: expected ${key} to be ${expected} but received ${describeValue(this.cfg[key])}`,
      key,
    );
  }

  int(key: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
    const v = this.cfg[key];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
      this.#fail(key, max === Number.MAX_SAFE_INTEGER ? `an integer ≥ ${min}` : `an integer in [${min}, ${max}]`);
    }
    return v;
  }

  num(key: string, min = -Infinity, max = Infinity): number {
    const v = this.cfg[key];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) {
      this.#fail(key, min === -Infinity && max === Infinity ? 'a finite number' : `a number in [${min}, ${max}]`);
    }
    return v;
  }

  bool(key: string): boolean {
    const v = this.cfg[key];
    if (typeof v !== 'boolean') this.#fail(key, 'true or false');
    return v;
  }

  oneOf<T extends string>(key: string, allowed: readonly T[]): T {
    const v = this.cfg[key];
    if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v))
      this.#fail(key, `one of ${allowed.map((a) => `'${a}'`).join(', ')}`);
    return v as T;
  }

  /** The fields every 0.14 scheduler shares: the training noise schedule. */
  betas(schedules: readonly BetaSchedule[] = ['linear', 'scaled_linear', 'squaredcos_cap_v2']): BetaSpec {
    const numTrainTimesteps = this.int('num_train_timesteps', 1, 1_000_000);
    const betaStart = this.num('beta_start', 0, 1);
    const betaEnd = this.num('beta_end', 0, 1);
    const tb = this.cfg['trained_betas'];
    let trainedBetas: number[] | null = null;
    if (tb !== null && tb !== undefined) {
      if (!Array.isArray(tb) || tb.length === 0 || !tb.every((b) => typeof b === 'number' && b >= 0 && b < 1)) {
        this.#fail('trained_betas', 'null or an array of numbers in [0, 1)');
      }
      if (tb.length !== numTrainTimesteps)
        this.#fail('trained_betas', `null or an array of num_train_timesteps (${numTrainTimesteps}) numbers`);
      trainedBetas = tb as number[];
    }
    const betaSchedule =
      trainedBetas === null ? this.oneOf('beta_schedule', schedules) : (this.cfg['beta_schedule'] as BetaSchedule);
    return { numTrainTimesteps, betaStart, betaEnd, betaSchedule, trainedBetas };
  }
}

function describeValue(v: unknown): string {
  if (typeof v === 'string') return `'${v}'`;
  return describe(v);
}

/** Checks a number of inference steps: an integer in [1, numTrainTimesteps]. */
export function checkInferenceSteps(n: unknown, numTrainTimesteps: number): number {
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 1 || n > numTrainTimesteps) {
    throw new ArgumentError(
      `Expected num_inference_steps to be an integer in [1, ${numTrainTimesteps}] (num_train_timesteps) but received ${describe(n)}`,
    );
  }
  return n;
}

/** Checks an img2img strength: a number in [0, 1]. */
export function checkStrength(strength: unknown): number {
  if (typeof strength !== 'number' || !Number.isFinite(strength) || strength < 0 || strength > 1) {
    throw new ArgumentError(`Expected strength to be a number in [0, 1] but received ${describe(strength)}`);
  }
  return strength;
}
