/**
 * Differentiable JPEG (after Shin & Song 2017, "JPEG-resistant adversarial images", and Reich
 * et al. 2024, "Differentiable JPEG: the devil is in the details"): the baseline JPEG codec with
 * every step a tensor operation, so an attack can back-propagate through compression (EOT).
 *
 *   RGB → YCbCr (JFIF, full range) → pad to whole MCUs by edge replication (libjpeg's
 *   expand_right/bottom_edge) → chroma 4:2:0 by 2×2 averaging (libjpeg's h2v2_downsample)
 *   → level shift −128 → 8×8 DCT-II as D·B·Dᵀ → divide by the IJG tables scaled by quality →
 *   round (differentiably) → multiply back → IDCT Dᵀ·C·D → +128, clamp to [0, 255] (libjpeg's
 *   range limit) → chroma up-sampling by the triangle filter (libjpeg's "fancy" h2v2 up-sampling,
 *   which is bilinear ×2 with align_corners=False) → RGB → crop → /255 → clamp to [0, 1].
 *
 * What it leaves out: the encoder's fixed-point DCT and the decoder's 8-bit rounding of each
 * component and of the output pixels (≈ 0.3 grey levels RMS), and entropy coding (lossless).
 * Against sharp's real JPEG it stays within 1 dB PSNR at qualities 50–95 (test/purify).
 */
import { ArgumentError, describe } from '../errors.js';
import { cat, F, scope, tensor, type Tensor } from '../torch/index.js';
import { checkImageBatch, checkNumber } from './common.js';

/** ITU-T T.81 Annex K.1 luminance table (quality 50), row-major (row = vertical frequency). */
export const IJG_LUMA_Q50: readonly number[] = [
  16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51,
  87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92, 49, 64, 78, 87, 103, 121, 120, 101,
  72, 92, 95, 98, 112, 100, 103, 99,
];

/** ITU-T T.81 Annex K.2 chrominance table (quality 50). */
export const IJG_CHROMA_Q50: readonly number[] = [
  17,
  18,
  24,
  47,
  99,
  99,
  99,
  99,
  18,
  21,
  26,
  66,
  99,
  99,
  99,
  99,
  24,
  26,
  56,
  99,
  99,
  99,
  99,
  99,
  47,
  66,
  99,
  99,
  99,
  99,
  99,
  99,
  ...Array<number>(32).fill(99),
];

/**
 * libjpeg's jpeg_quality_scaling + jpeg_add_quant_table (jcparam.c) with force_baseline:
 * s = 5000/q for q < 50 else 200 − 2q (integer division); entry = clamp(⌊(base·s + 50)/100⌋, 1, 255).
 */
export function scaleQuantTable(base: readonly number[], quality: number): number[] {
  checkNumber('scaleQuantTable', 'quality', quality, { min: 1, max: 100, integer: true });
  const s = quality < 50 ? Math.floor(5000 / quality) : 200 - 2 * quality;
  return base.map((b) => Math.min(255, Math.max(1, Math.floor((b * s + 50) / 100))));
}

/** The luminance and chrominance tables libjpeg uses at `quality`. */
export function quantizationTables(quality: number): { luma: number[]; chroma: number[] } {
  return { luma: scaleQuantTable(IJG_LUMA_Q50, quality), chroma: scaleQuantTable(IJG_CHROMA_Q50, quality) };
}

/**
 * How the quantiser rounds:
 * - 'ste': straight-through (Bengio et al. 2013): exact rounding forward, identity backward;
 * - 'cubic': Shin & Song's smooth approximation round(v) + (v − round(v))³, forward and backward;
 * - 'none': no rounding at all (only the linear part of the codec: for tests and ablations).
 */
export type DiffRounding = 'ste' | 'cubic' | 'none';

export interface DiffJpegOptions {
  /** 1–100, as libjpeg's quality. */
  quality: number;
  /** Default 'ste'. */
  rounding?: DiffRounding;
  /** Default '4:2:0'. */
  chromaSubsampling?: '4:2:0' | '4:4:4';
}

/** The orthonormal 8-point DCT-II matrix D[k][n] = α(k)·cos((2n + 1)kπ/16); JPEG's FDCT is D·B·Dᵀ. */
export function dctMatrix(): Float64Array {
  const d = new Float64Array(64);
  for (let k = 0; k < 8; k++) {
    const a = k === 0 ? Math.sqrt(1 / 8) : Math.sqrt(2 / 8);
    for (let n = 0; n < 8; n++) d[k * 8 + n] = a * Math.cos(((2 * n + 1) * k * Math.PI) / 16);
  }
  return d;
}

// JFIF (ITU-T T.871) full-range conversion, as libjpeg's jccolor.c / jdcolor.c.
const RGB_TO_YCBCR = [0.299, 0.587, 0.114, -0.168735892, -0.331264108, 0.5, 0.5, -0.418687589, -0.081312411];
const YCBCR_TO_RGB = [1, 0, 1.402, 1, -0.344136286, -0.714136286, 1, 1.772, 0];

/** Differentiable rounding `v → round(v)` of the chosen kind. */
export function diffRound(v: Tensor, kind: DiffRounding): Tensor {
  return scope(() => {
    if (kind === 'none') return v.alias();
    const r = v.round();
    if (kind === 'ste') return v.add(r.sub(v).detach());
    return r.add(v.sub(r).pow(3)); // round() has a zero derivative, so d/dv = 3(v − round v)²
  });
}

/** [N, C, H, W] (H, W multiples of 8) → [N, C, H/8, W/8, 8, 8]. */
function blocks(x: Tensor): Tensor {
  const [n, c, h, w] = x.shape as [number, number, number, number];
  return x.reshape(n, c, h / 8, 8, w / 8, 8).permute(0, 1, 2, 4, 3, 5);
}
function unblocks(b: Tensor): Tensor {
  const [n, c, bh, bw] = b.shape as [number, number, number, number];
  return b.permute(0, 1, 2, 4, 3, 5).reshape(n, c, bh * 8, bw * 8);
}

/** Quantises one plane group ([N, C, H, W], level-shifted) with table `q` and returns it reconstructed. */
function codePlanes(planes: Tensor, d: Tensor, q: Tensor, rounding: DiffRounding): Tensor {
  return scope(() => {
    const coef = d.matmul(blocks(planes)).matmul(d.mT);
    const rec = diffRound(coef.div(q), rounding).mul(q);
    return unblocks(d.mT.matmul(rec).matmul(d));
  });
}

/** A JPEG round trip at `quality`, differentiable in the image. Shape, dtype and device are kept. */
export function diffJpeg(x: Tensor, o: DiffJpegOptions): Tensor {
  checkImageBatch(x, 'diffJpeg', 3);
  if (o === null || typeof o !== 'object')
    throw new ArgumentError(`diffJpeg: expected options { quality } but received ${describe(o)}`);
  const quality = checkNumber('diffJpeg', 'quality', o.quality, { min: 1, max: 100, integer: true });
  const rounding = o.rounding ?? 'ste';
  if (!['ste', 'cubic', 'none'].includes(rounding))
    throw new ArgumentError(`diffJpeg: expected rounding 'ste', 'cubic' or 'none' but received ${describe(rounding)}`);
  const sub = o.chromaSubsampling ?? '4:2:0';
  if (sub !== '4:2:0' && sub !== '4:4:4')
    throw new ArgumentError(`diffJpeg: expected chromaSubsampling '4:2:0' or '4:4:4' but received ${describe(sub)}`);
  const { luma, chroma } = quantizationTables(quality);
  const [, , h, w] = x.shape as [number, number, number, number];
  const mcu = sub === '4:2:0' ? 16 : 8;
  const [ph, pw] = [Math.ceil(h / mcu) * mcu - h, Math.ceil(w / mcu) * mcu - w];
  return scope(() => {
    const like = { dtype: x.dtype, device: x.device };
    const f64 = { dtype: 'float64' as const };
    const d = tensor(dctMatrix(), [8, 8], f64).to(like);
    const qY = tensor(luma, [8, 8], f64).to(like);
    const qC = tensor(chroma, [8, 8], f64).to(like);
    const toYcc = tensor(RGB_TO_YCBCR, [3, 3, 1, 1], f64).to(like);
    const toRgb = tensor(YCBCR_TO_RGB, [3, 3, 1, 1], f64).to(like);
    const center = tensor([0, 128, 128], [3], f64).to(like);

    let img = x.mul(255);
    if (ph > 0 || pw > 0) img = F.pad(img, [0, pw, 0, ph], 'replicate');
    const ycc = F.conv2d(img, toYcc, center); // Y, Cb + 128, Cr + 128
    const y = ycc.narrow(1, 0, 1).sub(128);
    let c = ycc.narrow(1, 1, 2).sub(128);
    if (sub === '4:2:0') c = F.avgPool2d(c, 2);
    const yRec = codePlanes(y, d, qY, rounding).add(128).clamp(0, 255);
    let cRec = codePlanes(c, d, qC, rounding).add(128).clamp(0, 255);
    if (sub === '4:2:0') cRec = F.interpolate(cRec, { scaleFactor: 2, mode: 'bilinear', alignCorners: false });
    const rgb = F.conv2d(cat([yRec, cRec.sub(128)], 1), toRgb);
    return rgb.narrow(2, 0, h).narrow(3, 0, w).div(255).clamp(0, 1);
  });
}
