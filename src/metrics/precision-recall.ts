/**
 * Improved precision and recall (Kynkäänniemi, Karras, Laine, Lehtinen & Aila 2019,
 * arXiv:1904.06991) as piq 0.8.0 `PR`: each set's manifold is the union of balls around its
 * feature vectors with radius = distance to the k-th nearest neighbour (the point itself
 * excluded: the (k+1)-th smallest distance), Euclidean distances by torch.cdist.
 *
 * - precision: fraction of fake (generated) samples inside the real manifold;
 * - recall: fraction of real samples inside the fake manifold.
 *
 * "Inside" is `d < r or isclose(d, r)` as piq has it. piq's recall compares with isclose against
 * the REAL radii (not the fake ones) in that second term; kept here so the numbers match piq.
 * Argument order as piq: (real, fake).
 */
import { ArgumentError, ImmunizeError, describe } from '../errors.js';
import { cat, isTensor, noGrad, scope, type Tensor } from '../torch/index.js';
import { cdist, isclose } from './linalg.js';

export interface PrecisionRecallOptions {
  /** k of the k-NN radius. Default 5 (piq's default; the paper uses 3). */
  nearestK?: number;
  /** Rows per cdist block, to bound memory for large sets (N × chunk distances at a time). Default 8192. */
  chunkSize?: number;
}

export function precisionRecall(
  realFeatures: Tensor,
  fakeFeatures: Tensor,
  o: PrecisionRecallOptions = {},
): { precision: number; recall: number } {
  const k = o.nearestK ?? 5;
  const chunk = o.chunkSize ?? 8192;
  for (const [name, t] of [
    ['realFeatures', realFeatures],
    ['fakeFeatures', fakeFeatures],
  ] as const) {
    if (!isTensor(t))
      throw new ArgumentError(`precision_recall: expected ${name} to be a Tensor [N, D] but received ${describe(t)}`);
    if (t.ndim !== 2)
      throw new ImmunizeError(
        'E_SHAPE',
        `precision_recall: expected ${name} of shape [N, D] but received [${t.shape.join(', ')}]`,
      );
    if (t.shape[0]! < k + 1)
      throw new ImmunizeError(
        'E_SHAPE',
        `precision_recall: ${name} has ${t.shape[0]} rows; k = ${k} nearest neighbours need at least ${k + 1}`,
      );
  }
  if (realFeatures.shape[1] !== fakeFeatures.shape[1]) {
    throw new ImmunizeError(
      'E_SHAPE',
      `precision_recall: real and fake features have different dimensions (${realFeatures.shape[1]} and ${fakeFeatures.shape[1]})`,
    );
  }
  if (!Number.isSafeInteger(k) || k < 1)
    throw new ArgumentError(`precision_recall: nearestK must be a positive integer but is ${describe(k)}`);
  if (!Number.isSafeInteger(chunk) || chunk < 1)
    throw new ArgumentError(`precision_recall: chunkSize must be a positive integer but is ${describe(chunk)}`);
  return noGrad(() =>
    scope(() => {
      const real = realFeatures;
      const fake = fakeFeatures.to({ dtype: real.dtype, device: real.device });
      const realRadii = kthNeighbourDistance(real, k, chunk).unsqueeze(1); // [R, 1]
      const fakeRadii = kthNeighbourDistance(fake, k, chunk).unsqueeze(0); // [1, F]
      let inReal: Tensor | null = null; // fake j inside the real manifold (precision)
      const inFake: Tensor[] = []; // real i inside the fake manifold (recall)
      for (let s = 0; s < real.shape[0]!; s += chunk) {
        const len = Math.min(chunk, real.shape[0]! - s);
        const d = cdist(real.narrow(0, s, len), fake); // [len, F]
        const rr = realRadii.narrow(0, s, len);
        const close = isclose(d, rr);
        const p = d.lt(rr).logicalOr(close).any(0);
        inReal = inReal === null ? p : inReal.logicalOr(p);
        inFake.push(d.lt(fakeRadii).logicalOr(close).any(1));
      }
      return {
        precision: inReal!.to('float32').mean().item(),
        recall: cat(inFake, 0).to('float32').mean().item(),
      };
    }),
  );
}

/** Distance of every row to its k-th nearest other row: the (k+1)-th smallest of cdist(x, x). */
function kthNeighbourDistance(x: Tensor, k: number, chunk: number): Tensor {
  return scope(() => {
    const parts: Tensor[] = [];
    for (let s = 0; s < x.shape[0]!; s += chunk) {
      const d = cdist(x.narrow(0, s, Math.min(chunk, x.shape[0]! - s)), x);
      const [smallest] = d.topk(k + 1, -1, false);
      const [kth] = smallest.max(-1);
      parts.push(kth);
    }
    return parts.length === 1 ? parts[0]! : cat(parts, 0);
  });
}
