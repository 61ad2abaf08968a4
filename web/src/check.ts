/**
 * The JPEG check's reading (section 7): the table, the meter and the sentence all come from the
 * same four reconstruction PSNRs, so they cannot contradict each other. The protection is the gap
 * between how faithfully the model redraws the original and the immunized photo (both measured
 * against the original); after JPEG, both are re-saved and measured again (src/robustness/check.ts).
 */
import type { CheckResult } from './api.js';
import { fmtDb } from './format.js';

export { WEAK_DB, checkReading };

/**
 * Below this gap (dB) the immunization itself is weak: percentages of a gap this small say little.
 * The same threshold as the Result section's "weak protection" note.
 */
const WEAK_DB = 2;

interface CheckReading {
  rows: [string, string][];
  /** The meter's value: the share of the protection left, in [0, 1]; null when weak (no meter). */
  share: number | null;
  summary: string;
}

// Copied from src/robustness/check.ts verdict(): the same thresholds as `immunize protect --check`.
function verdict(remaining: number): 'holds' | 'weakened' | 'removed' {
  return remaining >= 0.5 ? 'holds' : remaining >= 0.2 ? 'weakened' : 'removed';
}

function checkReading(r: CheckResult, q: number): CheckReading | null {
  const p = r.purifications[0];
  if (!p) return null;
  const clean = r.clean.reconstructionPsnr,
    imm = r.immunized.reconstructionPsnr;
  const cleanQ = p.cleanReconstructionPsnr ?? clean,
    immQ = p.reconstructionPsnr;
  const gap = clean - imm,
    gapQ = cleanQ - immQ;
  const rows: [string, string][] = [
    ['The model redraws the original at', fmtDb(clean)],
    ['The model redraws the immunized photo at', fmtDb(imm)],
    ['Protection (the difference)', fmtDb(gap)],
    [`The model redraws the original after JPEG ${q} at`, fmtDb(cleanQ)],
    [`The model redraws the immunized photo after JPEG ${q} at`, fmtDb(immQ)],
    [`Protection after JPEG ${q}`, fmtDb(gapQ)],
    [`How close the JPEG ${q} copy is to the original`, fmtDb(p.psnr)],
  ];
  const after = `After re-saving as JPEG at quality ${q}`;
  if (gap < WEAK_DB) {
    return {
      rows,
      share: null,
      summary:
        `The protection is weak: the immunization lowered how faithfully the model redraws the photo by only ${fmtDb(gap)}, ` +
        `so there is little to keep (after JPEG ${q} the difference is ${fmtDb(gapQ)}). ` +
        'More steps, a stronger intensity or a larger painted region give more.',
    };
  }
  const share = Math.min(1, Math.max(0, gapQ / gap));
  const pct = Math.round(share * 100);
  const v = verdict(gapQ / gap);
  return {
    rows,
    share,
    summary:
      `${after}, about ${pct}% of the protection remains (${fmtDb(gapQ)} of ${fmtDb(gap)}) — ` +
      (v === 'holds'
        ? 'the photo is still protected against this model.'
        : v === 'weakened'
          ? 'weakened: the model redraws the photo noticeably better than before.'
          : 'not enough: the model redraws the photo almost as if it had never been immunized.'),
  };
}
