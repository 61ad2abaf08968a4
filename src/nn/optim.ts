/**
 * Adam (Kingma & Ba 2015), the one implementation in the project: PGD's `optimizer: 'adam'`
 * steps an image with `adamDirection`, the learned immunizer's training steps its parameters with
 * `Adam`. Moments and arithmetic stay in the parameters' dtype (fp32 for training, even under a
 * bf16 autocast: parameters and optimiser state are never reduced).
 */
import { ArgumentError, describe } from '../errors.js';
import { keep, noGrad, scope, type Tensor } from '../torch/index.js';

export interface AdamHyper {
  /** Default 0.9. */
  beta1?: number;
  /** Default 0.999. */
  beta2?: number;
  /** Default 1e-8. */
  eps?: number;
}

export interface AdamMoments {
  /** First moment (owned by the caller). */
  m: Tensor;
  /** Second moment (owned by the caller). */
  v: Tensor;
}

/**
 * One Adam update for gradient `g` at step `t` (1-based): the new moments (the old ones are not
 * disposed) and the bias-corrected direction m̂ / (√v̂ + ε), which the caller scales by its learning
 * rate. `prev` null means the moments start at zero.
 */
export function adamDirection(
  g: Tensor,
  prev: AdamMoments | null,
  t: number,
  h: AdamHyper = {},
): { direction: Tensor; moments: AdamMoments } {
  const b1 = h.beta1 ?? 0.9;
  const b2 = h.beta2 ?? 0.999;
  const e = h.eps ?? 1e-8;
  return noGrad(() =>
    scope(() => {
      const m = prev === null ? g.mul(1 - b1) : prev.m.mul(b1).add(g.mul(1 - b1));
      const v = prev === null ? g.square().mul(1 - b2) : prev.v.mul(b2).add(g.square().mul(1 - b2));
      const mHat = m.div(1 - b1 ** t);
      const vHat = v.div(1 - b2 ** t);
      return { direction: mHat.div(vHat.sqrt().add(e)), moments: { m, v } };
    }),
  );
}

/** Adam on a list of parameter tensors, updated in place; its state can be saved and restored. */
export class Adam implements Disposable {
  readonly params: readonly Tensor[];
  lr: number;
  readonly hyper: AdamHyper;
  #step = 0;
  #moments: (AdamMoments | null)[];

  constructor(params: readonly Tensor[], o: { lr: number } & AdamHyper) {
    if (typeof o.lr !== 'number' || !Number.isFinite(o.lr) || o.lr <= 0)
      throw new ArgumentError(`Expected a positive learning rate but received ${describe(o.lr)}`);
    this.params = params;
    this.lr = o.lr;
    this.hyper = { beta1: o.beta1, beta2: o.beta2, eps: o.eps };
    this.#moments = params.map(() => null);
  }

  /** Steps taken so far. */
  get stepCount(): number {
    return this.#step;
  }

  /** p ← p − lr · m̂/(√v̂ + ε) for every parameter with a gradient in `grads` (same order as params). */
  step(grads: readonly (Tensor | null)[]): void {
    if (grads.length !== this.params.length)
      throw new ArgumentError(`Adam.step: ${grads.length} gradients for ${this.params.length} parameters`);
    this.#step++;
    noGrad(() => {
      grads.forEach((g, k) => {
        if (g === null) return;
        const prev = this.#moments[k] ?? null;
        const { direction, moments } = adamDirection(g, prev, this.#step, this.hyper);
        this.params[k]!.sub_(direction, this.lr);
        direction.dispose();
        keep(moments.m);
        keep(moments.v);
        prev?.m.dispose();
        prev?.v.dispose();
        this.#moments[k] = moments;
      });
    });
  }

  /** The state as named tensors (copies the caller owns) plus the step count. */
  state(): { step: number; tensors: Map<string, Tensor> } {
    const tensors = new Map<string, Tensor>();
    this.#moments.forEach((mv, k) => {
      if (mv === null) return;
      tensors.set(`m.${k}`, mv.m.clone());
      tensors.set(`v.${k}`, mv.v.clone());
    });
    return { step: this.#step, tensors };
  }

  /** Restores `state()`'s output (the tensors are copied; the caller still owns them). */
  loadState(step: number, tensors: ReadonlyMap<string, Tensor>): void {
    this.dispose();
    this.#step = step;
    this.#moments = this.params.map((p, k) => {
      const m = tensors.get(`m.${k}`);
      const v = tensors.get(`v.${k}`);
      if (m === undefined || v === undefined) return null;
      if (m.shape.join() !== p.shape.join() || v.shape.join() !== p.shape.join())
        throw new ArgumentError(
          `Adam state for parameter ${k} has shape [${m.shape.join(', ')}] but the parameter has [${p.shape.join(', ')}]`,
        );
      return { m: keep(scope(() => m.to(p.dtype).clone())), v: keep(scope(() => v.to(p.dtype).clone())) };
    });
  }

  dispose(): void {
    for (const mv of this.#moments) {
      mv?.m.dispose();
      mv?.v.dispose();
    }
    this.#moments = this.params.map(() => null);
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
}
