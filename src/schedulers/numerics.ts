/**
 * The numbers behind every scheduler, computed the way diffusers 0.14 computes them so that
 * results match it to float32 rounding:
 * - beta schedules and `alphas_cumprod` come from libtorch itself (torch.linspace, `** 2`,
 *   `1 - betas`, torch.cumprod — whose CPU kernel accumulates in double and rounds each output to
 *   float32; a float32 running product differs in 972 of 1000 entries of SD's schedule);
 * - numpy's float64 helpers (linspace, interp, round-half-to-even) are re-implemented here;
 * - scalar arithmetic on 0-d float32 tensors (`alpha_prod_t ** 0.5`, `1 - alpha_prod_t`, …) is
 *   emulated with Math.fround: one double operation rounded to float32 equals the correctly
 *   rounded float32 operation for + − × ÷ √ (double has more than 2·24+2 bits of precision).
 */
import { linspace, scope, tensor } from '../torch/index.js';

/** Rounds to float32, as a 0-d float32 tensor would hold the value. */
export const f32 = Math.fround;

/** float32 sqrt (torch's `x ** 0.5` on a float32 tensor is sqrt, correctly rounded). */
export function sqrt32(x: number): number {
  return f32(Math.sqrt(x));
}

export type BetaSchedule = 'linear' | 'scaled_linear' | 'squaredcos_cap_v2' | 'sigmoid';

export interface BetaSpec {
  numTrainTimesteps: number;
  betaStart: number;
  betaEnd: number;
  betaSchedule: BetaSchedule;
  trainedBetas: readonly number[] | null;
}

/**
 * diffusers' betas_for_alpha_bar (improved DDPM, Nichol & Dhariwal 2021, eq. 17): the cosine
 * schedule with s = 0.008, betas capped at 0.999; Python floats, stored as float32.
 */
function cosineBetas(n: number, maxBeta = 0.999): Float32Array {
  const alphaBar = (t: number): number => {
    const c = Math.cos((((t + 0.008) / 1.008) * Math.PI) / 2);
    return c * c;
  };
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.min(1 - alphaBar((i + 1) / n) / alphaBar(i / n), maxBeta);
  return out;
}

/** betas (float32) for a schedule, exactly as diffusers 0.14 builds them with torch. */
export function computeBetas(spec: BetaSpec): Float32Array {
  const n = spec.numTrainTimesteps;
  if (spec.trainedBetas !== null) return new Float32Array(spec.trainedBetas);
  return scope(() => {
    switch (spec.betaSchedule) {
      case 'linear':
        return linspace(spec.betaStart, spec.betaEnd, n, { dtype: 'float32' }).toTypedArray() as Float32Array;
      case 'scaled_linear':
        // "scaled_linear" is specific to latent diffusion: linear in sqrt(beta), then squared.
        return linspace(spec.betaStart ** 0.5, spec.betaEnd ** 0.5, n, { dtype: 'float32' })
          .pow(2)
          .toTypedArray() as Float32Array;
      case 'squaredcos_cap_v2':
        return cosineBetas(n);
      case 'sigmoid': // DDPMScheduler only (GeoDiff)
        return linspace(-6, 6, n, { dtype: 'float32' })
          .sigmoid()
          .mul(spec.betaEnd - spec.betaStart)
          .add(spec.betaStart)
          .toTypedArray() as Float32Array;
    }
  });
}

/** alphas_cumprod = torch.cumprod(1 - betas) in float32 (libtorch's kernel, see above). */
export function computeAlphasCumprod(betas: Float32Array): Float32Array {
  return scope(() => tensor(betas).rsub(1).cumprod(0).toTypedArray() as Float32Array);
}

/**
 * Elementwise float32 log/exp through libtorch: its CPU kernels (Sleef, even for a 0-d tensor)
 * are not correctly rounded, so Math.log/Math.exp + fround can differ by an ulp.
 */
export function mapFloat32(values: Float32Array, fn: 'log' | 'exp'): Float32Array {
  return scope(() => tensor(values)[fn]().toTypedArray() as Float32Array);
}

/** torch.exp of a 0-d float32 tensor. */
export function exp32(x: number): number {
  return mapFloat32(Float32Array.of(x), 'exp')[0]!;
}

/** torch.log of a 0-d float32 tensor. */
export function log32(x: number): number {
  return mapFloat32(Float32Array.of(x), 'log')[0]!;
}

/** numpy.linspace(start, stop, num) in float64 (start + i·step, the last value set to stop). */
export function npLinspace(start: number, stop: number, num: number): number[] {
  if (num === 1) return [start];
  const step = (stop - start) / (num - 1);
  const out = Array.from({ length: num }, (_, i) => (step === 0 ? (i / (num - 1)) * (stop - start) : i * step) + start);
  out[num - 1] = stop;
  return out;
}

/** numpy.round (round half to even) of a float64. */
export function npRound(x: number): number {
  const r = Math.round(x);
  // Math.round rounds halves up; numpy rounds them to even.
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * numpy.interp(x, arange(fp.length), fp) for x inside [0, fp.length - 1], computed in float64 as
 * numpy does: slope · (x − x_j) + fp[j].
 */
export function npInterpUnitGrid(x: number, fp: ArrayLike<number>): number {
  const last = fp.length - 1;
  if (x <= 0) return fp[0]!;
  if (x >= last) return fp[last]!;
  const j = Math.floor(x);
  if (x === j) return fp[j]!;
  const slope = (fp[j + 1]! - fp[j]!) / 1;
  return slope * (x - j) + fp[j]!;
}

// 4-point Gauss–Legendre rule on [-1, 1]: exact for polynomials of degree ≤ 7.
const GL_X = [
  -Math.sqrt(3 / 7 + (2 / 7) * Math.sqrt(6 / 5)),
  -Math.sqrt(3 / 7 - (2 / 7) * Math.sqrt(6 / 5)),
  Math.sqrt(3 / 7 - (2 / 7) * Math.sqrt(6 / 5)),
  Math.sqrt(3 / 7 + (2 / 7) * Math.sqrt(6 / 5)),
];
const GL_W = [
  (18 - Math.sqrt(30)) / 36,
  (18 + Math.sqrt(30)) / 36,
  (18 + Math.sqrt(30)) / 36,
  (18 - Math.sqrt(30)) / 36,
];

/**
 * ∫_a^b of a polynomial of degree ≤ 7, by Gauss–Legendre quadrature in float64. diffusers' LMS
 * uses scipy.integrate.quad(epsrel=1e-4) on a float32-evaluated integrand; for the Lagrange basis
 * polynomials (degree ≤ 3) this is the exact integral up to rounding, and deterministic.
 */
export function integratePolynomial(fn: (x: number) => number, a: number, b: number): number {
  const half = (b - a) / 2;
  const mid = (a + b) / 2;
  let s = 0;
  for (let i = 0; i < 4; i++) s += GL_W[i]! * fn(mid + half * GL_X[i]!);
  return s * half;
}
