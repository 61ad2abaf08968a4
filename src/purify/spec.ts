/**
 * A small language for purifications and their chains, for the CLI, sweeps and reports:
 *
 *   chain := step ('+' step)*          'jpeg:75+blur:1'
 *   step  := name (':' arg)*           'resize:0.5:bicubic'
 *
 * Names and arguments (the first argument is required where there is one; docs/purify.md):
 *   jpeg:Q[:mozjpeg|turbo][:420|444]   real JPEG through sharp
 *   webp:Q                             real lossy WebP through sharp
 *   diffjpeg:Q[:ste|cubic][:420|444]   differentiable JPEG
 *   blur:σ[:k]                         Gaussian blur (k odd, default 2⌈3σ⌉ + 1)
 *   median:k                           median filter k×k
 *   resize:s[:bilinear|bicubic|lanczos]  down by s (0 < s ≤ 1) and back up (default bicubic)
 *   rotate:deg                         rotate counter-clockwise, bilinear, black corners
 *   hflip, vflip                       mirror
 *   crop:f                             keep the central fraction f of each side, scale back up
 *   noise:gaussian:σ[:seed]            add N(0, σ²), clamp (seed default 0)
 *   noise:uniform:a[:seed]             add U(−a, a), clamp
 *   impress[:steps][:l2|ssim]          IMPRESS-style purifier (impress.ts) against ApplyOptions.autoencoder
 *   none                               identity (a baseline in sweeps)
 * Numbers may be written as fractions: 'noise:uniform:8/255'.
 */
import { ImmunizeError } from '../errors.js';
import { scope, type Generator, type Tensor } from '../torch/index.js';
import { jpeg, webp, type ChromaSubsampling, type JpegEncoder } from './codecs.js';
import { checkImageBatch, PurificationSpecError } from './common.js';
import { diffJpeg, type DiffRounding } from './diff-jpeg.js';
import { gaussianBlur, medianBlur } from './filters.js';
import { cropResize, hflip, resizeDownUp, rotate, vflip } from './geometry.js';
import { impress, type ImageAutoencoder } from './impress.js';
import { addNoise, type NoiseKind } from './noise.js';
import type { AutoencoderKL } from '../models/autoencoder-kl.js';
import type { AutoencoderTiny } from '../models/autoencoder-tiny.js';

export const PURIFICATION_NAMES = [
  'jpeg',
  'webp',
  'diffjpeg',
  'blur',
  'median',
  'resize',
  'rotate',
  'hflip',
  'vflip',
  'crop',
  'noise',
  'impress',
  'none',
] as const;
export type PurificationName = (typeof PURIFICATION_NAMES)[number];

export interface ApplyOptions {
  /** Random steps draw from this generator instead of a fresh one seeded by their own seed. */
  generator?: Generator;
  /** The autoencoder `impress` steps purify against (required by them, unused by the others). */
  autoencoder?: AutoencoderKL | AutoencoderTiny | ImageAutoencoder;
}

/** One parsed step. `run` returns a new tensor (a Promise for the real codecs). */
export interface PurificationStep {
  readonly name: PurificationName;
  /** Canonical spelling, e.g. 'jpeg:75' or 'noise:gaussian:0.02:0'. */
  readonly spec: string;
  readonly params: Readonly<Record<string, number | string>>;
  /** Gradients flow through it (the real codecs do not). */
  readonly differentiable: boolean;
  /** It draws random numbers. */
  readonly stochastic: boolean;
  /** It runs asynchronously (sharp); `applySync` refuses it. */
  readonly async: boolean;
  /** It needs `ApplyOptions.autoencoder` (impress). */
  readonly needsAutoencoder: boolean;
  run(x: Tensor, o?: ApplyOptions): Tensor | Promise<Tensor>;
}

export interface Purification {
  readonly spec: string;
  readonly steps: readonly PurificationStep[];
  readonly differentiable: boolean;
  readonly stochastic: boolean;
  readonly async: boolean;
  readonly needsAutoencoder: boolean;
  /** Applies every step in order; the input is not modified, the result is new. */
  apply(x: Tensor, o?: ApplyOptions): Promise<Tensor>;
  /** Synchronous (and differentiable where every step is); throws E_PURIFY_ASYNC for jpeg/webp. */
  applySync(x: Tensor, o?: ApplyOptions): Tensor;
}

/**
 * Bounds that keep every purification's cost proportional to the image: a median filter costs k²
 * per pixel, a Gaussian blur its kernel width, a chain the sum of its steps. Far beyond anything an
 * adversary's pre-processing uses (the JPEG note's medians are 3–5, its blurs σ ≤ 2), so they
 * refuse only requests that would hold a runner for nothing. Checks add a total cost bound on top
 * (checkSuiteCost, src/robustness/check.ts).
 */
export const PURIFICATION_LIMITS = {
  medianSize: 15,
  blurSigma: 20,
  blurKernel: 121,
  impressSteps: 10_000,
  chainSteps: 8,
};

const NUMBER = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?$/i;

/** A decimal number or a fraction 'a/b'; NaN when the text is neither. */
export function parseNumber(text: string): number {
  const parts = text.split('/');
  if (parts.length > 2 || !parts.every((p) => NUMBER.test(p))) return NaN;
  const v = parts.length === 2 ? Number(parts[0]) / Number(parts[1]) : Number(parts[0]);
  return Number.isFinite(v) ? v : NaN;
}

interface Ctx {
  token: string;
  whole: string;
}

function fail(c: Ctx, why: string): never {
  const where = c.whole === c.token ? `'${c.token}'` : `'${c.token}' in '${c.whole}'`;
  throw new PurificationSpecError(c.token, `invalid purification ${where}: ${why}`);
}

function num(
  c: Ctx,
  what: string,
  text: string | undefined,
  o: {
    min?: number;
    max?: number;
    minExclusive?: boolean;
    maxExclusive?: boolean;
    integer?: boolean;
    odd?: boolean;
  } = {},
): number {
  const range = [
    o.min !== undefined ? `${o.minExclusive ? '>' : '≥'} ${o.min}` : null,
    o.max !== undefined ? `${o.maxExclusive ? '<' : '≤'} ${o.max}` : null,
  ]
    .filter(Boolean)
    .join(' and ');
  const expect = `${o.odd ? 'an odd integer' : o.integer ? 'an integer' : 'a number'}${range ? ` ${range}` : ''}`;
  if (text === undefined || text === '') fail(c, `${what} is missing (expected ${expect})`);
  const v = parseNumber(text);
  const ok =
    !Number.isNaN(v) &&
    (!o.integer || Number.isInteger(v)) &&
    (!o.odd || Math.abs(v % 2) === 1) &&
    (o.min === undefined || (o.minExclusive ? v > o.min : v >= o.min)) &&
    (o.max === undefined || (o.maxExclusive ? v < o.max : v <= o.max));
  if (!ok) fail(c, `${what} must be ${expect} but received '${text}'`);
  return v;
}

function noMore(c: Ctx, args: string[], from: number, usage: string): void {
  if (args.length > from) fail(c, `unexpected argument '${args[from]}' (usage: ${usage})`);
}

/** Levenshtein distance, for "did you mean" hints. */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++)
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
  }
  return d[a.length]![b.length]!;
}

type Parsed = Omit<PurificationStep, 'name'>;

function step(
  spec: string,
  params: Record<string, number | string>,
  run: PurificationStep['run'],
  o: { differentiable?: boolean; stochastic?: boolean; async?: boolean; needsAutoencoder?: boolean } = {},
): Parsed {
  return {
    spec,
    params,
    run,
    differentiable: o.differentiable ?? true,
    stochastic: o.stochastic ?? false,
    async: o.async ?? false,
    needsAutoencoder: o.needsAutoencoder ?? false,
  };
}

/** Chroma and encoder flags of jpeg/diffjpeg, in any order. */
function flags(c: Ctx, args: string[], allowed: Record<string, string>, usage: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const a of args) {
    const kind = allowed[a];
    if (kind === undefined) fail(c, `unknown option '${a}' (usage: ${usage})`);
    if (out.has(kind)) fail(c, `option '${a}' conflicts with '${out.get(kind)}'`);
    out.set(kind, a);
  }
  return out;
}

const PARSERS: Record<PurificationName, (c: Ctx, a: string[]) => Parsed> = {
  impress: (c, a) => {
    const usage = 'impress[:<steps>][:l2|ssim]';
    const steps =
      a[0] === undefined ? 50 : num(c, 'steps', a[0], { min: 1, max: PURIFICATION_LIMITS.impressSteps, integer: true });
    const f = flags(c, a.slice(1), { l2: 'closeness', ssim: 'closeness' }, usage);
    const closeness = (f.get('closeness') ?? 'l2') as 'l2' | 'ssim';
    return step(
      closeness === 'l2' ? `impress:${steps}` : `impress:${steps}:ssim`,
      { steps, closeness },
      (x, o) => {
        if (o?.autoencoder === undefined)
          throw new ImmunizeError(
            'E_PURIFY_MODEL',
            `'impress' purifies against an autoencoder: pass ApplyOptions.autoencoder (on the command line: --model ID|PATH)`,
          );
        return impress(o.autoencoder, x, { steps, closeness }).purified;
      },
      { differentiable: false, needsAutoencoder: true },
    );
  },
  none: (c, a) => {
    noMore(c, a, 0, 'none');
    return step('none', {}, (x) => x.clone());
  },
  jpeg: (c, a) => {
    const usage = 'jpeg:<quality 1–100>[:mozjpeg|turbo][:420|444]';
    const quality = num(c, 'quality', a[0], { min: 1, max: 100, integer: true });
    const f = flags(c, a.slice(1), { mozjpeg: 'encoder', turbo: 'encoder', 420: 'chroma', 444: 'chroma' }, usage);
    const encoder: JpegEncoder = f.get('encoder') === 'mozjpeg' ? 'mozjpeg' : 'libjpeg-turbo';
    const chromaSubsampling: ChromaSubsampling = f.get('chroma') === '444' ? '4:4:4' : '4:2:0';
    const spec = [
      'jpeg',
      quality,
      ...(encoder === 'mozjpeg' ? ['mozjpeg'] : []),
      ...(chromaSubsampling === '4:4:4' ? ['444'] : []),
    ].join(':');
    return step(
      spec,
      { quality, encoder, chromaSubsampling },
      (x) => jpeg(x, { quality, encoder, chromaSubsampling }),
      { differentiable: false, async: true },
    );
  },
  webp: (c, a) => {
    const quality = num(c, 'quality', a[0], { min: 1, max: 100, integer: true });
    noMore(c, a, 1, 'webp:<quality 1–100>');
    return step(`webp:${quality}`, { quality }, (x) => webp(x, { quality }), { differentiable: false, async: true });
  },
  diffjpeg: (c, a) => {
    const usage = 'diffjpeg:<quality 1–100>[:ste|cubic][:420|444]';
    const quality = num(c, 'quality', a[0], { min: 1, max: 100, integer: true });
    const f = flags(c, a.slice(1), { ste: 'rounding', cubic: 'rounding', 420: 'chroma', 444: 'chroma' }, usage);
    const rounding = (f.get('rounding') ?? 'ste') as DiffRounding;
    const chromaSubsampling = f.get('chroma') === '444' ? '4:4:4' : '4:2:0';
    const spec = [
      'diffjpeg',
      quality,
      ...(rounding === 'cubic' ? ['cubic'] : []),
      ...(chromaSubsampling === '4:4:4' ? ['444'] : []),
    ].join(':');
    return step(spec, { quality, rounding, chromaSubsampling }, (x) =>
      diffJpeg(x, { quality, rounding, chromaSubsampling }),
    );
  },
  blur: (c, a) => {
    const sigma = num(c, 'sigma', a[0], { min: 0, minExclusive: true, max: PURIFICATION_LIMITS.blurSigma });
    const k =
      a[1] === undefined
        ? undefined
        : num(c, 'kernel size', a[1], { min: 1, max: PURIFICATION_LIMITS.blurKernel, odd: true });
    noMore(c, a, 2, 'blur:<sigma>[:<odd kernel size>]');
    return step(
      k === undefined ? `blur:${sigma}` : `blur:${sigma}:${k}`,
      { sigma, ...(k === undefined ? {} : { kernelSize: k }) },
      (x) => gaussianBlur(x, sigma, k === undefined ? {} : { kernelSize: k }),
    );
  },
  median: (c, a) => {
    const size = num(c, 'size', a[0], { min: 1, max: PURIFICATION_LIMITS.medianSize, integer: true });
    noMore(c, a, 1, 'median:<size>');
    return step(`median:${size}`, { size }, (x) => medianBlur(x, size));
  },
  resize: (c, a) => {
    const scale = num(c, 'scale', a[0], { min: 0, max: 1, minExclusive: true });
    const mode = a[1] ?? 'bicubic';
    if (mode !== 'bilinear' && mode !== 'bicubic' && mode !== 'lanczos')
      fail(c, `resampling must be 'bilinear', 'bicubic' or 'lanczos' but received '${mode}'`);
    noMore(c, a, 2, 'resize:<scale in (0, 1]>[:bilinear|bicubic|lanczos]');
    return step(`resize:${scale}:${mode}`, { scale, mode }, (x) => resizeDownUp(x, scale, mode));
  },
  rotate: (c, a) => {
    const angle = num(c, 'angle (degrees)', a[0]);
    noMore(c, a, 1, 'rotate:<degrees>');
    return step(`rotate:${angle}`, { angle }, (x) => rotate(x, angle, { fill: 0 }));
  },
  hflip: (c, a) => {
    noMore(c, a, 0, 'hflip');
    return step('hflip', {}, hflip);
  },
  vflip: (c, a) => {
    noMore(c, a, 0, 'vflip');
    return step('vflip', {}, vflip);
  },
  crop: (c, a) => {
    const fraction = num(c, 'fraction', a[0], { min: 0, max: 1, minExclusive: true });
    noMore(c, a, 1, 'crop:<fraction in (0, 1]>');
    return step(`crop:${fraction}`, { fraction }, (x) => cropResize(x, fraction));
  },
  noise: (c, a) => {
    const usage = 'noise:gaussian:<sigma>[:<seed>] or noise:uniform:<amplitude>[:<seed>]';
    const kind = a[0];
    if (kind !== 'gaussian' && kind !== 'uniform')
      fail(
        c,
        kind === undefined
          ? `the noise kind is missing (usage: ${usage})`
          : `noise kind must be 'gaussian' or 'uniform' but received '${kind}' (usage: ${usage})`,
      );
    const strength = num(c, kind === 'gaussian' ? 'sigma' : 'amplitude', a[1], { min: 0 });
    const seed = a[2] === undefined ? 0 : num(c, 'seed', a[2], { min: 0, integer: true });
    noMore(c, a, 3, usage);
    return step(
      `noise:${kind}:${strength}:${seed}`,
      { kind, strength, seed },
      (x, o) => addNoise(x, kind as NoiseKind, strength, o?.generator ? { generator: o.generator } : { seed }),
      { stochastic: true },
    );
  },
};

/** Parses one step ('blur:1.5'). */
export function parsePurificationStep(token: string, whole = token): PurificationStep {
  const t = token.trim();
  const c: Ctx = { token: t, whole };
  if (t === '') fail({ token: '', whole }, 'empty step (two "+" in a row, or a "+" at an end?)');
  const [rawName, ...args] = t.split(':').map((s) => s.trim());
  const name = rawName!.toLowerCase();
  const parser = Object.hasOwn(PARSERS, name) ? PARSERS[name as PurificationName] : undefined; // not 'constructor' & co.
  if (parser === undefined) {
    const near = PURIFICATION_NAMES.filter((n) => distance(n, name) <= 2);
    fail(
      c,
      `unknown purification '${rawName}'${near.length ? ` (did you mean '${near[0]}'?)` : ''}; expected one of ${PURIFICATION_NAMES.join(', ')}`,
    );
  }
  return { name: name as PurificationName, ...parser(c, args) };
}

/** Parses a chain ('jpeg:75+blur:1') into a Purification. */
export function parsePurification(spec: string): Purification {
  if (typeof spec !== 'string')
    throw new PurificationSpecError(
      String(spec),
      `invalid purification: expected a spec string such as 'jpeg:75+blur:1' but received ${spec === null ? 'null' : typeof spec}`,
    );
  const whole = spec.trim();
  if (whole === '')
    throw new PurificationSpecError('', "invalid purification '': empty spec (try 'jpeg:75', 'blur:1.5' or 'none')");
  const tokens = whole.split('+');
  if (tokens.length > PURIFICATION_LIMITS.chainSteps)
    throw new PurificationSpecError(
      whole.slice(0, 60),
      `invalid purification '${whole.slice(0, 60)}${whole.length > 60 ? '…' : ''}': a chain has at most ${PURIFICATION_LIMITS.chainSteps} steps but this one has ${tokens.length}`,
    );
  return chain(tokens.map((tok) => parsePurificationStep(tok, whole)));
}

/** A Purification from already-parsed steps. */
export function chain(steps: readonly PurificationStep[]): Purification {
  const asyncStep = steps.find((s) => s.async);
  return {
    spec: steps.map((s) => s.spec).join('+'),
    steps,
    differentiable: steps.every((s) => s.differentiable),
    stochastic: steps.some((s) => s.stochastic),
    async: asyncStep !== undefined,
    needsAutoencoder: steps.some((s) => s.needsAutoencoder),
    async apply(x: Tensor, o: ApplyOptions = {}): Promise<Tensor> {
      checkImageBatch(x, 'purify');
      let cur = x;
      try {
        for (const s of steps) {
          const next = await s.run(cur, o);
          if (cur !== x) cur.dispose();
          cur = next;
        }
      } catch (e) {
        if (cur !== x) cur.dispose();
        throw e;
      }
      return cur === x ? x.clone() : cur;
    },
    applySync(x: Tensor, o: ApplyOptions = {}): Tensor {
      checkImageBatch(x, 'purify');
      if (asyncStep !== undefined) {
        throw new ImmunizeError(
          'E_PURIFY_ASYNC',
          `'${asyncStep.spec}' runs asynchronously (a real codec through sharp) and is not differentiable: use apply(), or 'diffjpeg:${asyncStep.params['quality']}' for a differentiable stand-in`,
        );
      }
      return scope(() => steps.reduce<Tensor>((cur, s) => s.run(cur, o) as Tensor, x).alias());
    },
  };
}

/** parsePurification(spec).apply(x): the purified image (new tensor). */
export async function purify(x: Tensor, spec: string | Purification, o: ApplyOptions = {}): Promise<Tensor> {
  return (typeof spec === 'string' ? parsePurification(spec) : spec).apply(x, o);
}

/**
 * Expands a sweep: comma-separated alternatives in any argument give one spec per combination,
 * in order ('jpeg:95,75+blur:1,2' → jpeg:95+blur:1, jpeg:95+blur:2, jpeg:75+blur:1, jpeg:75+blur:2).
 * Every result is parsed, so a bad value fails here, naming itself. At most 1,000 combinations.
 */
export function expandPurificationSweep(spec: string): string[] {
  if (typeof spec !== 'string' || spec.trim() === '')
    throw new PurificationSpecError(
      String(spec),
      "invalid purification sweep: expected a spec such as 'jpeg:95,85,75' but received an empty value",
    );
  const whole = spec.trim();
  let combos: string[][] = [[]];
  for (const tok of whole.split('+')) {
    const parts = tok
      .trim()
      .split(':')
      .map((p) => p.trim());
    let alts: string[][] = [[]];
    for (const p of parts) {
      const options = p.split(',').map((o) => o.trim());
      if (options.some((o) => o === '')) fail({ token: tok.trim(), whole }, `empty value in the list '${p}'`);
      alts = alts.flatMap((a) => options.map((o) => [...a, o]));
    }
    combos = combos.flatMap((c) => alts.map((a) => [...c, a.join(':')]));
    if (combos.length > 1000)
      throw new PurificationSpecError(whole, `invalid purification sweep '${whole}': more than 1000 combinations`);
  }
  return combos.map((c) => parsePurification(c.join('+')).spec);
}
