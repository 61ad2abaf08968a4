/** Autograd as in PyTorch: grad() = torch.autograd.grad, backward(), grad mode switches. */
import { native, type Handle } from './native.js';
import { torchError } from './ops.js';
import { Tensor } from './tensor.js';

export interface GradOptions {
  /** Seeds for non-scalar outputs (torch's grad_outputs); null entries mean ones for scalars. */
  gradOutputs?: readonly (Tensor | null)[];
  /** Keep the graph for another backward pass; defaults to createGraph. */
  retainGraph?: boolean;
  /** Build a graph of the gradient itself (for higher-order derivatives). */
  createGraph?: boolean;
  /** Return null for inputs the outputs do not depend on instead of throwing. */
  allowUnused?: boolean;
}

const list = (t: Tensor | readonly Tensor[]): readonly Tensor[] => (t instanceof Tensor ? [t] : t);

/** d(sum of outputs)/d(inputs), one tensor per input (null for unused inputs with allowUnused). */
export function grad(
  outputs: Tensor | readonly Tensor[],
  inputs: Tensor | readonly Tensor[],
  opts: GradOptions = {},
): (Tensor | null)[] {
  const outs = list(outputs).map((t) => t.handle);
  const ins = list(inputs).map((t) => t.handle);
  const seeds = (opts.gradOutputs ?? []).map((t) => (t === null ? null : t.handle));
  let r: (Handle | null)[];
  try {
    r = native.grad(outs, ins, seeds, opts.retainGraph, opts.createGraph ?? false, opts.allowUnused ?? false);
  } catch (e) {
    throw torchError(e);
  }
  return r.map((h) => (h === null ? null : new Tensor(h)));
}

/** Like grad() for a single input that must be used: returns the tensor itself. */
export function gradOf(output: Tensor, input: Tensor, opts: Omit<GradOptions, 'allowUnused'> = {}): Tensor {
  return grad(output, input, opts)[0] as Tensor;
}

/** Accumulates gradients of `tensors` into the leaves' .grad (torch.autograd.backward). */
export function backward(
  tensors: Tensor | readonly Tensor[],
  grads?: readonly (Tensor | null)[],
  opts: { retainGraph?: boolean; createGraph?: boolean } = {},
): void {
  try {
    native.backward(
      list(tensors).map((t) => t.handle),
      (grads ?? []).map((g) => (g === null ? null : g.handle)),
      opts.retainGraph,
      opts.createGraph ?? false,
    );
  } catch (e) {
    throw torchError(e);
  }
}

export function isGradEnabled(): boolean {
  return native.isGradEnabled();
}
export function setGradEnabled(on: boolean): void {
  native.setGradEnabled(on);
}

function withGradMode<T>(on: boolean, fn: () => T): T {
  const prev = native.isGradEnabled();
  native.setGradEnabled(on);
  try {
    const r = fn();
    if (r !== null && typeof r === 'object' && typeof (r as { then?: unknown }).then === 'function') {
      throw new Error(
        'noGrad/enableGrad take a synchronous function: grad mode is thread state and would leak into other async work',
      );
    }
    return r;
  } finally {
    native.setGradEnabled(prev);
  }
}

/** Runs fn without recording a graph (torch.no_grad). */
export function noGrad<T>(fn: () => T): T {
  return withGradMode(false, fn);
}
/** Runs fn with recording on, even inside noGrad (torch.enable_grad). */
export function enableGrad<T>(fn: () => T): T {
  return withGradMode(true, fn);
}
