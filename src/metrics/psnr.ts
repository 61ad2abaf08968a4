/** PSNR as piq computes it: images scaled by data_range, −10·log10(MSE + 1e-8), mean over the batch. */
import { noGrad, scope, type Tensor } from '../torch/index.js';

export function psnr(x: Tensor, y: Tensor, dataRange = 1): number {
  return noGrad(() => scope(() => {
    const d = x.div(dataRange).sub(y.div(dataRange));
    const dims = Array.from({ length: d.ndim - 1 }, (_, i) => i + 1);
    const mse = d.square().mean(dims);
    return mse.add(1e-8).log10().mul(-10).mean().item();
  }));
}
