/**
 * Noise schedulers with diffusers 0.14 semantics, built from a `scheduler_config.json`.
 * See docs/schedulers.md.
 *
 *   const s = createScheduler('path/to/sd15');      // reads scheduler/scheduler_config.json
 *   const euler = fromName('euler', s);              // the same betas, another sampler (from_config)
 *   euler.setTimesteps(30);
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ArgumentError, describe } from '../errors.js';
import { SchedulerConfigError, type RawConfig } from './config.js';
import { DDIMScheduler } from './ddim.js';
import { DDPMScheduler } from './ddpm.js';
import { DPMSolverMultistepScheduler } from './dpm-solver-multistep.js';
import { EulerAncestralDiscreteScheduler } from './euler-ancestral.js';
import { EulerDiscreteScheduler } from './euler.js';
import { LMSDiscreteScheduler } from './lms.js';
import { PNDMScheduler } from './pndm.js';
import type { Scheduler, SchedulerClassName } from './types.js';

export type { Img2ImgTimesteps, Scheduler, SchedulerClassName, StepOptions, StepOutput } from './types.js';
export { SchedulerConfigError, SchedulerStateError } from './config.js';
export { DDIMScheduler, DDIM_DEFAULTS } from './ddim.js';
export { PNDMScheduler, PNDM_DEFAULTS } from './pndm.js';
export { DDPMScheduler, DDPM_DEFAULTS } from './ddpm.js';
export { EulerDiscreteScheduler, EULER_DEFAULTS } from './euler.js';
export { EulerAncestralDiscreteScheduler, EULER_ANCESTRAL_DEFAULTS } from './euler-ancestral.js';
export { LMSDiscreteScheduler, LMS_DEFAULTS } from './lms.js';
export { DPMSolverMultistepScheduler, DPM_SOLVER_MULTISTEP_DEFAULTS } from './dpm-solver-multistep.js';

const CLASSES: Record<SchedulerClassName, new (config: RawConfig) => Scheduler> = {
  DDIMScheduler,
  PNDMScheduler,
  DDPMScheduler,
  EulerDiscreteScheduler,
  EulerAncestralDiscreteScheduler,
  LMSDiscreteScheduler,
  DPMSolverMultistepScheduler,
};

/** The `_class_name`s createScheduler accepts. */
export const SUPPORTED_SCHEDULERS = Object.freeze(Object.keys(CLASSES) as SchedulerClassName[]);

/** Short names for fromName() (CLI flags): the class each stands for, and the settings it implies. */
export const SCHEDULER_NAMES = Object.freeze({
  ddim: { className: 'DDIMScheduler', overrides: {} },
  pndm: { className: 'PNDMScheduler', overrides: {} },
  ddpm: { className: 'DDPMScheduler', overrides: {} },
  euler: { className: 'EulerDiscreteScheduler', overrides: {} },
  'euler-a': { className: 'EulerAncestralDiscreteScheduler', overrides: {} },
  lms: { className: 'LMSDiscreteScheduler', overrides: {} },
  'dpm++': { className: 'DPMSolverMultistepScheduler', overrides: { algorithm_type: 'dpmsolver++' } },
} as const satisfies Record<string, { className: SchedulerClassName; overrides: RawConfig }>);

export type SchedulerName = keyof typeof SCHEDULER_NAMES;

/** Candidate files for a folder: a scheduler folder, a pipeline folder, or a bare config.json. */
const CONFIG_FILES = ['scheduler_config.json', join('scheduler', 'scheduler_config.json'), 'config.json'];

/** Reads a scheduler config from a JSON file or a folder (scheduler_config.json, scheduler/scheduler_config.json, config.json). */
export function readSchedulerConfig(path: string): Record<string, unknown> {
  if (!existsSync(path)) throw new SchedulerConfigError(`scheduler config: ${path} does not exist`);
  let file = path;
  if (statSync(path).isDirectory()) {
    const hit = CONFIG_FILES.map((f) => join(path, f)).find((f) => existsSync(f));
    if (hit === undefined) throw new SchedulerConfigError(`scheduler config: no ${CONFIG_FILES.join(', ')} in ${path}`);
    file = hit;
  }
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new SchedulerConfigError(`scheduler config: ${file} is not valid JSON: ${(e as Error).message}`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v))
    throw new SchedulerConfigError(`scheduler config: ${file} does not hold a JSON object`);
  return v as Record<string, unknown>;
}

/**
 * Builds the scheduler a config names in `_class_name` (a config object, or a path read by
 * readSchedulerConfig); `overrides` replace config keys (diffusers' from_config(config, **kwargs)).
 */
export function createScheduler(config: RawConfig | string, overrides: RawConfig = {}): Scheduler {
  const cfg = typeof config === 'string' ? readSchedulerConfig(config) : config;
  if (cfg === null || typeof cfg !== 'object' || Array.isArray(cfg))
    throw new ArgumentError(`createScheduler(): expected a config object or a path but received ${describe(cfg)}`);
  const name = overrides['_class_name'] ?? cfg['_class_name'];
  if (typeof name !== 'string' || !(name in CLASSES)) {
    throw new SchedulerConfigError(
      `scheduler config: _class_name ${typeof name === 'string' ? `'${name}'` : describe(name)} is not supported; supported: ${SUPPORTED_SCHEDULERS.join(', ')}`,
      '_class_name',
    );
  }
  return new CLASSES[name as SchedulerClassName]({ ...cfg, ...overrides });
}

/**
 * Another scheduler over the same training schedule, as diffusers'
 * `EulerDiscreteScheduler.from_config(pipe.scheduler.config)`: the betas and shared keys carry
 * over, keys the new class does not take are kept but ignored, the rest take the class defaults.
 */
export function fromName(
  name: SchedulerName,
  base: RawConfig | Scheduler | string,
  overrides: RawConfig = {},
): Scheduler {
  const entry = (SCHEDULER_NAMES as Record<string, { className: SchedulerClassName; overrides: RawConfig }>)[name];
  if (entry === undefined) {
    throw new ArgumentError(
      `fromName(): unknown scheduler name ${typeof name === 'string' ? `'${name}'` : describe(name)}; expected one of ${Object.keys(SCHEDULER_NAMES).join(', ')}`,
    );
  }
  const cfg = typeof base === 'string' ? readSchedulerConfig(base) : isScheduler(base) ? base.config : base;
  return createScheduler(cfg, { ...entry.overrides, ...overrides, _class_name: entry.className });
}

function isScheduler(v: unknown): v is Scheduler {
  return (
    v !== null &&
    typeof v === 'object' &&
    typeof (v as Scheduler).step === 'function' &&
    typeof (v as Scheduler).config === 'object'
  );
}
