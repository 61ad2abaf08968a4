// Conformance suite: runs every case under <shared>/golden/*/ by its case.json `kind`.
// A kind without a runner is reported as skipped by name, never silently passed.
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { sharedDir } from '../helpers/shared.js';
import type { CaseRunner } from './kinds/types.js';

// kind -> module under ./kinds/ (each exports a default CaseRunner written for the kind, not one case).
const RUNNERS: Record<string, () => Promise<{ default: CaseRunner }>> = {
  rng: () => import('./kinds/rng.js'),
  safetensors: () => import('./kinds/safetensors.js'),
  autoencoder_kl: () => import('./kinds/autoencoder_kl.js'),
  tiny_autoencoder: () => import('./kinds/tiny_autoencoder.js'),
  manifest: () => import('./kinds/manifest.js'),
  seeded_forward: () => import('./kinds/seeded_forward.js'),
  config_only: () => import('./kinds/config_only.js'),
  clip_tokenizer: () => import('./kinds/clip_tokenizer.js'),
  clip_text_model: () => import('./kinds/clip_text_model.js'),
  unet_2d_condition: () => import('./kinds/unet_2d_condition.js'),
  scheduler: () => import('./kinds/scheduler.js'),
  encoder_attack: () => import('./kinds/encoder_attack.js'),
  diffusion_attack: () => import('./kinds/diffusion_attack.js'),
  pipeline_img2img: () => import('./kinds/pipeline.js'),
  pipeline_inpaint: () => import('./kinds/pipeline.js'),
  iqa_metrics: () => import('./kinds/iqa_metrics.js'),
  fid_pr: () => import('./kinds/fid_pr.js'),
  clip_model: () => import('./kinds/clip_model.js'),
  transforms: () => import('./kinds/transforms.js'),
  jpeg: () => import('./kinds/jpeg.js'),
};

const shared = sharedDir();
const golden = shared === null ? null : join(shared, 'golden');
const only = process.env['IMMUNIZE_CASES']?.split(',').filter(Boolean);

if (golden === null || !existsSync(golden)) {
  test(
    'conformance suite',
    {
      skip: `no golden folder: set IMMUNIZE_SHARED or place shared/ next to the repo (looked for ${golden ?? '../shared/golden'})`,
    },
    () => {},
  );
} else {
  const cases = readdirSync(golden, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(golden, d.name, 'case.json')))
    .map((d) => d.name)
    .filter((name) => only === undefined || only.includes(name))
    .sort();
  for (const name of cases) {
    const dir = join(golden, name);
    let spec: { kind?: unknown };
    try {
      spec = JSON.parse(readFileSync(join(dir, 'case.json'), 'utf8')) as { kind?: unknown };
    } catch (e) {
      test(`golden/${name}`, () => {
        throw new Error(`${dir}/case.json is not valid JSON: ${(e as Error).message}`);
      });
      continue;
    }
    const kind = String(spec.kind);
    const load = RUNNERS[kind];
    if (load === undefined) {
      test(`golden/${name} [${kind}]`, { skip: `no runner yet for kind '${kind}'` }, () => {});
      continue;
    }
    test(`golden/${name} [${kind}]`, async (t) => {
      const runner = (await load()).default;
      await runner({ dir, name, spec }, t);
    });
  }
}
