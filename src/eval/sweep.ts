/**
 * Purification sweeps: `jpeg:95,85,75` is shorthand for the three specs jpeg:95, jpeg:85 and
 * jpeg:75 (any argument of any step may list values; a chain expands to every combination).
 * Specs are checked and canonicalised by the purification module's parser (src/purify/spec.ts).
 * Families group the specs that differ only in their first numeric argument, so a report can
 * draw protection against, e.g., JPEG quality as a curve.
 */
import { parsePurification } from '../purify/spec.js';

/** Expands comma lists into specs, each canonical ('jpeg:95,85' → ['jpeg:95', 'jpeg:85']). */
export function expandSweep(spec: string): string[] {
  const steps = spec
    .trim()
    .split('+')
    .map((step) => step.split(':').map((arg) => arg.split(',').map((v) => v.trim())));
  for (const step of steps) {
    for (const arg of step)
      if (arg.some((v) => v === ''))
        throw new Error(`invalid purification sweep '${spec}': empty value in a comma list`);
  }
  // Cartesian product over every argument's values, in the order written.
  let out: string[][] = [[]];
  for (const step of steps) {
    let stepSpecs: string[] = [''];
    step.forEach((values, k) => {
      stepSpecs = stepSpecs.flatMap((prefix) => values.map((v) => (k === 0 ? v : `${prefix}:${v}`)));
    });
    out = out.flatMap((chain) => stepSpecs.map((s) => [...chain, s]));
  }
  return out.map((chain) => parsePurification(chain.join('+')).spec);
}

export interface SweepFamily {
  /** e.g. 'jpeg' or 'jpeg:…:444'. */
  key: string;
  /** The swept argument's name when known ('quality', 'sigma', …), else 'value'. */
  parameter: string;
  /** Specs with their x value, sorted by x. */
  points: { spec: string; x: number }[];
}

const PARAMETER: Record<string, string> = {
  jpeg: 'quality',
  webp: 'quality',
  diffjpeg: 'quality',
  blur: 'σ',
  median: 'size',
  resize: 'scale',
  rotate: 'degrees',
  crop: 'fraction',
};

/** Groups single-step specs that differ only in their first argument (a number); families of ≥ 2 points. */
export function sweepFamilies(specs: readonly string[]): SweepFamily[] {
  const groups = new Map<string, SweepFamily>();
  for (const spec of specs) {
    if (spec.includes('+')) continue;
    const [name, first, ...rest] = spec.split(':');
    const x = Number(first);
    if (first === undefined || !Number.isFinite(x)) continue;
    const key = rest.length ? `${name}:…:${rest.join(':')}` : name!;
    const g = groups.get(key) ?? { key, parameter: PARAMETER[name!] ?? 'value', points: [] };
    g.points.push({ spec, x });
    groups.set(key, g);
  }
  return [...groups.values()]
    .filter((g) => g.points.length >= 2)
    .map((g) => ({ ...g, points: g.points.sort((a, b) => a.x - b.x) }));
}
