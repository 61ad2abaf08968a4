/**
 * One UNet forward (a denoising step's model call), timed: SD v1.5's UNet2DConditionModel built
 * from the real config (../shared/golden/manifest_sd15_unet/config.json) with weights made by the
 * seeded rule of golden seeded_sd15_unet (entry i of the manifest: manual_seed(i); ≥2-d
 * randn·0.02, biases 0, other 1-d 1), 64×64 latents (512² images), batch 1, float32, no grad,
 * a 77×768 context. Each case runs in its own process (scripts/bench.mjs), so peakRssMB is its
 * own: ~3.4 GB of weights plus the activations.
 */
import { UNet2DConditionModel } from '../src/models/unet/index.js';
import { manualSeed, noGrad, randn, scope } from '../src/torch/index.js';
import { seededModel } from '../test/helpers/seeded-weights.js';
import { quick, runBench, sharedFile, stepCount, summarize, timeSteps, type BenchCase } from './harness.js';

function unetForwardCase(name: string, latent: number, batch: number): BenchCase {
  return {
    name,
    run: () => {
      const dir = sharedFile('golden', 'manifest_sd15_unet');
      if ('skipped' in dir) return dir;
      const t0 = Date.now();
      const unet = seededModel(dir.path, (config) => new UNet2DConditionModel(config));
      try {
        const loadS = (Date.now() - t0) / 1000;
        manualSeed(4321);
        const sample = randn([batch, 4, latent, latent]);
        const context = randn([batch, 77, 768]);
        let meanAbs = NaN;
        const samples = timeSteps(
          () => {
            meanAbs = noGrad(() => scope(() => unet.forward(sample, 500, context).abs().mean().item()));
          },
          stepCount(3, 1),
          quick ? 0 : 1,
        );
        sample.dispose();
        context.dispose();
        return {
          what: `SD1.5 UNet2DConditionModel (seeded weights) forward, no grad: sample [${batch}, 4, ${latent}, ${latent}], t = 500, context [${batch}, 77, 768]`,
          latent,
          batch,
          dtype: 'float32',
          params: unet.parameterCount(),
          loadS,
          outMeanAbs: meanAbs,
          ...summarize(samples, 'msPerStep', { keepSamples: true }),
        };
      } finally {
        unet.dispose();
      }
    },
  };
}

await runBench([unetForwardCase('unet_sd15_forward_64', 64, 1)]);
