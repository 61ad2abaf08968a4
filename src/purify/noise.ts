/**
 * Additive noise, the crudest purification: x + n, clamped to [0, 1]. Seeded through libtorch's
 * CPU generator (the same seed gives the same noise on every device, as in PyTorch's
 * torch.randn(generator=cpu_gen).to(device)).
 */
import { ArgumentError, describe } from '../errors.js';
import { Generator, rand, randn, scope, type Tensor } from '../torch/index.js';
import { checkImageBatch, checkNumber } from './common.js';

export type NoiseKind = 'gaussian' | 'uniform';

export interface NoiseOptions {
  /** Seed for a fresh CPU generator (default 0); ignored when `generator` is given. */
  seed?: number;
  /** Draw from this (CPU) generator instead, e.g. a fresh draw per EOT sample. */
  generator?: Generator;
}

/**
 * Gaussian noise with standard deviation `strength`, or uniform noise on [−strength, strength),
 * in [0, 1] pixel units; the result is clamped to [0, 1].
 */
export function addNoise(x: Tensor, kind: NoiseKind, strength: number, o: NoiseOptions = {}): Tensor {
  checkImageBatch(x, 'addNoise');
  if (kind !== 'gaussian' && kind !== 'uniform')
    throw new ArgumentError(`addNoise: expected kind 'gaussian' or 'uniform' but received ${describe(kind)}`);
  checkNumber('addNoise', 'strength', strength, { min: 0 });
  if (o.seed !== undefined) checkNumber('addNoise', 'seed', o.seed, { min: 0, integer: true });
  const generator = o.generator ?? new Generator({ seed: o.seed ?? 0 });
  return scope(() => {
    // Drawn on the generator's device (CPU unless a CUDA generator is given), then moved.
    const draw = { generator, dtype: x.dtype, device: generator.device } as const;
    const n =
      kind === 'gaussian'
        ? randn(x.shape, draw).mul(strength)
        : rand(x.shape, draw)
            .mul(2 * strength)
            .sub(strength);
    return x.add(n.device === x.device ? n : n.to(x.device)).clamp(0, 1);
  });
}
