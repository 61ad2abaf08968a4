/**
 * The one integer check of src/torch. Shapes, dims, int lists, seeds, thread counts, offsets:
 * every integer argument goes through checkInt / checkInts before it reaches native code, which
 * checks again as a last line (docs/engine.md, "Errors and argument checks").
 */
import { ArgumentError, describe } from '../errors.js';

/** A safe integer: no fraction, not NaN or ±Infinity, |v| ≤ 2^53 − 1 (so it is exact in a double). */
export function isInt(value: unknown): value is number {
  return Number.isSafeInteger(value);
}

export interface IntRange {
  min?: number;
  max?: number;
}

function expected(range: IntRange): string {
  const { min, max } = range;
  if (min !== undefined && max !== undefined) return `an integer from ${min} to ${max}`;
  if (min !== undefined) return `an integer ≥ ${min}`;
  if (max !== undefined) return `an integer ≤ ${max}`;
  return 'an integer';
}

/** `value` as an integer, else ArgumentError: `Expected an integer for dim but received 1.5 of type number`. */
export function checkInt(value: unknown, what: string, range: IntRange = {}): number {
  if (
    !isInt(value) ||
    (range.min !== undefined && value < range.min) ||
    (range.max !== undefined && value > range.max)
  ) {
    throw new ArgumentError(`Expected ${expected(range)} for ${what} but received ${describe(value)}`);
  }
  return value;
}

/** checkInt, or null for null/undefined (optional int arguments). */
export function checkOptInt(value: unknown, what: string, range: IntRange = {}): number | null {
  return value === undefined || value === null ? null : checkInt(value, what, range);
}

/** A fresh array of integers; an element that is not one is named by its index (`shape[1]`). */
export function checkInts(values: unknown, what: string, range: IntRange = {}): number[] {
  if (!Array.isArray(values))
    throw new ArgumentError(`Expected an array of integers for ${what} but received ${describe(values)}`);
  return values.map((v, i) => checkInt(v, `${what}[${i}]`, range));
}
