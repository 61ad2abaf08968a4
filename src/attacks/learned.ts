/**
 * The learned immunizer (issue 16): δ = ε·tanh(G(x)) in one forward pass of a small network
 * (src/models/immunizer.ts), then masked and clipped by PGD's own projection, so "within budget"
 * means the same thing for both. `learnedDelta` is the differentiable part training uses.
 */
import { ArgumentError, describe } from '../errors.js';
import { AutoencoderKL } from '../models/autoencoder-kl.js';
import { AutoencoderTiny, TAESD_VARIANTS } from '../models/autoencoder-tiny.js';
import type { ImmunizerNet } from '../models/immunizer.js';
import { noGrad, scope, withPrecision, type Precision, type Tensor } from '../torch/index.js';
import { project, type ProjectionOptions } from './pgd.js';

/** G(x) before tanh, in fp32 (G itself may run in a reduced precision); differentiable. */
export function learnedOutput(net: ImmunizerNet, x: Tensor, precision: Precision = 'fp32'): Tensor {
  return scope(() => withPrecision(precision, x.device, () => net.forward(x)).float());
}

/** ε·tanh(G(x)) in fp32; differentiable in G's parameters and x. */
export function learnedDelta(net: ImmunizerNet, x: Tensor, eps: number, precision: Precision = 'fp32'): Tensor {
  return scope(() => learnedOutput(net, x, precision).tanh().mul(eps));
}

export interface LearnedOptions extends ProjectionOptions {
  /** G's arithmetic (default fp32). */
  precision?: Precision;
}

/** x + δ, projected exactly as PGD's iterates (budget, mask, pixel range); no gradient. */
export function learnedImmunize(net: ImmunizerNet, x: Tensor, o: LearnedOptions): Tensor {
  if (typeof o.eps !== 'number' || !Number.isFinite(o.eps) || o.eps < 0 || o.eps > 1)
    throw new ArgumentError(`Expected eps to be a number in [0, 1] but received ${describe(o.eps)}`);
  return noGrad(() =>
    scope(() => {
      const delta = learnedDelta(net, x, o.eps, o.precision ?? 'fp32');
      return project(x, x.add(delta), o);
    }),
  );
}

/** The model families an autoencoder may be (TAESD variants are told apart by their latent shape). */
export function modelFamilies(model: AutoencoderKL | AutoencoderTiny): string[] {
  if (model instanceof AutoencoderKL) return [`AutoencoderKL (${model.config.latent_channels} latent channels)`];
  return Object.entries(TAESD_VARIANTS)
    .filter(
      ([, v]) => v.latentChannels === model.config.latent_channels && v.midblockGn === model.config.use_midblock_gn,
    )
    .map(([k]) => k);
}

/**
 * Null when G was trained against `model`'s family; otherwise a sentence saying that the learned
 * perturbation is used against a model it was not trained for (a transfer, measured nowhere).
 */
export function learnedTargetNote(
  net: ImmunizerNet,
  model: AutoencoderKL | AutoencoderTiny,
  name: string,
): string | null {
  const families = modelFamilies(model);
  if (families.includes(net.config.target_model)) return null;
  return (
    `the learned immunizer was trained against ${net.config.target_model}, but ${name} is ` +
    `${families.length > 0 ? families.join(' or ') : 'another model'}: its perturbation only transfers, ` +
    `untrained for this model; measure the protection (--check) or use the encoder attack`
  );
}
