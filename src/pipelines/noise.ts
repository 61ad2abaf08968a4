/**
 * Where a pipeline's random draws come from: a seeded generator (diffusers' randn_tensor on
 * the CPU, so the same seed gives the same numbers as diffusers), or a recorded list of tensors
 * replayed in draw order (to match a reference without depending on the generator).
 */
import { ArgumentError, ImmunizeError } from '../errors.js';
import { Generator, randn, scope, type DType, type Device, type Tensor } from '../torch/index.js';

export interface NoiseSource {
  /** The next standard-normal tensor of `shape`, on `device` in `dtype`. `site` names the draw for errors. */
  next(shape: readonly number[], like: { dtype: DType; device: Device }, site: string): Tensor;
}

/** Draws from a CPU generator (or the global one), then moves to the device, as diffusers does for CPU generators. */
export function generatorNoise(generator?: Generator): NoiseSource {
  return {
    next: (shape, like) =>
      scope(() => {
        const n = randn([...shape], { generator, dtype: like.dtype });
        return like.device === 'cpu' ? n : n.to(like.device);
      }),
  };
}

export function seededNoise(seed: number): NoiseSource {
  if (!Number.isSafeInteger(seed) || seed < 0)
    throw new ArgumentError(`seed must be a non-negative integer but received ${seed}`);
  return generatorNoise(new Generator({ seed }));
}

/** Replays recorded draws in order; a shape mismatch or running out is an error naming the draw. */
export function replayNoise(draws: readonly Tensor[]): NoiseSource & { readonly used: number } {
  let i = 0;
  return {
    get used() {
      return i;
    },
    next(shape, like, site) {
      const t = draws[i];
      if (t === undefined)
        throw new ImmunizeError(
          'E_NOISE',
          `replayed noise ran out at draw ${i} (${site}); ${draws.length} were recorded`,
        );
      if (t.shape.join() !== shape.join())
        throw new ImmunizeError(
          'E_NOISE',
          `replayed draw ${i} (${site}) has shape [${t.shape.join(', ')}] but [${shape.join(', ')}] is needed`,
        );
      i++;
      return t.to({ dtype: like.dtype, device: like.device });
    },
  };
}
