/**
 * How much protection survives what an adversary does before editing (Sandoval-Segura et al.
 * 2023: JPEG undoes immunization; blurs and flips do not). The measure is the one the attacks
 * are judged by on an autoencoder: reconstruction PSNR, PSNR(D(E(p)), p), of the purified clean
 * photo p = P(x) and of the purified immunized photo P(x + δ), both against P(x). Immunization
 * lowers the immunized one; the gap P leaves, divided by the gap with no purification, is the
 * share of the protection that survives P.
 */
import { psnr } from '../metrics/psnr.js';
import { PurificationSpecError } from '../purify/common.js';
import { parsePurification, type ApplyOptions, type Purification } from '../purify/spec.js';
import { Generator, noGrad, scope, type Tensor } from '../torch/index.js';

/**
 * The default suite of `immunize protect --check` (and of the service's checks): the JPEG note's
 * qualities, the transforms it found harmless, and IMPRESS, the purifier made to remove immunization.
 */
export const DEFAULT_CHECK_SUITE: readonly string[] = [
  'jpeg:95',
  'jpeg:85',
  'jpeg:75',
  'jpeg:65',
  'jpeg:50',
  'webp:80',
  'blur:1',
  'median:3',
  'resize:0.5',
  'rotate:5',
  'hflip',
  'noise:gaussian:0.02',
  // The adaptive purifier (docs/purify.md), bounded: 20 steps recover about as much as 50 on TAEF2.
  'impress:20',
];

/** The most purifications one check runs (the API's route schema says the same). */
export const MAX_CHECK_ROWS = 16;

/**
 * What a check suite costs, in attack steps (the unit of the service's `--max-steps`): each row
 * reconstructs two photos (about one attack step's work), and each IMPRESS step is a gradient
 * step through the autoencoder on each of the two photos (two attack steps).
 */
export function checkSuiteCost(suite: readonly Purification[]): number {
  let cost = 0;
  for (const p of suite) {
    cost += 1;
    for (const s of p.steps) if (s.name === 'impress') cost += 2 * Number(s.params['steps']);
  }
  return cost;
}

/**
 * The one validation of a check suite, for `protect --check-suite` and the service's checks: each
 * spec parses within PURIFICATION_LIMITS (src/purify/spec.ts), at most MAX_CHECK_ROWS rows, and a
 * total cost of at most `maxCost` attack steps (the service passes its --max-steps). Throws a
 * PurificationSpecError naming the problem; returns the canonical specs.
 */
export function parseCheckSuite(specs: readonly string[], o: { maxCost?: number } = {}): string[] {
  if (specs.length === 0 || specs.length > MAX_CHECK_ROWS)
    throw new PurificationSpecError(
      '',
      `a check runs 1 to ${MAX_CHECK_ROWS} purifications but received ${specs.length}`,
    );
  const suite = specs.map((s) => parsePurification(s));
  const cost = checkSuiteCost(suite);
  if (o.maxCost !== undefined && cost > o.maxCost)
    throw new PurificationSpecError(
      '',
      `this check would cost ${cost} attack steps (1 per purification, 2 per impress step) but the limit is ${o.maxCost} (the server's --max-steps); ask for fewer impress steps or purifications`,
    );
  return suite.map((p) => p.spec);
}

/**
 * The default suite within a cost of `maxCost` attack steps (a service started with a small
 * --max-steps): IMPRESS is shortened to fit, and left out only when not even one step fits.
 */
export function defaultCheckSuite(maxCost = Infinity): string[] {
  const fixed = DEFAULT_CHECK_SUITE.filter((s) => !s.startsWith('impress'));
  const impressSteps = Math.min(20, Math.floor((maxCost - fixed.length - 1) / 2));
  return impressSteps >= 1 ? [...fixed, `impress:${impressSteps}`] : fixed;
}

export type Verdict = 'holds' | 'weakened' | 'removed';

export interface CheckRow {
  purification: string;
  /** PSNR(D(E(P(x))), P(x)) in dB. */
  cleanPsnr: number;
  /** PSNR(D(E(P(x + δ))), P(x)) in dB. */
  immunizedPsnr: number;
  /** cleanPsnr − immunizedPsnr: how far the immunized photo's reconstruction still falls. */
  gapDb: number;
  /** gapDb / the gap without purification (1 = all protection left, ≤ 0 = none). */
  remaining: number;
  verdict: Verdict;
}

export interface ProtectionCheck {
  metric: string;
  model: string;
  /** Without purification. */
  none: { cleanPsnr: number; immunizedPsnr: number; gapDb: number };
  rows: CheckRow[];
}

/** ≥ 50 % of the gap left: holds; ≥ 20 %: weakened; less: removed. */
export function verdict(remaining: number): Verdict {
  return remaining >= 0.5 ? 'holds' : remaining >= 0.2 ? 'weakened' : 'removed';
}

/**
 * Runs `suite` (purification specs, docs/purify.md) on `clean` and `immunized` (NCHW in [0, 1],
 * same shape) and measures each with `reconstruct` (x → D(E(x)), same shape; no gradient needed).
 * Random purifications draw from a generator seeded 0, the same draws for both images.
 */
export async function checkProtection(
  reconstruct: (x: Tensor) => Tensor,
  clean: Tensor,
  immunized: Tensor,
  o: {
    model: string;
    suite?: readonly string[];
    /** What `impress` purifies against: the model the protection is measured through. */
    autoencoder?: ApplyOptions['autoencoder'];
    onProgress?: (done: number, total: number, spec: string) => void;
    /** Each purified immunized photo, before it is freed (for measures beyond the row's). */
    onPurified?: (spec: string, purifiedImmunized: Tensor) => void;
  },
): Promise<ProtectionCheck> {
  const suite = (o.suite ?? DEFAULT_CHECK_SUITE).map((s) => parsePurification(s)); // bad specs fail before any work
  const rec = (p: Tensor, ref: Tensor): number => noGrad(() => scope(() => psnr(reconstruct(p), ref)));
  const noneClean = rec(clean, clean);
  const noneImm = rec(immunized, clean);
  const gap0 = noneClean - noneImm;
  const rows: CheckRow[] = [];
  for (const [i, p] of suite.entries()) {
    o.onProgress?.(i, suite.length, p.spec);
    // An adaptive purifier (IMPRESS: it works against the model) is what an adversary runs on a
    // photo they were given protected; like the IMPRESS paper, its row compares the result with the
    // clean photo as it is, not with the clean photo purified (which it would make more
    // reconstructable too, hiding how much protection it removed).
    const adaptive = p.needsAutoencoder;
    const pc = adaptive
      ? clean
      : await p.apply(clean, { generator: new Generator({ seed: 0 }), autoencoder: o.autoencoder });
    try {
      const pi = await p.apply(immunized, { generator: new Generator({ seed: 0 }), autoencoder: o.autoencoder });
      try {
        o.onPurified?.(p.spec, pi);
        const cleanPsnr = rec(pc, pc);
        const immunizedPsnr = rec(pi, pc);
        const gapDb = cleanPsnr - immunizedPsnr;
        const remaining = gap0 > 0 ? gapDb / gap0 : 0;
        rows.push({ purification: p.spec, cleanPsnr, immunizedPsnr, gapDb, remaining, verdict: verdict(remaining) });
      } finally {
        pi.dispose();
      }
    } finally {
      if (!adaptive) pc.dispose();
    }
  }
  o.onProgress?.(suite.length, suite.length, '');
  return {
    metric:
      'reconstruction PSNR (dB) of the purified photo through the model, against the purified clean photo (adaptive purifiers, impress: against the clean photo as it is)',
    model: o.model,
    none: { cleanPsnr: noneClean, immunizedPsnr: noneImm, gapDb: gap0 },
    rows,
  };
}

/** A plain-text table for the terminal. */
export function formatCheck(c: ProtectionCheck): string {
  const lines = [
    `protection check (${c.model}; reconstruction PSNR, lower = better protected)`,
    `  ${'purification'.padEnd(22)} ${'clean'.padStart(7)} ${'immun.'.padStart(7)} ${'gap'.padStart(6)}  left`,
  ];
  lines.push(
    `  ${'none'.padEnd(22)} ${c.none.cleanPsnr.toFixed(2).padStart(7)} ${c.none.immunizedPsnr.toFixed(2).padStart(7)} ${c.none.gapDb.toFixed(2).padStart(6)}  100%`,
  );
  for (const r of c.rows) {
    lines.push(
      `  ${r.purification.padEnd(22)} ${r.cleanPsnr.toFixed(2).padStart(7)} ${r.immunizedPsnr.toFixed(2).padStart(7)} ${r.gapDb.toFixed(2).padStart(6)}  ${`${Math.round(100 * r.remaining)}%`.padStart(4)} ${r.verdict}`,
    );
  }
  if (c.rows.some((r) => r.purification.startsWith('impress')))
    lines.push(
      '  impress: an adversary who knows the photo is protected tries to wash the protection out (the IMPRESS purifier, against this model); "left" is what survives it',
    );
  return lines.join('\n');
}
