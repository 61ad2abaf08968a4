/**
 * Tiled encode/decode for images larger than memory allows: overlapping tiles, each run through
 * the model, blended with feathered weights (a linear ramp across each overlap) so seams vanish.
 * Built from differentiable tensor ops, so gradients flow through it too.
 */
import { ArgumentError } from '../errors.js';
import { scope, tensor, zeros, type Tensor } from '../torch/index.js';

export interface TileOptions {
  /** Tile size in input pixels (a multiple of the model's scale step). */
  tile: number;
  /** Overlap between neighbouring tiles, in input pixels. */
  overlap: number;
}

function starts(size: number, tile: number, stride: number): number[] {
  if (size <= tile) return [0];
  const s: number[] = [];
  for (let p = 0; p + tile < size; p += stride) s.push(p);
  s.push(size - tile);
  return [...new Set(s)];
}

/** 1-d weights: 1 inside, ramping linearly to ~0 across `overlap` at edges that touch another tile. */
function ramp(len: number, overlap: number, rampStart: boolean, rampEnd: boolean): Float32Array {
  const w = new Float32Array(len).fill(1);
  for (let i = 0; i < Math.min(overlap, len); i++) {
    const v = (i + 1) / (overlap + 1);
    if (rampStart) w[i] = Math.min(w[i]!, v);
    if (rampEnd) w[len - 1 - i] = Math.min(w[len - 1 - i]!, v);
  }
  return w;
}

/**
 * Applies `fn` (input tile → output tile, spatial size scaled by `scale`, e.g. 1/8 for an
 * encoder, 8 for a decoder) over overlapping tiles and blends the results.
 */
export function tiled(x: Tensor, fn: (tile: Tensor) => Tensor, scale: number, o: TileOptions): Tensor {
  const [n, , h, w] = x.shape as [number, number, number, number];
  if (!(o.tile > 0) || o.overlap < 0 || o.overlap >= o.tile)
    throw new ArgumentError(`tiling: need 0 <= overlap < tile, received tile=${o.tile}, overlap=${o.overlap}`);
  if (h <= o.tile && w <= o.tile) return fn(x);
  const stride = o.tile - o.overlap;
  const ys = starts(h, o.tile, stride);
  const xs = starts(w, o.tile, stride);
  return scope(() => {
    let acc: Tensor | null = null;
    let wsum: Tensor | null = null;
    const ov = Math.round(o.overlap * scale);
    for (const y0 of ys) {
      for (const x0 of xs) {
        const th = Math.min(o.tile, h - y0);
        const tw = Math.min(o.tile, w - x0);
        const out = scope(() => fn(x.narrow(2, y0, th).narrow(3, x0, tw)));
        const [, c, oh, ow] = out.shape as [number, number, number, number];
        acc ??= zeros([n, c, Math.round(h * scale), Math.round(w * scale)], { dtype: out.dtype, device: out.device });
        wsum ??= zeros([1, 1, Math.round(h * scale), Math.round(w * scale)], { dtype: out.dtype, device: out.device });
        const wy = ramp(oh, ov, y0 > 0, y0 + th < h);
        const wx = ramp(ow, ov, x0 > 0, x0 + tw < w);
        const oy = Math.round(y0 * scale);
        const ox = Math.round(x0 * scale);
        const weight = scope(() => {
          const a = tensor(wy).reshape(1, 1, oh, 1);
          const b = tensor(wx).reshape(1, 1, 1, ow);
          return a.mul(b).to({ dtype: out.dtype, device: out.device });
        });
        // In place on views of the accumulators: memory stays one output image, and autograd
        // records the slice updates (CopySlices) so gradients reach every tile.
        scope(() => {
          acc!.narrow(2, oy, oh).narrow(3, ox, ow).add_(out.mul(weight));
          wsum!.narrow(2, oy, oh).narrow(3, ox, ow).add_(weight);
        });
      }
    }
    return acc!.div(wsum!);
  });
}
