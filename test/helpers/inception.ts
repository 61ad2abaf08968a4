// Seeded random weights for pytorch-fid's Inception (its key names and shapes): enough to run
// FID end to end where the real checkpoint is not available; the values mean nothing.
import { FIDInceptionV3 } from '../../src/models/inception.js';
import { manualSeed, rand, randn, type Tensor } from '../../src/torch/index.js';

/** A state dict for FIDInceptionV3 (He-scaled convolutions, sane batch-norm statistics); the caller disposes it. */
export function randomInceptionWeights(seed = 4): Map<string, Tensor> {
  const m = new FIDInceptionV3();
  manualSeed(seed);
  const sd = new Map<string, Tensor>();
  for (const [k, s] of m.stateShapes()) {
    if (k.endsWith('running_var') || k.endsWith('bn.weight')) sd.set(k, rand(s).add(0.5));
    else if (k.endsWith('running_mean') || k.endsWith('bn.bias')) sd.set(k, randn(s).mul(0.1));
    else sd.set(k, randn(s).mul(Math.sqrt(2 / s.slice(1).reduce((a, b) => a * b, 1))));
  }
  return sd;
}
