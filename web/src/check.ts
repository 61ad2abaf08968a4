/**
 * The protection check's reading (section 7): the table, the meter and the sentences all come from
 * the same reconstruction PSNRs the server measured, so they cannot contradict each other. The
 * protection is the gap between how faithfully the model redraws the original and the immunized
 * photo (both against the original); each purification row repeats that measurement on what the
 * purification made of both (src/robustness/check.ts). Every row the server returns is shown.
 */
import type { CheckResult } from './api.js';
import { fmtDb } from './format.js';

export { WEAK_DB, checkReading, purificationWords };

/**
 * Below this gap (dB) the immunization itself is weak: percentages of a gap this small say little.
 * The same threshold as the Result section's "weak protection" note.
 */
const WEAK_DB = 2;

interface CheckReading {
  rows: [string, string][];
  /** The meter's value: the share of the protection left after JPEG, in [0, 1]; null when weak (no meter). */
  share: number | null;
  summary: string;
}

// The same thresholds as src/robustness/check.ts verdict() (`immunize protect --check`).
function verdict(remaining: number): 'holds' | 'weakened' | 'removed' {
  return remaining >= 0.5 ? 'holds' : remaining >= 0.2 ? 'weakened' : 'removed';
}

const VERDICT_WORDS = {
  holds: 'it holds',
  weakened: 'weakened',
  removed: 'removed',
} as const;

/** What a purification spec (docs/purify.md) does to the photo, in plain words. */
function purificationWords(spec: string): string {
  const [kind, ...args] = spec.split(':');
  const a = args[0];
  switch (kind) {
    case 'jpeg':
      return `Saved again as JPEG (quality ${a ?? 75}), as social sites do`;
    case 'impress':
      return (
        'An attacker who knows the photo is protected tries to wash the protection out ' +
        `(IMPRESS, ${a ?? '?'} steps)`
      );
    case 'resize':
      return `Shrunk to ${Math.round(Number(a) * 100)}% and enlarged back`;
    case 'rotate':
      return `Turned by ${a}° and back`;
    case 'hflip':
      return 'Mirrored';
    case 'blur':
      return `Blurred (${a ?? ''} pixels)`.replace(' ()', '');
    case 'median':
      return `Smoothed with a median filter (${a ?? ''} pixels)`.replace(' ()', '');
    case 'noise':
      return 'Random noise added';
    case 'crop':
      return 'Cropped and enlarged back';
    default:
      return spec;
  }
}

/** The share of the protection a row keeps, against the gap as uploaded (null when there is none). */
function shareOf(gapRow: number, gap: number): number | null {
  return gap > 0 ? gapRow / gap : null;
}

/** `ref`: the gap as uploaded, which a purification row's share is of (null: the row is that gap). */
function rowValue(clean: number, imm: number, gap: number, ref: number | null): string {
  const share = ref === null ? null : shareOf(gap, ref);
  return (
    `The model redraws the original at ${fmtDb(clean)} and the immunized photo at ${fmtDb(imm)}: ` +
    `protection ${fmtDb(gap)}` +
    (gap <= 0 ? ' (none: it redraws the immunized photo at least as faithfully)' : '') +
    (share === null || ref === null || ref < WEAK_DB
      ? ''
      : ` (about ${Math.round(Math.min(1, Math.max(0, share)) * 100)}% left: ${VERDICT_WORDS[verdict(share)]})`)
  );
}

/** `q`: the JPEG quality asked for; its row drives the meter. Null when the result has no rows. */
function checkReading(r: CheckResult, q: number): CheckReading | null {
  if (r.purifications.length === 0) return null;
  const clean = r.clean.reconstructionPsnr,
    imm = r.immunized.reconstructionPsnr;
  const gap = clean - imm;
  const rows: [string, string][] = [['As uploaded (the saved PNG)', rowValue(clean, imm, gap, null)]];
  for (const p of r.purifications) {
    const cleanP = p.cleanReconstructionPsnr ?? clean;
    rows.push([purificationWords(p.spec), rowValue(cleanP, p.reconstructionPsnr, cleanP - p.reconstructionPsnr, gap)]);
  }
  if (gap < WEAK_DB) {
    return {
      rows,
      share: null,
      summary:
        `The protection is weak: the immunization lowered how faithfully the model redraws the photo by only ${fmtDb(gap)}, ` +
        'so there is little to keep, and shares of it say little (the rows below give each difference). ' +
        'More steps, a stronger intensity or a larger painted region give more.',
    };
  }
  const jpeg = r.purifications.find((p) => p.spec === `jpeg:${q}`) ?? r.purifications[0]!;
  const gapQ = (jpeg.cleanReconstructionPsnr ?? clean) - jpeg.reconstructionPsnr;
  const others = r.purifications.filter((p) => p !== jpeg);
  const share = Math.min(1, Math.max(0, gapQ / gap));
  const v = verdict(gapQ / gap);
  const rest = others.map((p) => {
    const g = (p.cleanReconstructionPsnr ?? clean) - p.reconstructionPsnr;
    return ` ${purificationWords(p.spec)}: about ${Math.round(Math.min(1, Math.max(0, g / gap)) * 100)}% left (${VERDICT_WORDS[verdict(g / gap)]}).`;
  });
  return {
    rows,
    share,
    summary:
      `${purificationWords(jpeg.spec)}: about ${Math.round(share * 100)}% of the protection remains (${fmtDb(gapQ)} of ${fmtDb(gap)}) — ` +
      (v === 'holds'
        ? 'the photo is still protected against this model.'
        : v === 'weakened'
          ? 'weakened: the model redraws the photo noticeably better than before.'
          : 'not enough: the model redraws the photo almost as if it had never been immunized.') +
      rest.join(''),
  };
}
