/**
 * One step of the encoder attack's inner loop, timed: x (requires grad) → encoder → latent
 * (AutoencoderKL: posterior mean of 2x − 1; TAEF2: its latent) → loss = ‖latent − target‖₂ →
 * ∂loss/∂x. target = E(gray), as encoderAttack's default. Models:
 *   - SD1.5-size AutoencoderKL built from ../shared/golden/manifest_sd15_vae/config.json with
 *     the seeded weight rule (golden seeded_sd15_vae_encoder), full model loaded as the CLI does;
 *   - TAEF2 with its real weights from ../shared/models.
 * Each case runs in its own process (scripts/bench.mjs), so peakRssMB is that case's peak.
 */
import { targetLatent } from '../src/attacks/encoder.js';
import { grad, keep, manualSeed, rand, scope, type Tensor } from '../src/torch/index.js';
import { quick, runBench, stepCount, summarize, timeSteps, type BenchCase } from './harness.js';
import { sd15, taef2, type Loaded } from './models.js';

function attackStepCase(
  name: string,
  model: () => Loaded | { skipped: string },
  size: number,
  steps: number,
  warmup: number,
  note: string,
): BenchCase {
  return {
    name,
    run: () => {
      const m = model();
      if ('skipped' in m) return m;
      try {
        manualSeed(1234);
        const x = rand([1, 3, size, size]);
        const target = keep(targetLatent(m.enc, x, 'gray'));
        const xa = x.detach().requiresGrad_();
        let loss = NaN;
        const samples = timeSteps(
          () => {
            loss = scope(() => {
              const l = m.enc.encode01(xa).sub(target).norm();
              grad(l, [xa]);
              return l.item();
            });
          },
          steps,
          warmup,
        );
        for (const t of [x, target, xa] as Tensor[]) t.dispose();
        return {
          what: `${m.enc.name}: encoder forward + loss ‖E(x) − E(gray)‖₂ + ∂loss/∂x (one encoder-attack step)${note}`,
          size,
          batch: 1,
          dtype: 'float32',
          loadS: m.loadS,
          loss,
          ...summarize(samples, 'msPerStep', { keepSamples: true }),
        };
      } finally {
        m.dispose();
      }
    },
  };
}

await runBench([
  attackStepCase('vae_sd15_encoder_step_256', sd15, 256, stepCount(5, 2), 1, ''),
  quick
    ? { name: 'vae_sd15_encoder_step_512', run: () => ({ skipped: '--quick runs the SD1.5 VAE at 256² only' }) }
    : attackStepCase('vae_sd15_encoder_step_512', sd15, 512, stepCount(3, 3), 1, ''),
  attackStepCase('taef2_encoder_step_512', taef2, 512, stepCount(5, 2), 1, ', real weights'),
]);
