// kind "jpeg": PIL JPEG round trips. Encoders differ, so results are compared by PSNR against the
// original: a real JPEG (sharp, libjpeg-turbo mode, same quality and subsampling) within the
// case's standard-encoder tolerance of PIL's PSNR, the differentiable JPEG within its own at
// q ≥ 50 (both rounding modes), and the IJG quantisation tables as case.json lists them.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadSafetensors } from '../../../src/io/tensors.js';
import { jpeg, type ChromaSubsampling } from '../../../src/purify/codecs.js';
import {
  diffJpeg,
  quantizationTables,
  scaleQuantTable,
  IJG_CHROMA_Q50,
  IJG_LUMA_Q50,
} from '../../../src/purify/diff-jpeg.js';
import { noGrad, scope, type Tensor } from '../../../src/torch/index.js';
import type { CaseRunner } from './types.js';

/** PSNR in dB of images in [0, 1]. */
export function psnrDb(a: Tensor, b: Tensor): number {
  return noGrad(() => scope(() => 10 * Math.log10(1 / a.to('float64').sub(b.to('float64')).square().mean().item())));
}

/** "within ~0.5 dB … within 1 dB for a differentiable approximation at q >= 50" → [0.5, 1, 50]. */
export function jpegTolerances(text: unknown): { standardDb: number; differentiableDb: number; minQuality: number } {
  const s = typeof text === 'string' ? text : '';
  const std = /within ~?\s*([\d.]+)\s*dB/i.exec(s);
  const diff = /within ~?\s*([\d.]+)\s*dB[^;]*differentiable/i.exec(s.slice((std?.index ?? -1) + 1));
  const q = /q\s*>=?\s*(\d+)/i.exec(s);
  return {
    standardDb: std ? Number(std[1]) : 0.5,
    differentiableDb: diff ? Number(diff[1]) : 1,
    minQuality: q ? Number(q[1]) : 50,
  };
}

function subsamplingOf(reference: unknown): ChromaSubsampling {
  const s = String(reference ?? '');
  return /subsampling=0|4:4:4/.test(s) ? '4:4:4' : '4:2:0';
}

const run: CaseRunner = async ({ dir, spec }, t) => {
  const io = loadSafetensors(join(dir, 'io.safetensors'));
  const tol = jpegTolerances(spec.tolerances);
  const chroma = subsamplingOf(spec.reference);
  const ref = (k: string): Tensor => {
    const v = io.get(k);
    if (v === undefined) throw new Error(`io.safetensors has no '${k}'`);
    return v;
  };
  try {
    const qt = spec.quant_tables as { luma_q50?: number[]; chroma_q50?: number[] } | undefined;
    if (qt !== undefined) {
      await t.test('IJG quantisation tables', () => {
        if (qt.luma_q50) assert.deepEqual([...IJG_LUMA_Q50], qt.luma_q50, 'luma base table differs');
        if (qt.chroma_q50) assert.deepEqual([...IJG_CHROMA_Q50], qt.chroma_q50, 'chroma base table differs');
        assert.deepEqual(quantizationTables(50).luma, [...IJG_LUMA_Q50], 'quality 50 must give the base table');
        // The case's formula, written out independently, at every quality.
        for (let q = 1; q <= 100; q++) {
          const s = q < 50 ? Math.floor(5000 / q) : 200 - 2 * q;
          const want = IJG_LUMA_Q50.map((b) => Math.min(255, Math.max(1, Math.floor((b * s + 50) / 100))));
          assert.deepEqual(scaleQuantTable(IJG_LUMA_Q50, q), want, `quality ${q}`);
        }
      });
    }
    const entries = Object.entries(spec.psnr_vs_original_db as Record<string, number>);
    for (const [key, pilDb] of entries) {
      const m = /^(.*):q(\d+)$/.exec(key);
      if (m === null) throw new Error(`psnr_vs_original_db key '${key}' is not '<image>:q<quality>'`);
      const [image, quality] = [m[1]!, Number(m[2])];
      await t.test(key, async () => {
        const x = ref(`${image}:original`);
        const pil = ref(key);
        const stored = psnrDb(pil, x);
        assert.ok(
          Math.abs(stored - pilDb) < 0.01,
          `${key}: PSNR of the stored PIL result is ${stored.toFixed(3)} dB, case.json says ${pilDb}`,
        );
        const real = await jpeg(x, { quality, chromaSubsampling: chroma });
        try {
          const realDb = psnrDb(real, x);
          const vsPil = noGrad(() => scope(() => real.sub(pil).abs().max().item() * 255));
          t.diagnostic(
            `${key}: PIL ${pilDb.toFixed(3)} dB, sharp ${realDb.toFixed(3)} dB (max |sharp − PIL| ${vsPil.toFixed(0)}/255)`,
          );
          assert.ok(
            Math.abs(realDb - pilDb) <= tol.standardDb,
            `${key}: sharp JPEG gives ${realDb.toFixed(3)} dB, PIL ${pilDb.toFixed(3)} dB; differ by more than ${tol.standardDb} dB`,
          );
        } finally {
          real.dispose();
        }
        if (quality >= tol.minQuality) {
          for (const rounding of ['ste', 'cubic'] as const) {
            const db = noGrad(() =>
              scope(() => psnrDb(diffJpeg(x, { quality, rounding, chromaSubsampling: chroma }), x)),
            );
            t.diagnostic(`${key}: diffJpeg (${rounding}) ${db.toFixed(3)} dB (Δ ${(db - pilDb).toFixed(3)})`);
            assert.ok(
              Math.abs(db - pilDb) <= tol.differentiableDb,
              `${key}: diffJpeg (${rounding}) gives ${db.toFixed(3)} dB, PIL ${pilDb.toFixed(3)} dB; differ by more than ${tol.differentiableDb} dB`,
            );
          }
        }
      });
    }
  } finally {
    for (const v of io.values()) v.dispose();
  }
};
export default run;
