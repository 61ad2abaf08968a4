/**
 * Robust immunization as `immunize protect --robust` runs it: expectation over differentiable
 * transforms (PgdOptions.eot), with the choices measured on real weights (docs/attacks.md,
 * scripts/reproduce-robust.mjs): JPEG's rounding is Shin & Song's smooth cubic, whose gradient
 * says which DCT coefficients sit near a rounding boundary (it protected better after real JPEG
 * than straight-through rounding), and every step optimises through a transform only, without
 * the unmodified image: the protection then hardly depends on whether the photo is re-compressed
 * (TAEF2: 24.9 dB as PNG, 24.6 after JPEG-75, against 23.4 and 25.6 for the plain attack), at
 * the plain attack's cost per step.
 */
import type { EotOptions } from '../attacks/pgd.js';
import { differentiableTransforms } from '../purify/eot.js';

export type RobustKind = 'jpeg' | 'all';

/** The choices above, as data (evaluate's cache keys include them, so a change here recomputes). */
export const ROBUST_SETTINGS = { rounding: 'cubic', includeIdentity: false } as const;

export function robustEot(kind: RobustKind, samples = 1): EotOptions {
  return {
    transform: differentiableTransforms(kind, { rounding: ROBUST_SETTINGS.rounding }),
    samples,
    includeIdentity: ROBUST_SETTINGS.includeIdentity,
  };
}
