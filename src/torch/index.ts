/** The tensor engine: libtorch through a small native addon. See docs/engine.md. */
export {
  Tensor,
  TensorDisposedError,
  cat,
  stack,
  where,
  isTensor,
  type Shape,
  type Scalar,
  type Dims,
} from './tensor.js';
export {
  tensor,
  zeros,
  ones,
  full,
  empty,
  scalarTensor,
  zerosLike,
  onesLike,
  fullLike,
  randn,
  rand,
  randint,
  randnLike,
  randLike,
  arange,
  linspace,
  eye,
  type CreateOptions,
  type RandomOptions,
} from './creation.js';
export { type DType, DTYPES, ITEM_SIZE, isFloatingPoint, isComplex } from './dtype.js';
export { type Device, checkDevice, cudaDeviceCount, isCudaAvailable } from './device.js';
export {
  grad,
  gradOf,
  backward,
  noGrad,
  enableGrad,
  isGradEnabled,
  setGradEnabled,
  type GradOptions,
} from './autograd.js';
export { manualSeed, Generator } from './random.js';
export { scope, keep } from './scope.js';
export { setNumThreads, getNumThreads, liveTensors, torchInfo, peakRssMB, allocatorPolicy } from './runtime.js';
export type { AllocatorPolicy } from './runtime.js';
export { gradcheck, assertGradcheck, type GradcheckResult } from './gradcheck.js';
export { hasOp, schemaOf } from './ops.js';
export * as F from './functional.js';
export * as fft from './fft.js';
export {
  withPrecision,
  reducedPrecision,
  checkPrecision,
  autoPrecision,
  nativeBf16Flag,
  PRECISIONS,
  type Precision,
} from './precision.js';
