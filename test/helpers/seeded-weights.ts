// The golden cases' seeded weight rule (case.json weights_rule of seeded_sd15_unet and
// seeded_sd15_vae_encoder), shared by their conformance runner and the benches: full-size models
// from a real config.json without the real weights.
import type { Module, WeightSource } from '../../src/nn/module.js';
import { manualSeed, ones, randn, scope, zeros } from '../../src/torch/index.js';
import { readManifestFolder, type ManifestKeys } from './manifest.js';

export type { ManifestKeys };

/**
 * The seeded rule as a WeightSource (tensors are made only when read): entry i of the manifest's
 * keys gets manual_seed(i); ≥2-d → randn·0.02, '.bias' → zeros, other 1-d → ones.
 */
export function seededWeights(keys: ManifestKeys): WeightSource {
  const index = new Map(keys.map(([k, s], i) => [k, { i, s }]));
  return {
    keys: () => index.keys(),
    shape: (k) => index.get(k)!.s,
    read: (k) => {
      const { i, s } = index.get(k)!;
      if (s.length >= 2) {
        manualSeed(i);
        return scope(() => randn(s).mul(0.02));
      }
      return k.endsWith('.bias') ? zeros(s) : ones(s);
    },
  };
}

/**
 * The model `build` makes from a golden manifest folder's config.json, loaded with the seeded
 * weights over the keys of its manifest.json.
 */
export function seededModel<M extends Module>(dir: string, build: (config: Record<string, unknown>) => M): M {
  const { config, manifest } = readManifestFolder(dir);
  const model = build(config);
  try {
    return model.loadStateDict(seededWeights(manifest.keys));
  } catch (e) {
    model.dispose();
    throw e;
  }
}
