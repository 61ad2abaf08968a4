/**
 * Summary statistics for the report, with numpy's conventions (what the paper's tables were
 * computed with): `std` is the population standard deviation (numpy's default ddof = 0) and
 * quantiles interpolate linearly between order statistics (numpy's default 'linear', R type 7).
 */

export interface Summary {
  n: number;
  mean: number;
  std: number;
  min: number;
  max: number;
  median: number;
  q1: number;
  q3: number;
  /** q3 − q1. */
  iqr: number;
}

/** numpy.quantile(values, q) with linear interpolation; NaN for an empty list. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo]! + (s[hi]! - s[lo]!) * (pos - lo);
}

/**
 * Summary of the finite values (infinite PSNRs and failed metrics are left out of the mean, and
 * `n` says how many were used). Null when none is finite.
 */
export function summarize(values: readonly (number | null)[]): Summary | null {
  const v = values.filter((x): x is number => x !== null && Number.isFinite(x));
  if (v.length === 0) return null;
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  const std = Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length);
  const q1 = quantile(v, 0.25);
  const q3 = quantile(v, 0.75);
  return {
    n: v.length,
    mean,
    std,
    min: Math.min(...v),
    max: Math.max(...v),
    median: quantile(v, 0.5),
    q1,
    q3,
    iqr: q3 - q1,
  };
}
