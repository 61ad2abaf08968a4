// The setting both reproduce-* scripts measure in: TAEF2's real weights (../shared/models/taef2-hf,
// or $IMMUNIZE_SHARED), trevor_5.jpg resized to 256² with Lanczos, and the reconstruction PSNR
// decode(encode(·)) against that photo (lower is better protection). dist/ must be built.
import { join, resolve } from 'node:path';
import { readImage } from '../dist/src/io/images.js';
import { psnr } from '../dist/src/metrics/psnr.js';
import { loadAutoencoderFromPath } from '../dist/src/models/load.js';
import { noGrad, scope } from '../dist/src/torch/index.js';

const shared = resolve(process.env.IMMUNIZE_SHARED ?? join(import.meta.dirname, '..', '..', 'shared'));
export const model = loadAutoencoderFromPath(join(shared, 'models', 'taef2-hf'));
export const { tensor: x } = await readImage(join(shared, 'images', 'trevor_5.jpg'), {
  width: 256,
  height: 256,
  kernel: 'lanczos3',
});
export const reconstructionPsnr = (img) => noGrad(() => scope(() => psnr(model.decode(model.encode(img)), x)));
