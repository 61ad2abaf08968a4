/**
 * `--model` resolution: a local path (folder or file) or a Hugging Face repo id, downloaded
 * through the standard hub cache with only the subfolders the job needs.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { isRepoId, listRepoFiles, snapshot, type HubOptions } from '../io/hub.js';
import { loadAutoencoderFromPath, type Autoencoder, type LoadModelOptions } from './load.js';

export async function loadAutoencoder(
  spec: string,
  o: LoadModelOptions & { hub?: HubOptions } = {},
): Promise<Autoencoder> {
  if (existsSync(spec) || !isRepoId(spec)) return loadAutoencoderFromPath(spec, o);
  // A pipeline repo has vae/; a standalone autoencoder repo (taesd, taef2) has its files at the root.
  const files = await listRepoFiles(spec, o.hub ?? {});
  const hasVae = files.some((f) => f.path.startsWith('vae/'));
  const weight =
    o.variant === 'fp16' ? 'diffusion_pytorch_model.fp16.safetensors' : 'diffusion_pytorch_model.safetensors';
  const allow = hasVae
    ? [
        'model_index.json',
        'vae/config.json',
        files.some((f) => f.path === `vae/${weight}`) ? `vae/${weight}` : 'vae/*.safetensors',
      ]
    : ['config.json', '*.safetensors'];
  const dir = await snapshot(spec, { ...(o.hub ?? {}), allow });
  return loadAutoencoderFromPath(hasVae ? join(dir, 'vae') : dir, o);
}
