/**
 * "Test the protection" (docs/api.md, edits): runs in the job runner (runner.ts). Edits the
 * original photo and the immunized result of a finished immunization with the same pipeline,
 * prompt and seed — what photoguard's demo shows side by side — and measures how far apart the two
 * edits are. Both edits get the same random draws (seededNoise(seed) afresh for each), so any
 * difference between them comes from the perturbation alone.
 */
import { createHash } from 'node:crypto';
import { writeFileAtomic as writeAtomic } from '../io/atomic.js';
import { ImmunizeError } from '../errors.js';
import { encodeImage, readImage, readMask, type LoadedImage } from '../io/images.js';
import { psnr } from '../metrics/psnr.js';
import { ssim } from '../metrics/ssim.js';
import { loadStableDiffusion } from '../pipelines/components.js';
import { img2img, inpaint } from '../pipelines/generate.js';
import { seededNoise } from '../pipelines/noise.js';
import { checkDevice, type Tensor } from '../torch/index.js';
import { EDIT_FILES, type EditingModels, type EditOptions } from './edits.js';
import type { JobRecord, Storage } from './storage.js';

export { runEdit };

async function runEdit(
  storage: Storage,
  r: JobRecord,
  editing: EditingModels | undefined,
  device: string,
  maxPixels: number,
  onStep: (step: number, steps: number) => void,
): Promise<Record<string, unknown>> {
  const parent = r.parent === null ? null : storage.read(r.parent);
  if (parent === null || parent.status !== 'completed' || !storage.exists(parent.id, 'result.png'))
    throw new ImmunizeError('E_NOT_READY', 'the immunization is gone or not completed');
  const o = r.options as unknown as EditOptions;
  const model = o.mode === 'inpaint' ? editing?.inpaint : editing?.img2img;
  if (model === null || model === undefined)
    throw new ImmunizeError('E_MODEL_UNAVAILABLE', `this worker has no ${o.mode} editing model`);
  const dev = checkDevice(device);
  const t0 = performance.now();

  // The immunized result fixes the size (the immunization's own `size`, if any, already applied);
  // like `immunize edit` and diffusers, both photos are resized down to a multiple of 8.
  const probe = await readImage(storage.file(parent.id, 'result.png'), { maxPixels });
  const w8 = probe.width - (probe.width % 8),
    h8 = probe.height - (probe.height % 8);
  if (w8 < 8 || h8 < 8) {
    probe.tensor.dispose();
    throw new ImmunizeError(
      'E_IMAGE_SIZE',
      `the photo is ${probe.width}×${probe.height}; editing needs at least 8×8 pixels`,
    );
  }
  const exact = w8 === probe.width && h8 === probe.height;
  const immunized: LoadedImage = exact
    ? probe
    : await readImage(storage.file(parent.id, 'result.png'), { maxPixels, width: w8, height: h8 });
  if (!exact) probe.tensor.dispose();
  const original = await readImage(storage.file(parent.id, parent.input!.file), { maxPixels, width: w8, height: h8 });
  const owned: Tensor[] = [immunized.tensor, original.tensor];
  try {
    let repaint: Tensor | null = null;
    if (o.mode === 'inpaint') {
      if (parent.input!.mask === null)
        throw new ImmunizeError('E_VALIDATION', 'inpainting needs an immunization made with a mask');
      // Our masks are white where the photo is protected (docs/attacks.md#masks); the editor
      // repaints the rest, as in photoguard's demo. With invertMask the upload was already
      // photoguard-style (white = repainted).
      const m = await readMask(storage.file(parent.id, parent.input!.mask), w8, h8);
      owned.push(m);
      repaint = parent.options['invertMask'] === true ? m : m.rsub(1);
      if (repaint !== m) owned.push(repaint);
    }
    using sd = await loadStableDiffusion(model.spec, { device: dev });
    if (o.mode === 'inpaint' && sd.unet.config.in_channels !== 9)
      throw new ImmunizeError(
        'E_MODEL_UNAVAILABLE',
        `the inpainting model '${model.id}' is not an inpainting pipeline (9-channel UNet)`,
      );
    const edit = (photo: Tensor, offset: number, perEdit: (n: number) => void): { image: Tensor; steps: number } => {
      const common = {
        prompt: o.prompt,
        negativePrompt: o.negativePrompt,
        steps: o.steps,
        guidance: o.guidance,
        eta: 0,
        noise: seededNoise(o.seed),
        onStep: (i: number, n: number) => {
          perEdit(n);
          onStep(offset * n + i, 2 * n);
        },
      };
      return repaint !== null
        ? inpaint(sd, photo, { ...common, mask: repaint })
        : img2img(sd, photo, { ...common, strength: o.strength });
    };
    let n = 0;
    const a = edit(original.tensor, 0, (k) => {
      n = k;
    });
    owned.push(a.image);
    const b = edit(immunized.tensor, 1, () => undefined);
    owned.push(b.image);
    const [pngA, pngB] = await Promise.all([
      encodeImage(a.image, { format: 'png' }),
      encodeImage(b.image, { format: 'png' }),
    ]);
    writeAtomic(storage.file(r.id, EDIT_FILES.original), pngA);
    writeAtomic(storage.file(r.id, EDIT_FILES.immunized), pngB);
    // Measured on the PNGs as downloaded (8-bit), so anyone can recompute them from the files.
    const [qa, qb] = await Promise.all([readImage(pngA), readImage(pngB)]);
    owned.push(qa.tensor, qb.tensor);
    const between = { psnr: psnr(qa.tensor, qb.tensor), ssim: ssim(qa.tensor, qb.tensor) };
    const inputs = { psnr: psnr(immunized.tensor, original.tensor), ssim: ssim(immunized.tensor, original.tensor) };
    onStep(2 * Math.max(n, a.steps), 2 * Math.max(n, a.steps));
    const file = (data: Buffer): Record<string, unknown> => ({
      bytes: data.length,
      sha256: createHash('sha256').update(data).digest('hex'),
    });
    return {
      immunization: parent.id,
      mode: o.mode,
      model: model.id,
      prompt: o.prompt,
      negativePrompt: o.negativePrompt,
      seed: o.seed,
      strength: o.mode === 'img2img' ? o.strength : null,
      steps: o.steps,
      stepsRun: a.steps,
      guidance: o.guidance,
      scheduler: sd.scheduler.className,
      width: w8,
      height: h8,
      resized: !exact,
      original: file(pngA),
      immunized: file(pngB),
      between,
      inputs,
      timing: { totalMs: Math.round(performance.now() - t0) },
    };
  } finally {
    for (const t of owned) t.dispose();
  }
}
