/**
 * Fréchet Inception Distance exactly as pytorch-fid 0.3.0 (`fid_score.py`; Heusel et al. 2017,
 * arXiv:1706.08500): statistics mu = mean of the features, sigma = np.cov(rowvar=False)
 * (unbiased), and
 *
 *   d² = |mu₁ − mu₂|² + tr(σ₁) + tr(σ₂) − 2·tr(sqrtm(σ₁σ₂))
 *
 * in float64. pytorch-fid takes scipy.linalg.sqrtm of the product (a Schur method); here the
 * principal square root comes from the eigen-decomposition σ₁σ₂ = V diag(λ) V⁻¹:
 * sqrtm = V diag(√λ) V⁻¹ and tr(sqrtm) = Σ Re √λ, which is the trace of scipy's triangular root
 * (its diagonal is √ of the Schur diagonal, the eigenvalues). pytorch-fid's two special cases
 * are kept: a non-finite root is retried with eps·I added to both covariances (with the same
 * warning), and a complex root whose diagonal has an imaginary part above 1e-3 is an error
 * ("Imaginary component"); otherwise the real part is used.
 *
 *   const a = activationStatistics(featuresReal);   // [N, 2048] pool3 features (src/models/inception.ts)
 *   const b = activationStatistics(featuresFake);
 *   frechetDistance(a.mu, a.sigma, b.mu, b.sigma);  // number
 */
import { ImmunizeError, ArgumentError, describe } from '../errors.js';
import type { FIDInceptionV3 } from '../models/inception.js';
import { cat, eye, isTensor, noGrad, scope, type Tensor } from '../torch/index.js';
import { linalgEig, linalgInv } from './linalg.js';

export interface ActivationStatistics {
  /** [D] float64. */
  mu: Tensor;
  /** [D, D] float64, unbiased (divides by N − 1) as np.cov. */
  sigma: Tensor;
}

/** mu and sigma of features [N, D] (pytorch-fid calculate_activation_statistics), in float64. */
export function activationStatistics(features: Tensor): ActivationStatistics {
  if (!isTensor(features))
    throw new ArgumentError(`fid: expected features to be a Tensor [N, D] but received ${describe(features)}`);
  if (features.ndim !== 2)
    throw new ImmunizeError(
      'E_SHAPE',
      `fid: expected features of shape [N, D] but received [${features.shape.join(', ')}]`,
    );
  const n = features.shape[0]!;
  if (n < 2)
    throw new ImmunizeError('E_SHAPE', `fid: at least 2 feature vectors are needed for a covariance but received ${n}`);
  return noGrad(() =>
    scope(() => {
      const f = features.to('float64');
      const mu = f.mean(0);
      const centred = f.sub(mu);
      const sigma = centred
        .transpose(0, 1)
        .matmul(centred)
        .div(n - 1);
      return { mu, sigma };
    }),
  );
}

export interface FrechetOptions {
  /** Offset added to the covariances' diagonals when the product has no finite square root. Default 1e-6. */
  eps?: number;
  /** Receives pytorch-fid's warning when the offset is applied. Default: process.emitWarning. */
  onWarning?: (message: string) => void;
}

/** Squared Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), as pytorch-fid calculate_frechet_distance. */
export function frechetDistance(
  mu1: Tensor,
  sigma1: Tensor,
  mu2: Tensor,
  sigma2: Tensor,
  o: FrechetOptions = {},
): number {
  const eps = o.eps ?? 1e-6;
  for (const [name, t] of [
    ['mu1', mu1],
    ['sigma1', sigma1],
    ['mu2', mu2],
    ['sigma2', sigma2],
  ] as const) {
    if (!isTensor(t)) throw new ArgumentError(`fid: expected ${name} to be a Tensor but received ${describe(t)}`);
  }
  return noGrad(() =>
    scope(() => {
      const m1 = mu1.to('float64').reshape(-1);
      const m2 = mu2.to('float64').reshape(-1);
      const s1 = atLeast2d(sigma1.to('float64'));
      const s2 = atLeast2d(sigma2.to('float64'));
      if (m1.shape[0] !== m2.shape[0])
        throw new ImmunizeError(
          'E_SHAPE',
          `fid: the mean vectors have different lengths (${m1.shape[0]} and ${m2.shape[0]})`,
        );
      if (s1.shape.join() !== s2.shape.join())
        throw new ImmunizeError(
          'E_SHAPE',
          `fid: the covariances have different dimensions ([${s1.shape.join(', ')}] and [${s2.shape.join(', ')}])`,
        );
      if (s1.shape[0] !== s1.shape[1] || s1.shape[0] !== m1.shape[0]) {
        throw new ImmunizeError(
          'E_SHAPE',
          `fid: expected [D, D] covariances for D = ${m1.shape[0]} but received [${s1.shape.join(', ')}]`,
        );
      }
      const diff = m1.sub(m2);
      let root = sqrtmOfProduct(s1, s2);
      if (!root.finite) {
        const message = `fid calculation produces singular product; adding ${pyFloat(eps)} to diagonal of cov estimates`;
        (o.onWarning ?? ((m: string) => process.emitWarning(m, 'FIDWarning')))(message);
        const offset = eye(s1.shape[0]!, { dtype: 'float64', device: s1.device }).mul(eps);
        root = sqrtmOfProduct(s1.add(offset), s2.add(offset));
        if (!root.finite)
          throw new ImmunizeError(
            'E_FID_NONFINITE',
            'fid: the covariance product has no finite square root even after adding eps to the diagonals (are there NaN or infinite features?)',
          );
      }
      if (!(root.diagImag <= 1e-3)) {
        throw new ImmunizeError(
          'E_FID_COMPLEX',
          `fid: Imaginary component ${root.maxImag} (the square root of sigma1·sigma2 is not real: its diagonal has imaginary parts up to ${root.diagImag})`,
        );
      }
      const trace = (t: Tensor) =>
        t
          .flatten()
          .slice(0, 0, null, t.shape[0]! + 1)
          .sum()
          .item();
      return diff.dot(diff).item() + trace(s1) + trace(s2) - 2 * root.trace;
    }),
  );
}

/** FID between two feature sets [N, D] (e.g. Inception pool3 features). */
export function fidFromFeatures(a: Tensor, b: Tensor, o: FrechetOptions = {}): number {
  return scope(() => {
    const sa = activationStatistics(a);
    const sb = activationStatistics(b);
    return frechetDistance(sa.mu, sa.sigma, sb.mu, sb.sigma, o);
  });
}

/** Python's str() of a float for pytorch-fid's message: 1e-06, 0.001. */
function pyFloat(v: number): string {
  return v !== 0 && Math.abs(v) < 1e-4 ? v.toExponential().replace(/e([+-])(\d)$/, 'e$10$2') : String(v);
}

function atLeast2d(t: Tensor): Tensor {
  return t.ndim >= 2 ? t : t.reshape(1, -1);
}

interface Root {
  finite: boolean;
  trace: number;
  diagImag: number;
  maxImag: number;
}

/** sqrtm(a·b) through eig: finiteness, tr = Σ Re √λ, and the imaginary parts pytorch-fid checks. */
function sqrtmOfProduct(a: Tensor, b: Tensor): Root {
  const bad: Root = { finite: false, trace: NaN, diagImag: NaN, maxImag: NaN };
  return scope(() => {
    const m = a.matmul(b);
    if (m.isfinite().all().item() === 0) return bad;
    let lambda: Tensor;
    let v: Tensor;
    let vinv: Tensor;
    try {
      [lambda, v] = linalgEig(m);
      vinv = linalgInv(v);
    } catch {
      return bad; // no convergence or singular eigenvectors: scipy's sqrtm fails the same way (NaN result)
    }
    const sq = lambda.sqrt();
    const root = v.mul(sq.unsqueeze(0)).matmul(vinv);
    if (root.isfinite().all().item() === 0) return bad;
    const n = m.shape[0]!;
    const imag = root.imag().abs();
    return {
      finite: true,
      trace: sq.real().sum().item(),
      diagImag: imag
        .flatten()
        .slice(0, 0, null, n + 1)
        .max()
        .item(),
      maxImag: imag.max().item(),
    };
  });
}

export interface InceptionFeatureOptions {
  /** Images per forward pass. Default 50 (pytorch-fid's). */
  batchSize?: number;
  /** Feature dimension: 2048 (pool3, default), 768, 192 or 64. */
  dims?: number;
}

/** Inception features [N, dims] of images [N, 3, H, W] in [0, 1], batch by batch (pytorch-fid get_activations). */
export function inceptionFeatures(model: FIDInceptionV3, images: Tensor, o: InceptionFeatureOptions = {}): Tensor {
  const batchSize = o.batchSize ?? 50;
  if (!Number.isSafeInteger(batchSize) || batchSize < 1)
    throw new ArgumentError(`fid: batchSize must be a positive integer but is ${describe(batchSize)}`);
  if (!isTensor(images) || images.ndim !== 4)
    throw new ImmunizeError(
      'E_SHAPE',
      `fid: expected images [N, 3, H, W] but received ${isTensor(images) ? `[${images.shape.join(', ')}]` : describe(images)}`,
    );
  return noGrad(() =>
    scope(() => {
      const parts: Tensor[] = [];
      for (let s = 0; s < images.shape[0]!; s += batchSize) {
        parts.push(model.features(images.narrow(0, s, Math.min(batchSize, images.shape[0]! - s)), o.dims ?? 2048));
      }
      return cat(parts, 0);
    }),
  );
}

/** FID between two image sets [N, 3, H, W] in [0, 1] with the FID Inception. */
export function fid(
  model: FIDInceptionV3,
  imagesA: Tensor,
  imagesB: Tensor,
  o: InceptionFeatureOptions & FrechetOptions = {},
): number {
  return scope(() => fidFromFeatures(inceptionFeatures(model, imagesA, o), inceptionFeatures(model, imagesB, o), o));
}
