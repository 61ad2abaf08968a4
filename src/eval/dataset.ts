/**
 * The evaluation dataset file (docs/evaluate.md): a JSON object with `items` (image, optional
 * mask, prompt, seed, optional pre-immunized files) and optional settings (models, editing,
 * immunization, purification sweep). Every problem is reported with the file, the item index and
 * the key (`data.json: items[2].prompt: expected a non-empty string but received 42 of type number`),
 * before any model is loaded.
 */
import { DEFAULT_IMG2IMG_MODEL, DEFAULT_INPAINT_MODEL } from '../models/defaults.js';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, isAbsolute, resolve } from 'node:path';
import { PRESETS, presetNamed } from '../attacks/presets.js';
import { ImmunizeError, describe } from '../errors.js';
import { SCHEDULER_NAMES, type SchedulerName } from '../schedulers/index.js';
import { expandSweep } from './sweep.js';

export const BUILTIN_METHODS = ['encoder', 'robust', 'diffusion', 'noise'] as const;
export type BuiltinMethod = (typeof BUILTIN_METHODS)[number];

/**
 * Photoguard's editing settings (MadryLab/photoguard notebooks and the paper's §5: guidance 7.5,
 * 100 denoising steps, η = 1, img2img strength 0.7, seed 9209).
 */
export const PHOTOGUARD_EDIT = { steps: 100, guidance: 7.5, eta: 1, strength: 0.7, seed: 9209 } as const;

/** The image side the paper evaluates at (SD v1.5's native 512×512). */
export const DEFAULT_EVAL_SIZE = 512;

export class DatasetError extends ImmunizeError {
  constructor(message: string) {
    super('E_DATASET', message);
    this.name = 'DatasetError';
  }
}

export interface DatasetItem {
  /** Unique, file-name safe id (default: the image's base name, de-duplicated). */
  id: string;
  image: string;
  /** Inpainting mask, white = repaint; absent = img2img. */
  mask: string | null;
  prompt: string;
  negativePrompt: string;
  seed: number;
  /** Pre-immunized files by method name (`encoder`, `diffusion`, or a name of your own, e.g. `robust`). */
  immunized: Record<string, string>;
}

export interface EditSettings {
  steps: number;
  guidance: number;
  eta: number;
  /** img2img only (legacy inpainting has no strength). */
  strength: number;
  scheduler: SchedulerName | null;
}

export interface ImmunizeSettings {
  /** Built-in methods run in-process (pre-immunized files add their own methods). */
  methods: BuiltinMethod[];
  preset: string;
  /** L∞ budget on [0, 1] pixels. */
  eps: number;
  stepSize: number;
  steps: number;
  /** Diffusion attack: denoising steps back-propagated per pass, passes per step. */
  diffusionSteps: number;
  gradReps: number;
  seed: number;
}

export interface ModelSettings {
  img2img: string;
  inpaint: string;
  /** Autoencoder the encoder attack targets (default: the VAE of the pipeline that edits the item). */
  encoder: string | null;
  /** CLIP model for image–prompt similarity (null: skipped). */
  clip: string | null;
  /** pytorch-fid Inception .safetensors (null: FID/PR skipped). */
  inception: string | null;
}

export interface Dataset {
  path: string;
  name: string;
  size: number;
  models: ModelSettings;
  edit: EditSettings;
  immunize: ImmunizeSettings;
  /** Expanded purification specs ('jpeg:95', 'jpeg:85', …). */
  purify: string[];
  fid: { dims: number; nearestK: number };
  items: DatasetItem[];
}

/**
 * The sweep when the dataset and the command line name none: the purifications that matter for a
 * protection figure — a JPEG re-save (what uploads do) and IMPRESS, the adaptive purifier, bounded
 * as in `protect --check` (docs/purify.md). `"purify": []` or `--purify none` turns it off.
 */
export const DEFAULT_PURIFY: readonly string[] = ['jpeg:75', 'impress:20'];

export const DEFAULT_MODELS: ModelSettings = {
  img2img: DEFAULT_IMG2IMG_MODEL,
  inpaint: DEFAULT_INPAINT_MODEL,
  encoder: null,
  clip: null,
  inception: null,
};

type Json = Record<string, unknown>;

class Checker {
  constructor(readonly label: string) {}
  fail(where: string, why: string): never {
    throw new DatasetError(`${this.label}: ${where ? `${where}: ` : ''}${why}`);
  }
  object(v: unknown, where: string): Json {
    if (v === null || typeof v !== 'object' || Array.isArray(v))
      this.fail(where, `expected an object but received ${describe(v)}`);
    return v as Json;
  }
  keys(o: Json, where: string, allowed: readonly string[]): void {
    for (const k of Object.keys(o)) {
      if (!allowed.includes(k)) this.fail(where, `unknown key '${k}' (expected ${allowed.join(', ')})`);
    }
  }
  string(v: unknown, where: string, o: { nonEmpty?: boolean } = {}): string {
    if (typeof v !== 'string' || (o.nonEmpty && v.trim() === ''))
      this.fail(where, `expected a ${o.nonEmpty ? 'non-empty ' : ''}string but received ${describe(v)}`);
    return v;
  }
  number(
    v: unknown,
    where: string,
    o: { min?: number; max?: number; integer?: boolean; minExclusive?: boolean } = {},
  ): number {
    const n =
      typeof v === 'string' && /^\s*\d+(\.\d+)?\s*\/\s*\d+(\.\d+)?\s*$/.test(v)
        ? v
            .split('/')
            .map(Number)
            .reduce((a, b) => a / b)
        : v;
    const range = [
      o.min !== undefined ? `${o.minExclusive ? '>' : '≥'} ${o.min}` : '',
      o.max !== undefined ? `≤ ${o.max}` : '',
    ]
      .filter(Boolean)
      .join(' and ');
    const what = `${o.integer ? 'an integer' : 'a number'}${range ? ` ${range}` : ''}`;
    if (
      typeof n !== 'number' ||
      !Number.isFinite(n) ||
      (o.integer && !Number.isSafeInteger(n)) ||
      (o.min !== undefined && (o.minExclusive ? n <= o.min : n < o.min)) ||
      (o.max !== undefined && n > o.max)
    ) {
      this.fail(where, `expected ${what} but received ${describe(v)}`);
    }
    return n;
  }
  file(v: unknown, where: string, base: string): string {
    const p = this.string(v, where, { nonEmpty: true });
    const abs = isAbsolute(p) ? p : resolve(base, p);
    if (!existsSync(abs)) this.fail(where, `file not found: ${abs}`);
    if (!statSync(abs).isFile()) this.fail(where, `not a file: ${abs}`);
    return abs;
  }
  /** A model: a local path (relative to the dataset) when it exists, else a hub repo id as written. */
  model(v: unknown, where: string, base: string): string {
    const p = this.string(v, where, { nonEmpty: true });
    const abs = isAbsolute(p) ? p : resolve(base, p);
    if (existsSync(abs)) return abs;
    if (p.startsWith('.') || p.startsWith('/') || p.split('/').length !== 2)
      this.fail(where, `not found: ${abs} (expected a local path or a Hugging Face repo id like owner/name)`);
    return p;
  }
}

const TOP_KEYS = ['version', 'name', 'size', 'models', 'edit', 'immunize', 'purify', 'fid', 'items'] as const;
const ITEM_KEYS = ['id', 'image', 'mask', 'prompt', 'negativePrompt', 'seed', 'immunized'] as const;

/** Overrides from the command line (they win over the file). */
export interface DatasetOverrides {
  size?: number;
  models?: Partial<ModelSettings>;
  edit?: Partial<EditSettings>;
  immunize?: Partial<ImmunizeSettings>;
  purify?: string[];
  fid?: Partial<Dataset['fid']>;
}

/** Reads, validates and resolves a dataset file (relative paths are relative to its folder). */
export function loadDataset(path: string, overrides: DatasetOverrides = {}): Dataset {
  const file = resolve(path);
  const label = path;
  if (!existsSync(file)) throw new DatasetError(`${label}: dataset file not found`);
  if (statSync(file).isDirectory())
    throw new DatasetError(`${label}: expected a JSON dataset file but this is a folder`);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new DatasetError(`${label}: not valid JSON (${(e as Error).message})`);
  }
  return parseDataset(raw, { file, label }, overrides);
}

/** Validates an already-parsed dataset (a JSON object, or a bare array of items). */
export function parseDataset(
  raw: unknown,
  where: { file: string; label?: string },
  overrides: DatasetOverrides = {},
): Dataset {
  const c: Checker = new Checker(where.label ?? where.file);
  const base = dirname(where.file);
  const top = Array.isArray(raw) ? { items: raw } : c.object(raw, '');
  c.keys(top, '', TOP_KEYS);
  if (top['version'] !== undefined && top['version'] !== 1)
    c.fail('version', `expected 1 but received ${describe(top['version'])}`);
  const name =
    top['name'] === undefined
      ? basename(where.file).replace(/\.json$/i, '')
      : c.string(top['name'], 'name', { nonEmpty: true });
  const size =
    overrides.size ??
    (top['size'] === undefined
      ? DEFAULT_EVAL_SIZE
      : c.number(top['size'], 'size', { min: 8, max: 4096, integer: true }));
  if (size % 8 !== 0) c.fail('size', `must be a multiple of 8 (Stable Diffusion's latent grid) but is ${size}`);

  const m = top['models'] === undefined ? {} : c.object(top['models'], 'models');
  c.keys(m, 'models', ['img2img', 'inpaint', 'encoder', 'clip', 'inception']);
  const optModel = (k: keyof ModelSettings): string | null =>
    m[k] === undefined || m[k] === null ? DEFAULT_MODELS[k] : c.model(m[k], `models.${k}`, base);
  const models: ModelSettings = {
    img2img: optModel('img2img')!,
    inpaint: optModel('inpaint')!,
    encoder: optModel('encoder'),
    clip: optModel('clip'),
    inception:
      m['inception'] === undefined || m['inception'] === null ? null : c.file(m['inception'], 'models.inception', base),
    ...stripUndefined(overrides.models ?? {}),
  };

  const e = top['edit'] === undefined ? {} : c.object(top['edit'], 'edit');
  c.keys(e, 'edit', ['steps', 'guidance', 'eta', 'strength', 'scheduler']);
  const scheduler =
    e['scheduler'] === undefined || e['scheduler'] === null ? null : c.string(e['scheduler'], 'edit.scheduler');
  if (scheduler !== null && !(scheduler in SCHEDULER_NAMES))
    c.fail('edit.scheduler', `expected one of ${Object.keys(SCHEDULER_NAMES).join(', ')} but received '${scheduler}'`);
  const edit: EditSettings = {
    steps:
      e['steps'] === undefined
        ? PHOTOGUARD_EDIT.steps
        : c.number(e['steps'], 'edit.steps', { min: 1, max: 1000, integer: true }),
    guidance:
      e['guidance'] === undefined
        ? PHOTOGUARD_EDIT.guidance
        : c.number(e['guidance'], 'edit.guidance', { min: 0, max: 100 }),
    eta: e['eta'] === undefined ? PHOTOGUARD_EDIT.eta : c.number(e['eta'], 'edit.eta', { min: 0, max: 1 }),
    strength:
      e['strength'] === undefined
        ? PHOTOGUARD_EDIT.strength
        : c.number(e['strength'], 'edit.strength', { min: 0, max: 1 }),
    scheduler: scheduler as SchedulerName | null,
    ...stripUndefined(overrides.edit ?? {}),
  };

  const im = top['immunize'] === undefined ? {} : c.object(top['immunize'], 'immunize');
  c.keys(im, 'immunize', ['methods', 'preset', 'eps', 'stepSize', 'steps', 'diffusionSteps', 'gradReps', 'seed']);
  const asked = im['preset'] === undefined ? 'paper' : c.string(im['preset'], 'immunize.preset');
  const named = presetNamed(asked); // an old alias (`default`) is its preset's new name
  if (named === undefined)
    c.fail('immunize.preset', `expected one of ${Object.keys(PRESETS).join(', ')} but received '${asked}'`);
  // The evaluation runs uniform budgets without a visibility target (src/eval/protocol.ts).
  if (named.preset.budget !== 'uniform' || named.preset.minSsim !== null)
    c.fail(
      'immunize.preset',
      `'${asked}' uses a texture budget and a visibility target, which the evaluation does not run yet; use one of ${Object.keys(
        PRESETS,
      )
        .filter((k) => PRESETS[k]!.budget === 'uniform' && PRESETS[k]!.minSsim === null)
        .join(', ')}`,
    );
  const presetName = named.name;
  const preset = named.preset;
  let methods: BuiltinMethod[] = ['encoder', 'noise'];
  if (im['methods'] !== undefined) {
    if (!Array.isArray(im['methods']))
      c.fail(
        'immunize.methods',
        `expected an array such as ["encoder", "diffusion", "noise"] but received ${describe(im['methods'])}`,
      );
    methods = (im['methods'] as unknown[]).map((x, i) => checkMethod(c, x, `immunize.methods[${i}]`));
  }
  const immunize: ImmunizeSettings = {
    methods,
    preset: presetName,
    eps:
      im['eps'] === undefined
        ? preset.options.eps
        : c.number(im['eps'], 'immunize.eps', { min: 0, max: 1, minExclusive: true }),
    stepSize:
      im['stepSize'] === undefined
        ? preset.options.stepSize
        : c.number(im['stepSize'], 'immunize.stepSize', { min: 0, max: 1, minExclusive: true }),
    steps:
      im['steps'] === undefined
        ? preset.options.steps
        : c.number(im['steps'], 'immunize.steps', { min: 1, integer: true }),
    diffusionSteps:
      im['diffusionSteps'] === undefined
        ? 4
        : c.number(im['diffusionSteps'], 'immunize.diffusionSteps', { min: 1, max: 1000, integer: true }),
    gradReps:
      im['gradReps'] === undefined
        ? 1
        : c.number(im['gradReps'], 'immunize.gradReps', { min: 1, max: 1000, integer: true }),
    seed: im['seed'] === undefined ? 0 : c.number(im['seed'], 'immunize.seed', { min: 0, integer: true }),
    ...stripUndefined(overrides.immunize ?? {}),
  };
  immunize.methods = [...new Set(immunize.methods)];

  let purifySpecs: string[] = [...DEFAULT_PURIFY];
  if (top['purify'] !== undefined) {
    const p = typeof top['purify'] === 'string' ? [top['purify']] : top['purify'];
    if (!Array.isArray(p))
      c.fail(
        'purify',
        `expected a list of purification specs such as ["jpeg:95,85,75"] but received ${describe(top['purify'])}`,
      );
    purifySpecs = (p as unknown[]).map((s, i) => c.string(s, `purify[${i}]`, { nonEmpty: true }));
  }
  if (overrides.purify !== undefined) purifySpecs = overrides.purify;
  let purify: string[];
  try {
    // 'none' is the unpurified variant, always evaluated: `--purify none` asks for no sweep.
    purify = [...new Set(purifySpecs.flatMap((s) => expandSweep(s)))].filter((s) => s !== 'none');
  } catch (err) {
    c.fail(overrides.purify !== undefined ? '--purify' : 'purify', (err as Error).message);
  }

  const f = top['fid'] === undefined ? {} : c.object(top['fid'], 'fid');
  c.keys(f, 'fid', ['dims', 'nearestK']);
  const dims = f['dims'] === undefined ? 2048 : c.number(f['dims'], 'fid.dims', { integer: true });
  if (![64, 192, 768, 2048].includes(dims))
    c.fail('fid.dims', `expected 64, 192, 768 or 2048 (pytorch-fid's blocks) but received ${dims}`);
  const fid = {
    dims,
    // The paper's precision/recall uses k = 3 (docs/metrics.md).
    nearestK: f['nearestK'] === undefined ? 3 : c.number(f['nearestK'], 'fid.nearestK', { min: 1, integer: true }),
    ...stripUndefined(overrides.fid ?? {}),
  };

  if (top['items'] === undefined) c.fail('', 'no \'items\': expected {"items": [{"image": …, "prompt": …}, …]}');
  if (!Array.isArray(top['items'])) c.fail('items', `expected an array but received ${describe(top['items'])}`);
  const rawItems = top['items'] as unknown[];
  if (rawItems.length === 0) c.fail('items', 'the dataset has no items');
  const ids = new Set<string>();
  const items = rawItems.map((r, i): DatasetItem => {
    const w = `items[${i}]`;
    const o = c.object(r, w);
    c.keys(o, w, ITEM_KEYS);
    if (o['image'] === undefined) c.fail(w, "missing key 'image'");
    if (o['prompt'] === undefined) c.fail(w, "missing key 'prompt'");
    const image = c.file(o['image'], `${w}.image`, base);
    const mask = o['mask'] === undefined || o['mask'] === null ? null : c.file(o['mask'], `${w}.mask`, base);
    const prompt = c.string(o['prompt'], `${w}.prompt`, { nonEmpty: true });
    const negativePrompt =
      o['negativePrompt'] === undefined ? '' : c.string(o['negativePrompt'], `${w}.negativePrompt`);
    const seed =
      o['seed'] === undefined ? PHOTOGUARD_EDIT.seed : c.number(o['seed'], `${w}.seed`, { min: 0, integer: true });
    let id: string;
    if (o['id'] !== undefined) {
      id = c.string(o['id'], `${w}.id`, { nonEmpty: true });
      if (!/^[A-Za-z0-9._-]+$/.test(id))
        c.fail(`${w}.id`, `'${id}' may use only letters, digits, '.', '_' and '-' (it names files)`);
      if (ids.has(id)) c.fail(`${w}.id`, `'${id}' is used by an earlier item`);
    } else {
      const stem =
        basename(image)
          .replace(/\.[^.]+$/, '')
          .replace(/[^A-Za-z0-9._-]+/g, '_') || 'item';
      id = stem;
      for (let k = 2; ids.has(id); k++) id = `${stem}-${k}`;
    }
    ids.add(id);
    const immunized: Record<string, string> = {};
    if (o['immunized'] !== undefined) {
      const imm = c.object(o['immunized'], `${w}.immunized`);
      for (const [k, v] of Object.entries(imm)) {
        if (!/^[A-Za-z0-9_-]+$/.test(k) || k === 'clean')
          c.fail(
            `${w}.immunized`,
            `method name '${k}' may use only letters, digits, '_' and '-' and may not be 'clean'`,
          );
        if (k === 'noise')
          c.fail(
            `${w}.immunized.noise`,
            'the random-noise baseline is always computed in-process (same budget, seeded); remove it',
          );
        immunized[k] = c.file(v, `${w}.immunized.${k}`, base);
      }
    }
    return { id, image, mask, prompt, negativePrompt, seed, immunized };
  });
  if (immunize.methods.includes('diffusion') && !items.some((it) => it.mask !== null)) {
    c.fail(
      'immunize.methods',
      "'diffusion' attacks the inpainting pipeline and needs items with a 'mask', but no item has one",
    );
  }
  return { path: where.file, name, size, models, edit, immunize, purify, fid, items };
}

function checkMethod(c: Checker, v: unknown, where: string): BuiltinMethod {
  if (typeof v !== 'string' || !(BUILTIN_METHODS as readonly string[]).includes(v))
    c.fail(where, `expected one of ${BUILTIN_METHODS.join(', ')} but received ${describe(v)}`);
  return v as BuiltinMethod;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
