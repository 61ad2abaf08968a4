/**
 * Purify and check: applies an adversary's purifications (src/purify) to an immunized photo and
 * measures how much protection survives, through the autoencoder the photo was protected against.
 * The measure is the one `immunize protect` reports: PSNR of the model's reconstruction D(E(x))
 * against the original photo. Immunization drives it down; a purification that removes the
 * protection brings it back up towards the clean photo's value.
 */
import { parsePurification, purify, reconstruct } from '../purify/index.js';
import { readImage } from '../io/images.js';
import { psnr } from '../metrics/psnr.js';
import { loadAutoencoder } from '../models/resolve.js';
import { F, noGrad, scope, checkDevice, type Tensor } from '../torch/index.js';
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
  psnr: number;
  reconstructionPsnr: number;
  protectionRemaining: number;
  protected: boolean;
}

/** (clean − purified) / (clean − immunized) reconstruction PSNR, in [0, 1]. */
export function protectionRemaining(clean: number, immunized: number, purified: number): number {
  const gap = clean - immunized;
  if (!(gap > 0)) return 0;
  return Math.min(1, Math.max(0, (clean - purified) / gap));
}

export async function runCheck(c: CheckInput): Promise<Record<string, unknown>> {
  const specs = c.purifications.map((s) => parsePurification(s).spec);
  const device = checkDevice(c.device);
  const resize = c.size === null ? {} : { width: c.size, height: c.size, fit: 'inside' as const, withoutEnlargement: true };
  const orig = await readImage(c.original, { maxPixels: c.maxPixels, ...resize });
  const imm = await readImage(c.immunized, { maxPixels: c.maxPixels });
  const tensors: Tensor[] = [orig.tensor, imm.tensor];
  const model = await loadAutoencoder(c.modelSpec, { device });
  try {
    if (orig.width !== imm.width || orig.height !== imm.height) throw new ImmunizeError('E_IMAGE_SIZE', `the result is ${imm.width}×${imm.height} but the photo is ${orig.width}×${orig.height}`);
    const m = model.downscale;
    const [h, w] = [orig.height, orig.width];
    const ph = (m - (h % m)) % m;
    const pw = (m - (w % m)) % m;
    // Padded like the attack (edge replication), reconstructed, cropped back, on the CPU.
    const recPsnr = (x: Tensor): number => noGrad(() => scope(() => {
      const xp = ph === 0 && pw === 0 ? x.to(device) : F.pad(x.to(device), [0, pw, 0, ph], 'replicate');
      const rec = reconstruct(model, xp).clamp(0, 1).narrow(2, 0, h).narrow(3, 0, w).to('cpu').contiguous();
      return psnr(rec, orig.tensor);
    }));
    const total = specs.length + 2;
    const clean = recPsnr(orig.tensor);
    c.onStep?.(1, total);
    const immunized = recPsnr(imm.tensor);
    c.onStep?.(2, total);
    const reports: PurificationReport[] = [];
    for (const [i, spec] of specs.entries()) {
      const purified = await purify(imm.tensor, spec);
      try {
        const rp = recPsnr(purified);
        const remaining = protectionRemaining(clean, immunized, rp);
        reports.push({ spec, psnr: psnr(purified, orig.tensor), reconstructionPsnr: rp, protectionRemaining: remaining, protected: remaining >= 0.5 });
      } finally {
        purified.dispose();
      }
      c.onStep?.(i + 3, total);
    }
    return {
      immunization: c.immunization,
      model: c.modelId,
      clean: { reconstructionPsnr: clean },
      immunized: { psnr: psnr(imm.tensor, orig.tensor), reconstructionPsnr: immunized },
      purifications: reports,
    };
  } finally {
    for (const t of tensors) t.dispose();
    model.dispose();
  }
}
