/**
 * Differentiable transforms for robust immunization by expectation over transformation (EOT;
 * Athalye et al. 2018): each PGD step averages the loss over a few transforms drawn at random
 * from the adversary's repertoire, so that the perturbation survives them. Sandoval-Segura et al.
 * (2023) found JPEG at quality 65–95 to be what undoes immunization, hence 'jpeg' (differentiable
 * JPEG only, the default for `--robust jpeg`) and 'all' (JPEG, resizing, blur and noise).
 *
 * Contract of a sampler `s = differentiableTransforms(spec, opts)` (docs/purify.md):
 * - `s(x, gen)` draws ONE transform from `gen` and applies it: a new tensor of x's shape, dtype
 *   and device, differentiable with respect to x (gradients are finite; straight-through rounding
 *   for JPEG by default). `x` is not modified. The caller owns (disposes) the result.
 * - The draw consumes `gen` (a CPU or CUDA `Generator`) and nothing else: the same generator
 *   state gives the same transform and the same noise. The default global generator is never
 *   touched, so EOT does not disturb other seeded code.
 * - `s.draw(gen)` returns the drawn transform without applying it (`spec`, in the purification
 *   grammar, e.g. 'diffjpeg:73' or 'resize:0.71:bilinear', and `apply(x)`), for logging.
 */
import { ArgumentError, describe } from '../errors.js';
import { rand, randn, scope, type Generator, type Tensor } from '../torch/index.js';
import { checkImageBatch, checkNumber } from './common.js';
import { diffJpeg, type DiffRounding } from './diff-jpeg.js';
import { gaussianBlur, gaussianKernelSize } from './filters.js';
import { resizeDownUp } from './geometry.js';

/** What `differentiableTransforms` can draw. */
export type DifferentiableTransformKind = 'jpeg' | 'resize' | 'blur' | 'noise';
export const DIFFERENTIABLE_TRANSFORM_KINDS: readonly DifferentiableTransformKind[] = [
  'jpeg',
  'resize',
  'blur',
  'noise',
];

export interface DifferentiableTransformOptions {
  /** Kinds to draw from, uniformly (default: ['jpeg'] for 'jpeg', every kind for 'all'). */
  kinds?: readonly DifferentiableTransformKind[];
  /** JPEG quality, an integer drawn uniformly in [lo, hi]. Default [50, 95]. */
  quality?: readonly [number, number];
  /** Rounding of the differentiable JPEG. Default 'ste' (exact forward, identity backward). */
  rounding?: DiffRounding;
  /** Chroma subsampling of the differentiable JPEG. Default '4:2:0' (what encoders do by default). */
  chromaSubsampling?: '4:2:0' | '4:4:4';
  /** Down-scale factor for resize down/up (bilinear, anti-aliased), uniform in [lo, hi]. Default [0.5, 0.9]. */
  resizeScale?: readonly [number, number];
  /** Gaussian blur σ in pixels, uniform in [lo, hi]. Default [0.5, 1.5]. */
  blurSigma?: readonly [number, number];
  /** Gaussian noise σ on the [0, 1] scale, uniform in [lo, hi]. Default [0, 4/255]. */
  noiseSigma?: readonly [number, number];
}

/** One drawn transform. */
export interface DrawnTransform {
  readonly kind: DifferentiableTransformKind;
  /** In the purification grammar (spec.ts); noise carries no seed: its values come from the generator. */
  readonly spec: string;
  /** Applies it (noise draws its values from the generator given to `draw`). */
  apply(x: Tensor): Tensor;
}

export interface TransformSampler {
  (x: Tensor, gen: Generator): Tensor;
  /** Draws a transform without applying it. */
  draw(gen: Generator): DrawnTransform;
  readonly kinds: readonly DifferentiableTransformKind[];
}

function range(
  name: string,
  v: readonly [number, number] | undefined,
  dflt: readonly [number, number],
  o: { min: number; max?: number; minExclusive?: boolean; integer?: boolean },
): [number, number] {
  const r = v ?? dflt;
  if (!Array.isArray(r) || r.length !== 2)
    throw new ArgumentError(
      `differentiableTransforms: expected ${name} to be a pair [lo, hi] but received ${describe(r)}`,
    );
  const lo = checkNumber('differentiableTransforms', `${name}[0]`, r[0], o);
  const hi = checkNumber('differentiableTransforms', `${name}[1]`, r[1], o);
  if (lo > hi)
    throw new ArgumentError(
      `differentiableTransforms: expected ${name} [lo, hi] with lo <= hi but received [${lo}, ${hi}]`,
    );
  return [lo, hi];
}

/** Rounds to 4 significant decimals for the spec text (the transform uses the exact value). */
function short(v: number): string {
  return String(Number(v.toPrecision(4)));
}

/**
 * A sampler of random differentiable transforms (module comment). `spec` 'jpeg': differentiable
 * JPEG with a random quality; 'all': one of JPEG, resize down/up, Gaussian blur, Gaussian noise.
 */
export function differentiableTransforms(
  spec: 'jpeg' | 'all',
  o: DifferentiableTransformOptions = {},
): TransformSampler {
  if (spec !== 'jpeg' && spec !== 'all')
    throw new ArgumentError(`differentiableTransforms: expected spec 'jpeg' or 'all' but received ${describe(spec)}`);
  const kinds = o.kinds ?? (spec === 'jpeg' ? ['jpeg'] : DIFFERENTIABLE_TRANSFORM_KINDS);
  if (!Array.isArray(kinds) || kinds.length === 0 || kinds.some((k) => !DIFFERENTIABLE_TRANSFORM_KINDS.includes(k))) {
    throw new ArgumentError(
      `differentiableTransforms: expected kinds to be a non-empty list of ${DIFFERENTIABLE_TRANSFORM_KINDS.join(', ')} but received ${describe(kinds)}`,
    );
  }
  const quality = range('quality', o.quality, [50, 95], { min: 1, max: 100, integer: true });
  const rounding = o.rounding ?? 'ste';
  if (!['ste', 'cubic', 'none'].includes(rounding))
    throw new ArgumentError(
      `differentiableTransforms: expected rounding 'ste', 'cubic' or 'none' but received ${describe(rounding)}`,
    );
  const chromaSubsampling = o.chromaSubsampling ?? '4:2:0';
  if (chromaSubsampling !== '4:2:0' && chromaSubsampling !== '4:4:4')
    throw new ArgumentError(
      `differentiableTransforms: expected chromaSubsampling '4:2:0' or '4:4:4' but received ${describe(chromaSubsampling)}`,
    );
  const resizeScale = range('resizeScale', o.resizeScale, [0.5, 0.9], { min: 0, max: 1, minExclusive: true });
  const blurSigma = range('blurSigma', o.blurSigma, [0.5, 1.5], { min: 0, minExclusive: true });
  const noiseSigma = range('noiseSigma', o.noiseSigma, [0, 4 / 255], { min: 0 });
  const frozen = Object.freeze([...kinds]);

  const draw = (gen: Generator): DrawnTransform => {
    // Two uniforms per draw, always: which kind, and its parameter. Drawn on the generator's own
    // device so CUDA generators work too; a fixed count keeps the stream aligned across kinds.
    const [uKind, uParam] = scope(() =>
      rand([2], { generator: gen, dtype: 'float64', device: gen.device }).toTypedArray(),
    ) as Float64Array;
    const kind = frozen[Math.min(frozen.length - 1, Math.floor(uKind! * frozen.length))]!;
    const lerp = ([lo, hi]: [number, number]): number => lo + (hi - lo) * uParam!;
    switch (kind) {
      case 'jpeg': {
        const q = Math.min(quality[1], quality[0] + Math.floor(uParam! * (quality[1] - quality[0] + 1)));
        const flags = [...(rounding === 'ste' ? [] : [rounding]), ...(chromaSubsampling === '4:4:4' ? ['444'] : [])];
        return {
          kind,
          spec: ['diffjpeg', q, ...flags].join(':'),
          apply: (x) => diffJpeg(x, { quality: q, rounding, chromaSubsampling }),
        };
      }
      case 'resize': {
        const s = lerp(resizeScale);
        return { kind, spec: `resize:${short(s)}:bilinear`, apply: (x) => resizeDownUp(x, s, 'bilinear') };
      }
      case 'blur': {
        const sigma = lerp(blurSigma);
        return {
          kind,
          spec: `blur:${short(sigma)}`,
          apply: (x) => {
            checkImageBatch(x, 'differentiableTransforms');
            // Reflect padding must stay inside the image: shrink the kernel on tiny images.
            const side = Math.min(x.shape[2]!, x.shape[3]!);
            return gaussianBlur(x, sigma, { kernelSize: Math.min(gaussianKernelSize(sigma), 2 * side - 1) });
          },
        };
      }
      case 'noise': {
        const sigma = lerp(noiseSigma);
        return {
          kind,
          spec: `noise:gaussian:${short(sigma)}`,
          apply: (x) =>
            scope(() => {
              checkImageBatch(x, 'differentiableTransforms');
              const n = randn(x.shape, { generator: gen, dtype: x.dtype, device: gen.device });
              return x.add(n.device === x.device ? n.mul(sigma) : n.to(x.device).mul(sigma)).clamp(0, 1);
            }),
        };
      }
      default:
        throw new ArgumentError(`differentiableTransforms: unknown kind ${describe(kind)}`);
    }
  };
  const sampler = ((x: Tensor, gen: Generator): Tensor => {
    checkImageBatch(x, 'differentiableTransforms', 3);
    return draw(gen).apply(x);
  }) as TransformSampler;
  Object.defineProperty(sampler, 'draw', { value: draw });
  Object.defineProperty(sampler, 'kinds', { value: frozen });
  return sampler;
}
