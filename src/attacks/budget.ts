/**
 * Perceptual budgets: a per-pixel L∞ bound for PGD (`PgdOptions.epsMap`) that lets the
 * perturbation be larger where the photo's texture hides it and keeps it quieter in flat regions
 * (skin, sky), where the eye sees a uniform pattern first (contrast masking; cf. the JND models of
 * image coding). The map follows local luminance contrast: the standard deviation of luminance in
 * a window, relative to its mean over the photo, clipped to [floor, cap].
 */
import { ArgumentError, describe } from '../errors.js';
import { F, noGrad, scope, tensor, type Tensor } from '../torch/index.js';

export interface TextureBudgetOptions {
  /** The bound where the photo's contrast is average (on the [0, 1] scale, e.g. 6/255). */
  eps: number;
  /** Side of the square window of the local contrast, odd (default 7). */
  window?: number;
  /** The smallest and largest multiple of `eps` a pixel gets (default ¼ and 3). */
  floor?: number;
  cap?: number;
  /**
   * Contrast of the luminance only, one map for the three channels (default), or of each colour
   * channel, a map per channel (chroma masking: a saturated texture hides changes in its channel).
   */
  channels?: 'luminance' | 'rgb';
  /** σ₀: local contrast is √(σ² + σ₀²), so flat regions are not all sent to the floor (default 0). */
  sigma0?: number;
}

export interface TextureBudget {
  /** [N, 1, H, W] (luminance: broadcasts over the colour channels) or [N, 3, H, W] (rgb); the caller owns it. */
  map: Tensor;
  /** The largest bound the map allows (eps × cap): PGD's `eps` with this map. */
  maxEps: number;
}

function check(o: TextureBudgetOptions): Required<TextureBudgetOptions> {
  const window = o.window ?? 7;
  const floor = o.floor ?? 0.25;
  const cap = o.cap ?? 3;
  const channels = o.channels ?? 'luminance';
  const sigma0 = o.sigma0 ?? 0;
  if (channels !== 'luminance' && channels !== 'rgb')
    throw new ArgumentError(`Expected channels to be 'luminance' or 'rgb' but received ${describe(channels)}`);
  if (!(typeof sigma0 === 'number' && Number.isFinite(sigma0) && sigma0 >= 0))
    throw new ArgumentError(`Expected sigma0 to be a non-negative number but received ${describe(sigma0)}`);
  if (!(typeof o.eps === 'number' && Number.isFinite(o.eps) && o.eps >= 0))
    throw new ArgumentError(`Expected eps to be a non-negative number but received ${describe(o.eps)}`);
  if (!(Number.isSafeInteger(window) && window >= 1 && window % 2 === 1))
    throw new ArgumentError(`Expected window to be an odd positive integer but received ${describe(window)}`);
  if (!(Number.isFinite(floor) && Number.isFinite(cap) && floor >= 0 && cap >= floor && cap > 0))
    throw new ArgumentError(`Expected 0 ≤ floor ≤ cap with cap > 0 but received floor ${floor}, cap ${cap}`);
  return { eps: o.eps, window, floor, cap, channels, sigma0 };
}

/**
 * The texture-adaptive budget of an RGB batch x ([N, 3, H, W] in [0, 1]): eps × clip(σ/mean σ,
 * floor, cap), σ the local standard deviation of luminance (Y = 0.299 R + 0.587 G + 0.114 B)
 * in a window × window neighbourhood, edges reflected. A photo without any contrast gets eps.
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
      const padded = F.pad(y, [half, half, half, half], 'reflect');
      const mean = F.avgPool2d(padded, o.window, { stride: 1 });
      const meanSq = F.avgPool2d(padded.square(), o.window, { stride: 1 });
      const sigma = meanSq
        .sub(mean.square())
        .clamp(0)
        .add(o.sigma0 ** 2)
        .sqrt();
      const level = sigma.mean([1, 2, 3], true); // over channels too: rgb maps share one level
      // Flat photo (σ ≡ 0): every pixel average, so the factor is 1.
      const contrast = sigma.div(level.clamp(1e-12)).where(level.gt(0), 1);
      return contrast.clamp(o.floor, o.cap).mul(o.eps);
    }),
  );
  return { map, maxEps: o.eps * o.cap };
}
