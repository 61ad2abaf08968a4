/**
 * Shared checks for the purifications: every one takes a float NCHW image batch in [0, 1] and
 * returns a new tensor of the same shape (the caller owns it; the input is never modified).
 */
import { ArgumentError, describe, ImmunizeError } from '../errors.js';
import { isFloatingPoint, type Tensor } from '../torch/index.js';

/** A purification spec that could not be parsed or applied; `token` is the offending part. */
export class PurificationSpecError extends ImmunizeError {
  readonly token: string;
  constructor(token: string, message: string) {
    super('E_PURIFY_SPEC', message);
    this.name = 'PurificationSpecError';
    this.token = token;
  }
}

/** Throws unless `x` is a 4-d floating-point tensor (with `channels` channels when given). */
export function checkImageBatch(x: unknown, fn: string, channels?: number): asserts x is Tensor {
  const t = x as Tensor;
  if (t === null || typeof t !== 'object' || typeof (t as { ndim?: unknown }).ndim !== 'number')
    throw new ArgumentError(`${fn}: expected an image tensor [N, C, H, W] but received ${describe(x)}`);
  if (t.ndim !== 4)
    throw new ArgumentError(`${fn}: expected an image tensor [N, C, H, W] but received shape [${t.shape.join(', ')}]`);
  if (!isFloatingPoint(t.dtype))
    throw new ArgumentError(`${fn}: expected a floating-point image in [0, 1] but received dtype ${t.dtype}`);
  if (channels !== undefined && t.shape[1] !== channels)
    throw new ArgumentError(`${fn}: expected ${channels} channels but received shape [${t.shape.join(', ')}]`);
}

export function checkNumber(
  fn: string,
  name: string,
  v: unknown,
  o: { min?: number; max?: number; minExclusive?: boolean; integer?: boolean } = {},
): number {
  const ok =
    typeof v === 'number' &&
    Number.isFinite(v) &&
    (!o.integer || Number.isSafeInteger(v)) &&
    (o.min === undefined || (o.minExclusive ? v > o.min : v >= o.min)) &&
    (o.max === undefined || v <= o.max);
  if (!ok) {
    const range =
      o.min !== undefined && o.max !== undefined
        ? ` in ${o.minExclusive ? '(' : '['}${o.min}, ${o.max}]`
        : o.min !== undefined
          ? o.minExclusive
            ? ` > ${o.min}`
            : ` >= ${o.min}`
          : o.max !== undefined
            ? ` <= ${o.max}`
            : '';
    throw new ArgumentError(
      `${fn}: expected ${name} to be ${o.integer ? 'an integer' : 'a number'}${range} but received ${describe(v)}`,
    );
  }
  return v;
}
