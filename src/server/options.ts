/**
 * An immunization request's fields, resolved by the protect library's schema (src/protect): the
 * same names, ranges and rules as `immunize protect`'s flags, said in the API's words. The output
 * is the resolved request the runner runs and a copy normalized for display in the job record.
 */
import { ImmunizeError } from '../errors.js';
import { ParameterError, resolveProtectParameters, type ProtectRequest } from '../protect/index.js';
import type { ModelEntry } from './models.js';

/** An error with its HTTP status; `field` names the request field at fault. */
export class HttpError extends ImmunizeError {
  constructor(
    readonly status: number,
    code: string,
    message: string,
    readonly field?: string,
    readonly retryAfter?: number,
  ) {
    super(code, message);
    this.name = 'HttpError';
  }
}

export interface ValidatedOptions {
  parameters: ProtectRequest;
  /** What the job record shows (GET /v1/immunizations/{id}: options). */
  options: Record<string, unknown>;
}

export function validateOptions(
  fields: Record<string, string>,
  o: {
    models: readonly ModelEntry[];
    maxSteps: number;
    hasMask: boolean;
    /** What each model id can run (describeModels); without it every method is let through. */
    methods?: readonly { id: string; methods: string[] }[];
  },
): ValidatedOptions {
  let p: ProtectRequest;
  try {
    p = resolveProtectParameters(fields, {
      door: 'api',
      hasMask: o.hasMask,
      maxSteps: o.maxSteps,
      models: o.models.map((m) => m.id),
    });
  } catch (e) {
    if (e instanceof ParameterError) throw new HttpError(400, 'E_VALIDATION', e.message, e.field);
    throw e;
  }
  // Refused now, in the request's words, rather than failing at the end of the job.
  const can = o.methods?.find((m) => m.id === p.model)?.methods;
  if (can !== undefined && !can.includes(p.method))
    throw new HttpError(
      400,
      'E_VALIDATION',
      `method ${p.method} cannot run with model ${p.model ?? '(none)'} on this server: it needs an inpainting pipeline (this model offers ${can.join(', ')}; GET /v1/config lists each model's methods)`,
      'method',
    );
  return {
    parameters: p,
    options: {
      method: p.method,
      model: p.model,
      preset: p.method === 'noise' ? null : p.preset,
      eps: p.eps,
      stepSize: p.stepSize,
      steps: p.steps,
      optimizer: p.optimizer,
      schedule: p.schedule,
      target: p.target,
      size: p.size,
      seed: p.seed,
      ...(p.method === 'diffusion' ? { diffusionSteps: p.diffusionSteps, gradReps: p.gradReps } : {}),
      ...(p.robust === 'none' ? {} : { robust: p.robust, robustSamples: p.robustSamples }),
      ...(p.budget === 'uniform' ? {} : { budget: p.budget }),
      ...(p.minSsim === null ? {} : { minSsim: p.minSsim }),
      invertMask: p.invertMask,
      mask: o.hasMask,
      // A deprecated preset name, said where the client reads the job back.
      ...(p.notes.length === 0 ? {} : { notes: p.notes }),
    },
  };
}
