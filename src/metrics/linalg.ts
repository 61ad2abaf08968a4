/**
 * The few ATen linear-algebra and distance operators the feature metrics need and the tensor
 * API does not wrap yet: linalg_eig, linalg_inv, cdist, isclose. They go through the same
 * boxed-dispatcher `op()` as every other wrapper (docs/engine.md); they could move to
 * src/torch/ once another module needs them.
 */
import { op } from '../torch/ops.js';
import { internal, type Tensor } from '../torch/tensor.js';

const { wrapResult, wrapPair } = internal;
const O = {
  eig: op('aten::linalg_eig'),
  inv: op('aten::linalg_inv'),
  cdist: op('aten::cdist'),
  isclose: op('aten::isclose'),
};

/** Eigenvalues and right eigenvectors of a square (non-symmetric) matrix, complex (torch.linalg.eig). */
export function linalgEig(a: Tensor): [Tensor, Tensor] {
  return wrapPair(O.eig(a.handle));
}

/** Matrix inverse (torch.linalg.inv). */
export function linalgInv(a: Tensor): Tensor {
  return wrapResult(O.inv(a.handle));
}

/**
 * Pairwise p-norm distances between the rows of a [.., P, M] and b [.., R, M] (torch.cdist with
 * its default compute mode: the matrix-product form when P or R exceeds 25).
 */
export function cdist(a: Tensor, b: Tensor, p = 2): Tensor {
  return wrapResult(O.cdist(a.handle, b.handle, p, null));
}

/** |a − b| ≤ atol + rtol·|b| elementwise (torch.isclose). */
export function isclose(a: Tensor, b: Tensor, rtol = 1e-5, atol = 1e-8): Tensor {
  return wrapResult(O.isclose(a.handle, b.handle, rtol, atol, false));
}
