// kind "seeded_forward": a full-size model from a real config.json with weights made by a seeded
// rule over the manifest's keys (case.json weights_rule): for entry i, manual_seed(i); ≥2-d →
// randn·0.02, '.bias' → zeros, other 1-d → ones. Then one forward; outputs within tolerance.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AutoencoderKL } from '../../../src/models/autoencoder-kl.js';
import { UNet2DConditionModel } from '../../../src/models/unet/index.js';
import { noGrad, scope } from '../../../src/torch/index.js';
import { seededWeights } from '../../helpers/seeded-weights.js';
import { assertClose, toleranceFor } from '../compare.js';
import { caseTensors, declaredOutputs } from '../io.js';
import { buildFromConfig } from '../models.js';
import { parseTimestep } from './unet_2d_condition.js';
import type { CaseRunner } from './types.js';

const run: CaseRunner = async ({ dir, spec }, t) => {
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  const manifest = JSON.parse(readFileSync(join(dir, String(spec.manifest)), 'utf8')) as {
    keys: [string, number[], string][];
  };
  const model = buildFromConfig(config);
  if (typeof model === 'string') {
    t.skip(model);
    return;
  }
  using io = caseTensors(dir);
  const { ref } = io;
  try {
    model.loadStateDict(seededWeights(manifest.keys));
    const tol = (k: string) => toleranceFor(spec.tolerances, k);
    if (model instanceof AutoencoderKL) {
      const wanted = declaredOutputs(spec, ['encoder_out', 'moments', 'mean', 'logvar']);
      await t.test('encoder path', () =>
        noGrad(() =>
          scope(() => {
            const x = ref('x');
            if (wanted.has('encoder_out'))
              assertClose(model.encoder.forward(x), ref('encoder_out'), tol('encoder_out'), 'encoder_out');
            if (wanted.has('moments')) assertClose(model.moments(x), ref('moments'), tol('moments'), 'moments');
            using d = model.encode(x);
            if (wanted.has('mean')) assertClose(d.mean, ref('mean'), tol('mean'), 'mean');
            if (wanted.has('logvar')) assertClose(d.logvar, ref('logvar'), tol('logvar'), 'logvar');
          }),
        ),
      );
    } else if (model instanceof UNet2DConditionModel) {
      // Every out_* output is unet(sample, t, encoder_hidden_states); t from case.json's call
      // text (calls[key], else the single `call`), else from the key (out_t500 → 500).
      const outs = [...io.all.keys()].filter((k) => k.startsWith('out_'));
      assert.ok(outs.length > 0, 'io.safetensors has no out_* reference');
      // Every output case.json gives a tolerance for is among them (ref fails on one that is not).
      for (const key of declaredOutputs(spec, outs)) ref(key);
      for (const key of outs) {
        await t.test(`${key}: UNet forward`, (tt) =>
          noGrad(() =>
            scope(() => {
              const call: unknown = spec.calls?.[key] ?? spec.call;
              const m = /^out_t(\d+)$/.exec(key);
              const ts =
                typeof call === 'string' && call.includes('unet(')
                  ? parseTimestep(call)
                  : m !== null
                    ? Number(m[1])
                    : null;
              if (ts === null)
                throw new Error(`no timestep for '${key}': case.json has no call text and the key names none`);
              const r = assertClose(
                model.forward(ref('sample'), ts, ref('encoder_hidden_states')),
                ref(key),
                tol(key),
                key,
              );
              tt.diagnostic(`${key} max|diff| ${r.maxAbs.toExponential(3)}`);
            }),
          ),
        );
      }
    } else {
      t.skip(`no seeded_forward runner for ${model.constructor.name} yet`);
    }
  } finally {
    model.dispose();
  }
};
export default run;
