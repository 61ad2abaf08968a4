/**
 * Purify and check: how much of a finished immunization survives what an adversary does before
 * editing. The measurement is checkProtection (src/robustness/check.ts), the one `immunize protect
 * --check` writes, so the API and the CLI report the same numbers for the same photo and suite;
 * this file only reads the job's files, pads like the attack, and shapes the API's JSON
 * (docs/api.md), which predates --check and which the web page reads.
 */
import { parsePurification } from '../purify/index.js';
import { reconstructForMeasure } from '../models/image-autoencoder.js';
import { readImage } from '../io/images.js';
import { psnr } from '../metrics/psnr.js';
import { loadAutoencoder } from '../models/resolve.js';
import { checkProtection, verdict, type Verdict } from '../robustness/check.js';
import { Generator, checkDevice, type Tensor } from '../torch/index.js';
import { ImmunizeError } from '../errors.js';

export interface CheckInput {
  original: string;
  immunized: string;
  size: number | null;
  modelId: string;
  modelSpec: string;
  device: string;
  maxPixels: number;
  purifications: string[];
  immunization: string;
  onStep?: (done: number, total: number) => void;
}

export interface PurificationReport {
  spec: string;
  /** PSNR(P(x + δ), x): what the purification costs the photo itself. */
  psnr: number;
  /** PSNR(D(E(P(x))), P(x)): the model on the purified clean photo. */
  cleanReconstructionPsnr: number;
  /** PSNR(D(E(P(x + δ))), P(x)): the model on the purified immunized photo (low = protected). */
  reconstructionPsnr: number;
  /** cleanReconstructionPsnr − reconstructionPsnr. */
  gapDb: number;
  /** gapDb / the gap with no purification, clipped to [0, 1] (checkProtection's `remaining`). */
  protectionRemaining: number;
  protected: boolean;
  verdict: Verdict;
}

/** A share of the protection, clipped to [0, 1] for display (checkProtection leaves it unclipped). */
export function clip01(x: number): number {
  return Math.min(1, Math.max(0, x));
}

export async function runCheck(c: CheckInput): Promise<Record<string, unknown>> {
  const specs = c.purifications.map((s) => parsePurification(s).spec);
  const device = checkDevice(c.device);
  const resize =
    c.size === null ? {} : { width: c.size, height: c.size, fit: 'inside' as const, withoutEnlargement: true };
  const orig = await readImage(c.original, { maxPixels: c.maxPixels, ...resize });
  const imm = await readImage(c.immunized, { maxPixels: c.maxPixels });
  const tensors: Tensor[] = [orig.tensor, imm.tensor];
  const model = await loadAutoencoder(c.modelSpec, { device });
  try {
    if (orig.width !== imm.width || orig.height !== imm.height)
      throw new ImmunizeError(
        'E_IMAGE_SIZE',
        `the result is ${imm.width}×${imm.height} but the photo is ${orig.width}×${orig.height}`,
      );
    // Padded like the attack (edge replication), reconstructed, cropped back, on the CPU.
    const rec = (x: Tensor): Tensor => reconstructForMeasure(model, x, { device });
    const total = specs.length + 1;
    const check = await checkProtection(rec, orig.tensor, imm.tensor, {
      model: c.modelId,
      suite: specs,
      autoencoder: model,
      onProgress: (done) => c.onStep?.(done, total),
    });
    const reports: PurificationReport[] = [];
    for (const row of check.rows) {
      // The purified photo's own PSNR: the same draws as inside checkProtection (generator seeded 0).
      const purified = await parsePurification(row.purification).apply(imm.tensor, {
        generator: new Generator({ seed: 0 }),
        autoencoder: model,
      });
      let p: number;
      try {
        p = psnr(purified, orig.tensor);
      } finally {
        purified.dispose();
      }
      reports.push({
        spec: row.purification,
        psnr: p,
        cleanReconstructionPsnr: row.cleanPsnr,
        reconstructionPsnr: row.immunizedPsnr,
        gapDb: row.gapDb,
        protectionRemaining: clip01(row.remaining),
        protected: verdict(row.remaining) === 'holds',
        verdict: row.verdict,
      });
    }
    c.onStep?.(total, total);
    return {
      immunization: c.immunization,
      model: c.modelId,
      metric: check.metric,
      clean: { reconstructionPsnr: check.none.cleanPsnr },
      immunized: {
        psnr: psnr(imm.tensor, orig.tensor),
        reconstructionPsnr: check.none.immunizedPsnr,
        gapDb: check.none.gapDb,
      },
      purifications: reports,
    };
  } finally {
    for (const t of tensors) t.dispose();
    model.dispose();
  }
}
