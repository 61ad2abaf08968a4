/**
 * DCT subband similarity (DSS; Balanov, Schwartz, Moshe & Huleihel 2015, DOI
 * 10.1109/ICIP.2015.7351172) as piq 0.8.0 `dss`: images scaled to [0, 255], RGB reduced to Y of
 * YIQ, cropped to multiples of 8, 8×8 block DCT; each subband compared by local variance
 * (3×3 Gaussian, σ 1.5, zero padding) pooled over its worst 5 % of positions (C = 1000 for DC,
 * 300 for AC; the DC band also by covariance), weighted by a Gaussian over frequency (σ 1.55,
 * weights below 0.01 dropped). piq adds float32 eps to every normalised weight, dropped ones
 * included, so identical images score 1 + (number of kept subbands)·eps ≈ 1 + 4e-6.
 * As piq, the values are not checked against [0, dataRange]. Differentiable almost everywhere.
 */
import { F, cat, scope, stack, tensor, type Tensor } from '../torch/index.js';
import {
  FLOAT32_EPS,
  MetricInputError,
  checkImagePair,
  checkReduction,
  gaussianFilter,
  pyRound,
  reduce,
  rgb2yiq,
  type MetricOptions,
} from './functional.js';

export interface DSSOptions extends MetricOptions {
  /** DCT block size. Default 8. */
  dctSize?: number;
  /** σ of the Gaussian weighting of subbands. Default 1.55. */
  sigmaWeight?: number;
  /** Size of the Gaussian window for local statistics. Default 3. */
  kernelSize?: number;
  /** σ of that window. Default 1.5. */
  sigmaSimilarity?: number;
  /** Fraction of the worst positions pooled, in (0, 1]. Default 0.05. */
  percentile?: number;
}

export function dss(x: Tensor, y: Tensor, o: DSSOptions = {}): Tensor {
  const dctSize = o.dctSize ?? 8;
  const sigmaWeight = o.sigmaWeight ?? 1.55;
  const kernelSize = o.kernelSize ?? 3;
  const sigmaSimilarity = o.sigmaSimilarity ?? 1.5;
  const percentile = o.percentile ?? 0.05;
  if (sigmaWeight === 0 || sigmaSimilarity === 0)
    throw new MetricInputError(
      'E_SHAPE',
      `dss: Gaussian sigmas must not be 0 (sigmaWeight ${sigmaWeight}, sigmaSimilarity ${sigmaSimilarity})`,
    );
  if (!(percentile > 0 && percentile <= 1))
    throw new MetricInputError('E_SHAPE', `dss: percentile must be in (0, 1] but is ${percentile}`);
  checkReduction('dss', o.reduction);
  const dr = checkImagePair('dss', x, y, o.dataRange, { channels: [1, 3], checkRange: false });
  for (const size of [dctSize, kernelSize]) {
    if (!Number.isSafeInteger(size) || size <= 0 || size > Math.min(x.shape[2]!, x.shape[3]!)) {
      throw new MetricInputError(
        'E_SHAPE',
        `dss: DCT and kernel sizes must be in (0, ${Math.min(x.shape[2]!, x.shape[3]!)}] (the image size) but are ${dctSize} and ${kernelSize}`,
      );
    }
  }
  return scope(() => {
    const a = x.div(dr).mul(255);
    const b = y.div(dr).mul(255);
    let aLum = a;
    let bLum = b;
    if (a.shape[1] === 3) {
      aLum = rgb2yiq(a).narrow(1, 0, 1);
      bLum = rgb2yiq(b).narrow(1, 0, 1);
    }
    const rows = dctSize * Math.floor(aLum.shape[2]! / dctSize);
    const cols = dctSize * Math.floor(aLum.shape[3]! / dctSize);
    aLum = aLum.narrow(2, 0, rows).narrow(3, 0, cols);
    bLum = bLum.narrow(2, 0, rows).narrow(3, 0, cols);
    const dctX = dctDecomp(aLum, dctSize);
    const dctY = dctDecomp(bLum, dctSize);
    // Gaussian weights over the (m, n) frequency plane, computed as piq does (in the images' dtype).
    const coords = tensor(
      Float64Array.from({ length: dctSize }, (_, i) => i + 1),
      [dctSize],
      { dtype: x.dtype, device: x.device },
    );
    const wq = coords.sub(0.5).pow(2);
    const weight = wq
      .unsqueeze(0)
      .add(wq.unsqueeze(1))
      .neg()
      .div(2 * sigmaWeight ** 2)
      .exp();
    const wv = weight.toArray();
    const threshold = 1e-2;
    const sims: Tensor[] = [];
    const n = x.shape[0]!;
    for (let m = 0; m < dctSize; m++) {
      for (let k = 0; k < dctSize; k++) {
        const i = m * dctSize + k;
        if (wv[i]! < threshold) {
          wv[i] = 0;
          sims.push(tensor(new Float32Array(n), [n], { device: x.device }));
          continue;
        }
        const sub = (t: Tensor) => t.slice(2, m, null, dctSize).slice(3, k, null, dctSize);
        sims.push(
          subbandSimilarity(sub(dctX), sub(dctY), m === 0 && k === 0, kernelSize, sigmaSimilarity, percentile).to(
            'float32',
          ),
        );
      }
    }
    const subbandSim = stack(sims, 1).view(n, dctSize, dctSize);
    const w = tensor(Float64Array.from(wv), [dctSize, dctSize], { dtype: x.dtype, device: x.device });
    const scores = subbandSim.mul(w.div(w.sum()).add(FLOAT32_EPS)).sum([1, 2]);
    return reduce('dss', scores, o.reduction);
  });
}

/** Similarity of one DCT subband (piq _subband_similarity). */
function subbandSimilarity(
  x: Tensor,
  y: Tensor,
  firstTerm: boolean,
  kernelSize: number,
  sigma: number,
  percentile: number,
): Tensor {
  // Constants from the paper: DC and AC stabilisers.
  const c = firstTerm ? 1000 : 300;
  return scope(() => {
    const kernel = gaussianFilter(kernelSize, sigma, x.dtype, x.device).view(1, 1, kernelSize, kernelSize);
    const pad = Math.floor(kernelSize / 2);
    const conv = (t: Tensor) => F.conv2d(t, kernel, null, { padding: pad });
    const muX = conv(x);
    const muY = conv(y);
    let sigmaXX = conv(x.mul(x)).sub(muX.pow(2));
    let sigmaYY = conv(y.mul(y)).sub(muY.pow(2));
    sigmaXX = sigmaXX.maskedFill(sigmaXX.lt(0), 0);
    sigmaYY = sigmaYY.maskedFill(sigmaYY.lt(0), 0);
    const left = sigmaXX.mul(sigmaYY).sqrt().mul(2).add(c).div(sigmaXX.add(sigmaYY).add(c));
    const count = pyRound(percentile * (left.shape[2]! * left.shape[3]!));
    const [sortedLeft] = left.flatten(1).sort();
    let similarity = sortedLeft.narrow(1, 0, count).mean(1);
    if (firstTerm) {
      const sigmaXY = conv(x.mul(y)).sub(muX.mul(muY));
      const right = sigmaXY.add(c).div(sigmaXX.mul(sigmaYY).sqrt().add(c));
      const [sortedRight] = right.flatten(1).sort();
      similarity = similarity.mul(sortedRight.narrow(1, 0, count).mean(1));
    }
    return similarity;
  });
}

function dctMatrix(size: number, like: Tensor): Tensor {
  return scope(() => {
    const opts = { dtype: like.dtype, device: like.device };
    const p = tensor(
      Float64Array.from({ length: size - 1 }, (_, i) => i + 1),
      [size - 1, 1],
      opts,
    );
    const q = tensor(
      Float64Array.from({ length: size }, (_, i) => 2 * i + 1),
      [size],
      opts,
    );
    const first = tensor(new Float64Array(size).fill(1), [1, size], opts).mul(Math.sqrt(1 / size));
    const rest = p
      .mul(Math.PI / (2 * size))
      .mul(q)
      .cos()
      .mul(Math.sqrt(2 / size));
    return cat([first, rest], 0);
  });
}

/** Blockwise 2-d DCT of (N, 1, H, W) with H, W multiples of `size`, laid out in place of the blocks (piq _dct_decomp). */
function dctDecomp(x: Tensor, size: number): Tensor {
  return scope(() => {
    const [bs, , h, w] = x.shape as [number, number, number, number];
    const xv = x.reshape(bs, 1, h, w);
    const blocks = F.unfold(xv, [size, size], { stride: [size, size] })
      .transpose(1, 2)
      .reshape(bs, 1, -1, size, size);
    const coeffs = dctMatrix(size, x);
    const out = coeffs.matmul(blocks).matmul(coeffs.transpose(0, 1));
    // F.fold with stride = kernel only places each block back: (bs, L, k·k) → (bs, 1, H, W).
    return out
      .reshape(bs, h / size, w / size, size, size)
      .permute(0, 1, 3, 2, 4)
      .reshape(bs, 1, h, w);
  });
}
