/**
 * The paper's Algorithm 1 (Salman et al. 2023, encoder attack) as written: a running δ,
 * updated by signed gradient steps and clipped to the budget, with x_im = clamp(x − δ, 0, 1).
 * It differs from pgd() only where the [0, 1] clamp bites (there δ keeps accumulating while the
 * pixel stays clamped). Kept for fidelity checks against the reference; `protect` uses pgd().
 */
import { grad, noGrad, scope, keep, type Tensor } from '../torch/index.js';
import type { ImageEncoder } from './encoder.js';

export interface Algorithm1State {
  xIm: Tensor;
  delta: Tensor;
}

export interface Algorithm1Step {
  loss: number;
  grad: Tensor;
  next: Algorithm1State;
}

/** l = ‖E(x_im) − z_targ‖²; δ ← clamp(δ + step·sign(∂l/∂x_im), −ε, ε); x_im ← clamp(x − δ, 0, 1). */
export function algorithm1Step(
  enc: ImageEncoder,
  x01: Tensor,
  state: Algorithm1State,
  zTarget: Tensor,
  eps: number,
  stepSize: number,
): Algorithm1Step {
  return scope(() => {
    const xi = state.xIm.detach().requiresGrad_();
    const l = enc.encode01(xi).sub(zTarget).square().sum();
    const [g] = grad(l, [xi]);
    const next = noGrad(() => {
      const delta = state.delta.add(g!.sign().mul(stepSize)).clamp(-eps, eps);
      return { delta, xIm: x01.sub(delta).clamp(0, 1) };
    });
    return { loss: l.item(), grad: keep(g!), next: { xIm: keep(next.xIm), delta: keep(next.delta) } };
  });
}

export interface Algorithm1Result {
  adv: Tensor;
  /** Loss before each update. */
  losses: number[];
}

export function algorithm1(
  enc: ImageEncoder,
  x01: Tensor,
  zTarget: Tensor,
  o: { eps: number; stepSize: number; steps: number },
): Algorithm1Result {
  let state: Algorithm1State = noGrad(() => ({ xIm: x01.detach().clone(), delta: x01.detach().mul(0) }));
  const losses: number[] = [];
  for (let n = 0; n < o.steps; n++) {
    const s = algorithm1Step(enc, x01, state, zTarget, o.eps, o.stepSize);
    s.grad.dispose();
    state.xIm.dispose();
    state.delta.dispose();
    state = s.next;
    losses.push(s.loss);
  }
  state.delta.dispose();
  return { adv: state.xIm, losses };
}
