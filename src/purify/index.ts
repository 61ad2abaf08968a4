/**
 * Purifications: what an adversary does to an immunized image before editing it (docs/purify.md).
 * Each takes a float NCHW batch in [0, 1] and returns a new tensor of the same shape.
 */
export { PurificationSpecError, checkImageBatch } from './common.js';
export { jpeg, webp, type JpegOptions, type JpegEncoder, type ChromaSubsampling, type WebpOptions } from './codecs.js';
export {
  diffJpeg,
  diffRound,
  dctMatrix,
  quantizationTables,
  scaleQuantTable,
  IJG_LUMA_Q50,
  IJG_CHROMA_Q50,
  type DiffJpegOptions,
  type DiffRounding,
} from './diff-jpeg.js';
export {
  gaussianBlur,
  gaussianKernel1d,
  gaussianKernelSize,
  medianBlur,
  symmetricPad,
  type GaussianBlurOptions,
} from './filters.js';
export {
  resize,
  pilResize,
  pilResampleMatrix,
  resizeDownUp,
  rotate,
  hflip,
  vflip,
  centerCrop,
  cropResize,
  type ResizeMode,
  type ResizeOptions,
  type RotateOptions,
} from './geometry.js';
export { addNoise, type NoiseKind, type NoiseOptions } from './noise.js';
export {
  parsePurification,
  parsePurificationStep,
  expandPurificationSweep,
  parseNumber,
  chain,
  purify,
  PURIFICATION_NAMES,
  type Purification,
  type PurificationStep,
  type PurificationName,
  type ApplyOptions,
} from './spec.js';
export {
  impress,
  asAutoencoder,
  reconstruct,
  reconstructionError,
  type ImageAutoencoder,
  type ImpressOptions,
  type ImpressResult,
  type Closeness,
} from './impress.js';
export {
  differentiableTransforms,
  DIFFERENTIABLE_TRANSFORM_KINDS,
  type DifferentiableTransformKind,
  type DifferentiableTransformOptions,
  type DrawnTransform,
  type TransformSampler,
} from './eot.js';
