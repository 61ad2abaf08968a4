/**
 * The protect job as a library (DESIGN.md §1): the CLI, the service's runner, the evaluation and
 * (through the API) the web page all immunize photos through these functions.
 *
 *   const r = resolveProtectParameters({ model: 'madebyollin/taesd', preset: 'fast' });
 *   using models = await loadProtectModels(r);
 *   using inputs = await readProtectInputs({ image: 'photo.jpg' }, r);
 *   const result = await protectImage(inputs, models, r, { parameters, inputPath: 'photo.jpg' });
 *   writeProtected(result, 'photo.immunized.png');
 */
export {
  PROTECT_PARAMETERS,
  DEFAULT_MAX_PIXELS,
  parametersFor,
  parameterSpec,
  jsonSchemaOf,
  type Door,
  type ParameterSpec,
} from './schema.js';
export {
  resolveProtectParameters,
  LEARNED_REFINE,
  pgdOptionsOf,
  precisionOf,
  ParameterError,
  type ProtectRequest,
  type ResolveContext,
} from './parameters.js';
export {
  sidecarParameters,
  fingerprintFiles,
  canonical,
  type ProtectParameters,
  type ProtectSidecar,
  type InputFingerprints,
} from './sidecar.js';
export {
  readProtectInputs,
  preflightPhoto,
  sha256File,
  sizeAfterResize,
  pixels,
  DECODE_LIMIT,
  type ProtectInputs,
} from './inputs.js';
export { loadProtectModels, type ProtectModels } from './models.js';
export {
  protectImage,
  checkImmunized,
  creationDate,
  ProtectCanceled,
  type ProtectOptions,
  type ProtectResult,
  type ProtectStep,
} from './protect-image.js';
export {
  jobStepTimes,
  estimateText,
  estimateAttack,
  recordStepTime,
  readStepTimes,
  megapixelSteps,
  stepTimesPath,
  roughDuration,
  type StepTimeKey,
  type AttackWork,
} from './step-times.js';
export { visibilitySsim } from './visibility.js';
export { writeProtected, writeCheck, sidecarPathFor, checkPathFor } from './write.js';
