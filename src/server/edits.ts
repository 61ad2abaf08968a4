/**
 * "Test the protection" in the API (docs/api.md, edits): `POST /v1/immunizations/{id}/edits` edits
 * the original and the immunized photo of a finished immunization with the same prompt and seed,
 * as a job of its own (kind `edit`, the same queue, runner processes and records as every job; the
 * work is edit-job.ts). This file holds the server's editing settings, what `/v1/config` says
 * about them, the request's validation, and the routes that create an edit and serve its PNGs.
 * The generic job routes (`GET /v1/edits/{id}`, events, cancel, delete) are api.ts's.
 */
import { readFileSync } from 'node:fs';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { UsageError } from '../errors.js';
import { parseModelEntry, pipelineTraits, type ModelEntry } from './models.js';
import { HttpError } from './options.js';
import type { JobKind, JobRecord, Storage } from './storage.js';
import { err, idParams, png, record, routeSchema, tokenQuery } from './openapi.js';

export {
  EDIT_DEFAULTS,
  EDIT_FILES,
  EDIT_LIMITS,
  editingInfo,
  editLinks,
  parseEditing,
  registerEditRoutes,
  validateEdit,
};
export type { EditingConfig, EditingModels, EditOptions, EditRouteContext };

/** The editing pipelines a server offers (`immunize serve --edit-model / --inpaint-model`). */
interface EditingModels {
  img2img: ModelEntry | null;
  inpaint: ModelEntry | null;
}

/** The validated request (edits.ts), as stored in the edit job's record. */
interface EditOptions {
  mode: 'img2img' | 'inpaint';
  prompt: string;
  negativePrompt: string;
  seed: number;
  strength: number;
  steps: number;
  guidance: number;
}

/** Fixed file names in the edit job's folder (never from user input). */
const EDIT_FILES = { original: 'original.png', immunized: 'immunized.png' } as const;

/** The server's editing pipelines (`--edit-model`, `--inpaint-model`) and its bound on steps. */
interface EditingConfig extends EditingModels {
  maxSteps: number;
}

/**
 * Defaults: photoguard's img2img demo (strength 0.5, guidance 7.5; its notebooks use seed 9209
 * and 100 steps — 50 here, as `immunize edit`, since every edit job runs two edits).
 */
const EDIT_DEFAULTS = { strength: 0.5, steps: 50, guidance: 7.5, seed: 0 } as const;
const EDIT_LIMITS = { promptChars: 500, maxSeed: 4_294_967_295, maxGuidance: 30, defaultMaxSteps: 100 } as const;

/** `--edit-model ID|PATH` (or `NAME=SPEC`), `--inpaint-model …`; null when neither is given. */
function parseEditing(v: {
  editModel?: string | undefined;
  inpaintModel?: string | undefined;
  maxSteps?: number | undefined;
}): EditingConfig | null {
  if (v.editModel === undefined && v.inpaintModel === undefined) return null;
  const entry = (flag: string, s: string | undefined): ModelEntry | null => {
    if (s === undefined) return null;
    try {
      return parseModelEntry(s);
    } catch (e) {
      throw new UsageError((e as Error).message.replace(/^--model/, `--${flag}`));
    }
  };
  return {
    img2img: entry('edit-model', v.editModel),
    inpaint: entry('inpaint-model', v.inpaintModel),
    maxSteps: v.maxSteps ?? EDIT_LIMITS.defaultMaxSteps,
  };
}

/** What `GET /v1/config` says about editing (ids only, never paths). */
function editingInfo(cfg: EditingConfig | null | undefined, queueKind: 'embedded' | 'redis'): Record<string, unknown> {
  if (cfg === null || cfg === undefined)
    return { available: false, reason: 'this server has no editing model (immunize serve --edit-model)' };
  if (queueKind === 'redis')
    return { available: false, reason: 'editing runs only with the embedded queue (immunize serve without --redis)' };
  const modes = [...(cfg.img2img === null ? [] : ['img2img']), ...(cfg.inpaint === null ? [] : ['inpaint'])];
  return {
    available: true,
    modes,
    models: { img2img: cfg.img2img?.id ?? null, inpaint: cfg.inpaint?.id ?? null },
    // The ids of test-sized pipelines (their edits are noise), so a client can say so.
    testModels: [cfg.img2img, cfg.inpaint].flatMap((m) =>
      m !== null && pipelineTraits(m.spec)?.tiny === true ? [m.id] : [],
    ),
    defaults: { mode: modes[0], ...EDIT_DEFAULTS },
    limits: {
      maxSteps: cfg.maxSteps,
      maxPromptChars: EDIT_LIMITS.promptChars,
      maxSeed: EDIT_LIMITS.maxSeed,
      maxGuidance: EDIT_LIMITS.maxGuidance,
    },
  };
}

/** The extra links of an edit record (read token included, for `<img src>`). */
function editLinks(base: string, tokenQuery: string): Record<string, string> {
  return { original: `${base}/original.png${tokenQuery}`, immunized: `${base}/immunized.png${tokenQuery}` };
}

const FIELDS = ['prompt', 'negativePrompt', 'seed', 'strength', 'steps', 'guidance', 'mode'] as const;

const invalid = (field: string, message: string): HttpError =>
  new HttpError(400, 'E_VALIDATION', `${field}: ${message}`, field);

function received(v: unknown): string {
  const s = typeof v === 'string' ? `'${v.slice(0, 40)}'` : (JSON.stringify(v)?.slice(0, 40) ?? String(v));
  return `${s} of type ${Array.isArray(v) ? 'array' : v === null ? 'null' : typeof v}`;
}

function text(field: string, v: unknown, required: boolean): string {
  if (v === undefined && !required) return '';
  if (typeof v !== 'string')
    throw invalid(
      field,
      `expected a string of 1 to ${EDIT_LIMITS.promptChars} characters but received ${v === undefined ? 'nothing' : received(v)}`,
    );
  // Control characters have no place in a prompt; refusing them keeps records and logs clean.
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(v)) throw invalid(field, 'must not contain control characters (newlines, tabs, …)');
  const t = v.trim();
  if (required && t.length === 0)
    throw invalid(field, 'must not be empty: say what the edit should make of the photo, e.g. "two men in a wedding"');
  if ([...t].length > EDIT_LIMITS.promptChars)
    throw invalid(
      field,
      `at most ${EDIT_LIMITS.promptChars} characters (received ${[...t].length}); the text encoder reads 77 tokens anyway`,
    );
  return t;
}

function num(
  field: string,
  v: unknown,
  def: number,
  o: { min: number; max: number; integer?: boolean; gt?: boolean },
): number {
  if (v === undefined) return def;
  const what = o.integer
    ? `an integer from ${o.min} to ${o.max}`
    : `a number ${o.gt ? 'greater than' : 'from'} ${o.min} ${o.gt ? 'and at most' : 'to'} ${o.max}`;
  if (
    typeof v !== 'number' ||
    !Number.isFinite(v) ||
    (o.integer && !Number.isInteger(v)) ||
    v > o.max ||
    (o.gt ? v <= o.min : v < o.min)
  )
    throw invalid(field, `expected ${what} but received ${received(v)}`);
  return v;
}

/** The edit request's JSON body, validated (sharp-style messages naming the field, the range and what was received). */
function validateEdit(body: unknown, cfg: EditingConfig, parentHasMask: boolean): EditOptions {
  if (body === null || body === undefined || typeof body !== 'object' || Array.isArray(body))
    throw new HttpError(
      400,
      'E_VALIDATION',
      'expected a JSON object such as { "prompt": "two men in a wedding", "seed": 9209 }',
    );
  const b = body as Record<string, unknown>;
  for (const k of Object.keys(b))
    if (!(FIELDS as readonly string[]).includes(k))
      throw invalid(k.slice(0, 40), `unknown field (expected ${FIELDS.join(', ')})`);
  const modes = [...(cfg.img2img === null ? [] : ['img2img']), ...(cfg.inpaint === null ? [] : ['inpaint'])];
  const mode = b['mode'] ?? modes[0];
  if (mode !== 'img2img' && mode !== 'inpaint')
    throw invalid('mode', `expected one of img2img, inpaint but received ${received(mode)}`);
  if (!modes.includes(mode)) throw invalid('mode', `this server has no ${mode} model (it offers ${modes.join(', ')})`);
  if (mode === 'inpaint' && !parentHasMask)
    throw invalid(
      'mode',
      'inpainting repaints what the mask did not protect; this immunization has no mask (use img2img)',
    );
  const o: EditOptions = {
    mode,
    prompt: text('prompt', b['prompt'], true),
    negativePrompt: text('negativePrompt', b['negativePrompt'], false),
    seed: num('seed', b['seed'], EDIT_DEFAULTS.seed, { min: 0, max: EDIT_LIMITS.maxSeed, integer: true }),
    strength: num('strength', b['strength'], EDIT_DEFAULTS.strength, { min: 0, max: 1, gt: true }),
    steps: num('steps', b['steps'], Math.min(EDIT_DEFAULTS.steps, cfg.maxSteps), {
      min: 1,
      max: cfg.maxSteps,
      integer: true,
    }),
    guidance: num('guidance', b['guidance'], EDIT_DEFAULTS.guidance, { min: 0, max: EDIT_LIMITS.maxGuidance }),
  };
  // img2img runs floor(steps × strength) steps (diffusers); zero would return the photo unedited.
  if (mode === 'img2img' && Math.floor(o.steps * o.strength) < 1)
    throw invalid(
      'strength',
      `strength × steps must allow one denoising step (img2img runs ⌊${o.steps} × ${o.strength}⌋ = 0); raise strength or steps`,
    );
  return o;
}

/** What api.ts lends these routes: its caller checks, job lookup, limits and job creation. */
interface EditRouteContext {
  storage: Storage;
  queueKind: 'embedded' | 'redis';
  editing: EditingConfig | null;
  identify(req: FastifyRequest, opts?: { id?: string; allowToken?: boolean }): { owner: string };
  ownJob(caller: { owner: string }, id: string, kind: JobKind): JobRecord;
  takeCreate(caller: { owner: string }): void;
  capacity(): Promise<void>;
  newRecord(kind: JobKind, owner: string): JobRecord;
  accept(r: JobRecord, files: { name: string; data: Buffer }[], reply: FastifyReply): Promise<FastifyReply>;
}

function registerEditRoutes(app: FastifyInstance, c: EditRouteContext): void {
  type P = { Params: { id: string }; Body: unknown };
  app.post<P>(
    '/v1/immunizations/:id/edits',
    {
      schema: routeSchema({
        summary:
          'test the protection: edit the original and the immunized photo with the same prompt and seed (GET /v1/config editing)',
        params: idParams,
        body: {
          type: 'object',
          required: ['prompt'],
          additionalProperties: false,
          properties: {
            prompt: { type: 'string', minLength: 1, maxLength: EDIT_LIMITS.promptChars },
            negativePrompt: { type: 'string', maxLength: EDIT_LIMITS.promptChars },
            seed: { type: 'integer', minimum: 0, maximum: EDIT_LIMITS.maxSeed },
            steps: { type: 'integer', minimum: 1, ...(c.editing === null ? {} : { maximum: c.editing.maxSteps }) },
            strength: { type: 'number', exclusiveMinimum: 0, maximum: 1 },
            guidance: { type: 'number', minimum: 0, maximum: EDIT_LIMITS.maxGuidance },
            mode: { enum: ['img2img', 'inpaint'] },
          },
        },
        'x-responses': {
          202: record,
          400: err('invalid field'),
          404: err('no such immunization for this key'),
          409: err('immunization not completed'),
          501: err('no editing model, or Redis mode'),
        },
      }),
    },
    async (req, reply) => {
      const caller = c.identify(req);
      const parent = c.ownJob(caller, req.params.id, 'immunization');
      if (c.editing === null)
        throw new HttpError(
          501,
          'E_NOT_IMPLEMENTED',
          'this server has no editing model (start it with immunize serve --edit-model ID|PATH); GET /v1/config says editing.available',
        );
      if (c.queueKind === 'redis')
        throw new HttpError(
          501,
          'E_NOT_IMPLEMENTED',
          'editing runs only with the embedded queue in this version (immunize serve without --redis); GET /v1/config says editing.available',
        );
      const options = validateEdit(
        req.body,
        c.editing,
        parent.input?.mask !== null && parent.input?.mask !== undefined,
      );
      if (parent.status !== 'completed')
        throw new HttpError(
          409,
          'E_NOT_READY',
          `the immunization is ${parent.status}; it can be edited once it is completed`,
        );
      c.takeCreate(caller);
      await c.capacity();
      const r = c.newRecord('edit', caller.owner);
      r.parent = parent.id;
      r.options = { ...options, model: (options.mode === 'inpaint' ? c.editing.inpaint : c.editing.img2img)!.id };
      return c.accept(r, [], reply);
    },
  );

  for (const side of ['original', 'immunized'] as const) {
    app.get<P>(
      `/v1/edits/:id/${side}.png`,
      {
        schema: routeSchema({
          summary: `the edit of the ${side} photo`,
          params: idParams,
          querystring: tokenQuery,
          'x-responses': { 200: png, 404: err('no such edit for this key'), 409: err('not completed') },
        }),
      },
      (req, reply) => {
        const caller = c.identify(req, { id: req.params.id, allowToken: true });
        const r = c.ownJob(caller, req.params.id, 'edit');
        const file = EDIT_FILES[side];
        if (r.status !== 'completed' || !c.storage.exists(r.id, file))
          throw new HttpError(409, 'E_NOT_READY', `the edit is ${r.status}; its images exist once it is completed`);
        const sha = (r.result?.[side] as { sha256?: string } | undefined)?.sha256 ?? '';
        return reply
          .type('image/png')
          .header('Content-Disposition', `attachment; filename="edit-${side}-${r.id}.png"`)
          .header('ETag', `"${sha}"`)
          .header('Cache-Control', 'private, max-age=3600')
          .send(readFileSync(c.storage.file(r.id, file)));
      },
    );
  }
}
