// A golden manifest folder (shared/golden/manifest_*): the model's config.json and the keys of its
// state dict in manifest.json.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** A manifest's keys: [name, shape, dtype] in the checkpoint's order. */
export type ManifestKeys = [string, number[], string][];

export interface ManifestFolder {
  config: Record<string, unknown>;
  manifest: { keys: ManifestKeys; parameter_count: number };
}

export function readManifestFolder(dir: string): ManifestFolder {
  const read = (name: string): unknown => JSON.parse(readFileSync(join(dir, name), 'utf8'));
  return {
    config: read('config.json') as ManifestFolder['config'],
    manifest: read('manifest.json') as ManifestFolder['manifest'],
  };
}
