/**
 * Perceptual budgets: a per-pixel L∞ bound for PGD (`PgdOptions.epsMap`) that lets the
 * perturbation be larger where the photo's texture hides it and keeps it quieter in flat regions
 * (skin, sky), where a uniform pattern shows first (contrast masking). The map is derived from
 * SSIM itself: a zero-mean change of size ε in a window of variance σ² costs SSIM about
 * ε² / (2σ² + C2) there, while the attack's gain grows about as ε (a sign step moves every pixel
 * its whole bound). Spending a fixed SSIM loss for the most gain gives ε ∝ 2σ² + C2, i.e. a bound
 * proportional to the local variance plus σ₀² = C2 / 2 (σ₀ ≈ 0.02). σ is measured as SSIM
 * measures it: each colour channel, an 11-pixel Gaussian window of σ 1.5. A cap keeps the
 * largest bounds (at hard edges) within a few times the mean. docs/attacks.md#per-pixel-budgets
 * has the measurements that chose the defaults.
 */
import { ArgumentError, describe } from '../errors.js';
import { gaussianFilter } from '../metrics/functional.js';
import { F, noGrad, scope, tensor, type Tensor } from '../torch/index.js';

export interface TextureBudgetOptions {
  /** The map's mean bound over the photo (on the [0, 1] scale, e.g. 6/255), before floor and cap. */
  eps: number;
  /** Side of the Gaussian window of the local contrast, odd (default 11, SSIM's). */
  window?: number;
  /** σ of that window in pixels (default 1.5, SSIM's). */
  windowSigma?: number;
  /** The smallest and largest multiple of `eps` a pixel gets (default 0 and 8; Infinity: no cap). */
  floor?: number;
  cap?: number;
  /**
   * Contrast of each colour channel, a map per channel (default: SSIM compares the channels
   * separately; a saturated texture hides changes in its channel), or of the luminance only, one
   * map for the three channels.
   */
  channels?: 'luminance' | 'rgb';
  /** σ₀: the local contrast is √(σ² + σ₀²), so flat regions keep some budget (default 0.02 ≈ √(C2 / 2)). */
  sigma0?: number;
  /** The bound follows contrast^power (default 2: proportional to σ² + σ₀²; 1 is √(σ² + σ₀²)). */
  power?: number;
}

export interface TextureBudget {
  /** [N, 3, H, W] (rgb) or [N, 1, H, W] (luminance: broadcasts over the colour channels); the caller owns it. */
  map: Tensor;
  /** The largest bound in the map: PGD's `eps` with this map. */
  maxEps: number;
}

const number = (name: string, v: unknown, ok: (n: number) => boolean, what: string): number => {
  if (!(typeof v === 'number' && !Number.isNaN(v) && ok(v)))
    throw new ArgumentError(`Expected ${name} to be ${what} but received ${describe(v)}`);
  return v;
};

function check(o: TextureBudgetOptions): Required<TextureBudgetOptions> {
  const finite = (n: number): boolean => Number.isFinite(n) && n >= 0;
  const eps = number('eps', o.eps, finite, 'a non-negative number');
  const window = o.window ?? 11;
  if (!(Number.isSafeInteger(window) && window >= 1 && window % 2 === 1))
    throw new ArgumentError(`Expected window to be an odd positive integer but received ${describe(window)}`);
  const windowSigma = number('windowSigma', o.windowSigma ?? 1.5, (n) => Number.isFinite(n) && n > 0, 'positive');
  const sigma0 = number('sigma0', o.sigma0 ?? 0.02, finite, 'a non-negative number');
  const power = number('power', o.power ?? 2, finite, 'a non-negative number');
  const channels = o.channels ?? 'rgb';
  if (channels !== 'luminance' && channels !== 'rgb')
    throw new ArgumentError(`Expected channels to be 'luminance' or 'rgb' but received ${describe(channels)}`);
  const floor = o.floor ?? 0;
  const cap = o.cap ?? 8;
  if (!(Number.isFinite(floor) && floor >= 0 && cap >= floor && cap > 0))
    throw new ArgumentError(`Expected 0 ≤ floor ≤ cap with cap > 0 but received floor ${floor}, cap ${cap}`);
  return { eps, window, windowSigma, floor, cap, channels, sigma0, power };
}

/**
 * The texture budget of an RGB batch x ([N, 3, H, W] in [0, 1]): eps × clip(c / mean c, floor,
 * cap) with c = (σ² + σ₀²)^(power / 2), σ the local standard deviation of each channel (or of
 * luminance Y = 0.299 R + 0.587 G + 0.114 B) in a Gaussian window, edges reflected; the mean is
 * over each photo's pixels and channels. A photo without any contrast gets eps everywhere.
 */
export function textureBudget(x: Tensor, options: TextureBudgetOptions): TextureBudget {
  const o = check(options);
  if (x.ndim !== 4 || x.shape[1] !== 3)
    throw new ArgumentError(`Expected an RGB batch [N, 3, H, W] but received shape [${x.shape.join(', ')}]`);
  const half = (o.window - 1) / 2;
  if (half >= Math.min(x.shape[2]!, x.shape[3]!))
    throw new ArgumentError(
      `The contrast window (${o.window}) must be smaller than twice the image's side; the image is ${x.shape[3]}×${x.shape[2]}`,
    );
  const map = noGrad(() =>
    scope(() => {
      const rgb = tensor(Float32Array.of(0.299, 0.587, 0.114), [1, 3, 1, 1], { device: x.device }).to(x.dtype);
      const y = o.channels === 'rgb' ? x.detach() : x.detach().mul(rgb).sum([1], true);
      const c = y.shape[1]!;
      const kernel = gaussianFilter(o.window, o.windowSigma, y.dtype, y.device).unsqueeze(0).repeat(c, 1, 1, 1);
      const padded = F.pad(y, [half, half, half, half], 'reflect');
      const mean = F.conv2d(padded, kernel, null, { groups: c });
      const meanSq = F.conv2d(padded.square(), kernel, null, { groups: c });
      const contrast = meanSq
        .sub(mean.square())
        .clamp(0)
        .add(o.sigma0 ** 2)
        .pow(o.power / 2);
      const level = contrast.mean([1, 2, 3], true); // over channels too: rgb maps share one level
      // Flat photo without σ₀ (contrast ≡ 0): every pixel average, so the factor is 1.
      const share = contrast.div(level.clamp(1e-12)).where(level.gt(0), 1);
      return share.clamp(o.floor, o.cap).mul(o.eps);
    }),
  );
  const maxEps = noGrad(() => scope(() => map.max().item()));
  return { map, maxEps };
}
