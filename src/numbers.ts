/**
 * The one parser for numbers as people write them in flags, form fields and specs: `0.5`, `1e-3`,
 * and fractions such as `16/255` (budgets on 8-bit pixels are usually written that way).
 */

const NUMBER_TEXT = /^\s*(-?\d+(?:\.\d+)?(?:e[-+]?\d+)?)\s*(?:\/\s*(\d+(?:\.\d+)?))?\s*$/i;

/** The value of `text`, or null when it is not a number or fraction (or not finite). */
export function parseNumberText(text: string): number | null {
  const m = NUMBER_TEXT.exec(text);
  if (m === null) return null;
  const n = Number(m[1]) / (m[2] === undefined ? 1 : Number(m[2]));
  return Number.isFinite(n) ? n : null;
}
