/**
 * MATLAB-style `imresize` (bicubic, a = −0.5, antialiased when shrinking, symmetric padding that
 * repeats the border sample), ported from piq 0.8.0 `piq/functional/resize.py` (itself from
 * sanghyun-son/bicubic_pytorch) step by step. SR-SIM resizes with it. As piq, it always computes
 * in float32 and casts back.
 */
import { ArgumentError } from '../errors.js';
import { F, linspace, scope, stack, tensor, type Tensor } from '../torch/index.js';

export type ImresizeOptions =
  { scale: number; sizes?: undefined } | { sizes: readonly [number, number]; scale?: undefined };

/** Resizes (N, C, H, W) (or (C, H, W), (H, W)) images by a scale or to a size. */
export function imresize(x: Tensor, o: ImresizeOptions): Tensor {
  if ((o.scale === undefined) === (o.sizes === undefined))
    throw new ArgumentError('imresize: give exactly one of scale and sizes');
  return scope(() => {
    const shape = x.shape;
    if (shape.length < 2 || shape.length > 4)
      throw new ArgumentError(`imresize: ${shape.length}-d tensors are not supported`);
    const [h, w] = shape.slice(-2) as [number, number];
    let sizes: [number, number];
    let scales: [number, number];
    if (o.scale !== undefined) {
      sizes = [Math.ceil(h * o.scale), Math.ceil(w * o.scale)];
      scales = [o.scale, o.scale];
    } else {
      sizes = [o.sizes![0], o.sizes![1]];
      scales = [sizes[0] / h, sizes[1] / w];
    }
    const dtype = x.dtype;
    let t = x.reshape(-1, 1, h, w).float();
    t = resize1d(t, -2, sizes[0], scales[0]);
    t = resize1d(t, -1, sizes[1], scales[1]);
    t = t.view([...shape.slice(0, -2), t.shape[2]!, t.shape[3]!]);
    return dtype === 'float32' ? t : t.to(dtype);
  });
}

/** Keys' cubic kernel with a = −0.5 (piq cubic_contribution), term by term. */
function cubicContribution(x: Tensor, a = -0.5): Tensor {
  return scope(() => {
    const ax = x.abs();
    const ax2 = ax.mul(ax);
    const ax3 = ax.mul(ax2);
    const range01 = ax.le(1);
    const range12 = ax.gt(1).logicalAnd(ax.le(2));
    const c01 = ax3
      .mul(a + 2)
      .sub(ax2.mul(a + 3))
      .add(1)
      .mul(range01.to(x.dtype));
    const c12 = ax3
      .mul(a)
      .sub(ax2.mul(5 * a))
      .add(ax.mul(8 * a))
      .sub(4 * a)
      .mul(range12.to(x.dtype));
    return c01.add(c12);
  });
}

/** MATLAB's symmetric padding along dim −2 or −1: [a, b, c, d] → [a, a, b, c, d, d]. */
function reflectPadding(x: Tensor, dim: number, pre: number, post: number): Tensor {
  const n = x.shape[x.ndim + dim]!;
  const idx: number[] = [];
  for (let q = 0; q < pre; q++) idx.push(pre - 1 - q);
  for (let i = 0; i < n; i++) idx.push(i);
  for (let p = 0; p < post; p++) idx.push(n - 1 - p);
  if (idx.some((i) => i < 0 || i >= n))
    throw new ArgumentError(`imresize: the image (${n} px) is too small for a padding of ${pre}/${post}`);
  return scope(() =>
    x.indexSelect(x.ndim + dim, tensor(BigInt64Array.from(idx, BigInt), [idx.length], { device: x.device })),
  );
}

function resize1d(x: Tensor, dim: -2 | -1, size: number, scale: number): Tensor {
  if (scale === 1) return x;
  let kernelSize = 4;
  let aa = 1;
  if (scale < 1) {
    aa = scale;
    kernelSize = Math.ceil(kernelSize / aa);
  }
  kernelSize += 2;
  return scope(() => {
    const pos = linspace(0, size - 1, size, { dtype: x.dtype, device: x.device })
      .add(0.5)
      .div(scale)
      .sub(0.5);
    const base = pos
      .floor()
      .sub(Math.floor(kernelSize / 2))
      .add(1);
    const dist = pos.sub(base);
    const buffer = stack(Array.from({ length: kernelSize }, (_, i) => dist.sub(i))).mul(aa);
    const cw = cubicContribution(buffer);
    const weight = cw.div(cw.sum(0, true));
    // get_padding: integer bounds of the taps, shifted so that they start at 0.
    const b = base.to('int64').toArray();
    const rMin = Math.min(...b);
    const rMax = Math.max(...b) + kernelSize - 1;
    const xSize = x.shape[x.ndim + dim]!;
    const pre = rMin <= 0 ? -rMin : 0;
    const post = rMax >= xSize ? rMax - xSize + 1 : 0;
    const baseIdx = tensor(
      BigInt64Array.from(b, (v) => BigInt(v + pre)),
      [b.length],
      { device: x.device },
    );
    const xPad = reflectPadding(x, dim, pre, post);
    // reshape_tensor: every window of kernelSize along dim, as channels.
    const [hp, wp] = [xPad.shape[2]!, xPad.shape[3]!];
    const k: [number, number] = dim === -2 ? [kernelSize, 1] : [1, kernelSize];
    const hOut = dim === -2 ? hp - kernelSize + 1 : hp;
    const wOut = dim === -2 ? wp : wp - kernelSize + 1;
    const unfolded = F.unfold(xPad, k);
    const windows = unfolded.view(unfolded.shape[0]!, -1, hOut, wOut);
    let sample: Tensor;
    let wv: Tensor;
    if (dim === -2) {
      sample = windows.index([null, null, baseIdx]);
      wv = weight.view(1, kernelSize, sample.shape[2]!, 1);
    } else {
      sample = windows.index([null, null, null, baseIdx]);
      wv = weight.view(1, kernelSize, 1, sample.shape[3]!);
    }
    return sample.mul(wv).sum(1, true);
  });
}
