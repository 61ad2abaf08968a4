// kinds "pipeline_img2img" and "pipeline_inpaint": the case folder is a tiny diffusers repo,
// loaded as a user's repo is. The recorded random draws are replayed in order, every traced
// intermediate (prompt embeddings, UNet inputs/outputs, latents per step, decoded image) is
// compared with the reference, then the output; finally the plain seeded path is run and
// compared too (RNG parity means it should match).
import assert from 'node:assert/strict';
import { loadStableDiffusionFromPath } from '../../../src/pipelines/components.js';
import { img2img, inpaint, type GenerateOptions } from '../../../src/pipelines/generate.js';
import { replayNoise, seededNoise } from '../../../src/pipelines/noise.js';
import { noGrad, scope } from '../../../src/torch/index.js';
import { assertClose, closeness, toleranceFor } from '../compare.js';
import { caseTensors } from '../io.js';
import type { CaseRunner } from './types.js';

const run: CaseRunner = async ({ dir, spec }, t) => {
  using io = caseTensors(dir);
  const { ref } = io;
  const sd = loadStableDiffusionFromPath(dir);
  const call = spec.call;
  const kind: string = spec.kind;
  const image = noGrad(() => ref('image_uint8').permute(2, 0, 1).unsqueeze(0).to('float32').div(255));
  const mask = io.has('mask_uint8')
    ? noGrad(() =>
        ref('mask_uint8')
          .reshape(1, 1, ...ref('mask_uint8').shape)
          .to('float32')
          .div(255),
      )
    : null;
  const draws = (spec.random_draws?.draws ?? []).map((d: { name: string }) => ref(d.name));
  const generate = (o: Partial<GenerateOptions>) => {
    const common = {
      prompt: call.prompt,
      negativePrompt: call.negative_prompt ?? '',
      steps: call.num_inference_steps,
      guidance: call.guidance_scale,
      eta: call.eta ?? 0,
      ...o,
    };
    if (kind === 'pipeline_img2img') return img2img(sd, image, { ...common, strength: call.strength });
    if (kind === 'pipeline_inpaint') return inpaint(sd, image, { ...common, mask: mask! });
    throw new Error(`pipeline runner: unknown kind ${kind}`);
  };
  try {
    await t.test('replayed noise: every intermediate and the output', () =>
      scope(() => {
        const traced: string[] = [];
        const noise = replayNoise(draws);
        const r = generate({
          noise,
          trace: (name, v) => {
            if (!io.has(name)) return;
            traced.push(name);
            // unet_in_NN has no tolerance of its own: it carries the VAE-encoded masked image, so
            // it gets the same step's latents tolerance (measured 3.5e-5 on pipeline_inpaint).
            const key =
              /^unet_in_/.test(name) && spec.tolerances?.[name] === undefined
                ? name.replace('unet_in_', 'latents_')
                : name;
            assertClose(v, ref(name), toleranceFor(spec.tolerances, key), name);
          },
        });
        assert.equal(
          noise.used,
          draws.length,
          `the pipeline drew ${noise.used} tensors; the reference drew ${draws.length}`,
        );
        const expected = [...io.all.keys()].filter((k) =>
          /^(prompt_embeds|unet_in_\d+|unet_out_\d+|latents_\d+|decoded_final)$/.test(k),
        );
        assert.deepEqual(traced.sort(), expected.sort(), 'every recorded intermediate was produced and compared');
        assertClose(r.image, ref('output'), toleranceFor(spec.tolerances, 'output'), 'output');
        if (io.has('latents_final'))
          assert.ok(io.has(`latents_${String(r.steps - 1).padStart(2, '0')}`), 'step count matches the reference');
        // uint8 as numpy_to_pil: (x·255).round(); at most 1 level apart on < 0.1% of values.
        const u8 = r.image.mul(255).round().permute(0, 2, 3, 1);
        const diff = u8.sub(ref('output_uint8').to('float32')).abs();
        assert.ok(diff.max().item() <= 1, `output_uint8 differs by ${diff.max().item()} levels`);
        const frac = diff.gt(0).to('float32').mean().item();
        assert.ok(frac < 0.001, `output_uint8: ${(frac * 100).toFixed(3)}% of values differ by one level`);
        r.image.dispose();
      }),
    );
    await t.test('seeded generator path (same seed, same draws as torch)', () =>
      scope(() => {
        const r = generate({ noise: seededNoise(call.seed) });
        const c = closeness(r.image, ref('output'), toleranceFor(spec.tolerances, 'output'));
        t.diagnostic(`seeded output vs reference: max |diff| ${c.maxAbs.toExponential(2)}`);
        assert.ok(
          c.ok,
          `the seeded path differs from the reference by ${c.maxAbs} (the replayed path matched: generator parity issue)`,
        );
        r.image.dispose();
      }),
    );
  } finally {
    sd.dispose();
    image.dispose();
    mask?.dispose();
  }
};

export default run;
