/**
 * Finding and reading CLIP checkpoints (a transformers folder: config.json + safetensors weights)
 * for CLIPModel and CLIPTextModel: where the files are, the config, and the `position_ids`
 * buffers that newer transformers no longer save.
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, extname, join } from 'node:path';
import { ImmunizeError, describe } from '../../errors.js';
import { Module, mapSource, type LoadStateDictOptions, type WeightSource } from '../../nn/module.js';
import { arange, type Tensor } from '../../torch/index.js';
import { refusePickle } from '../load.js';
import { isObject } from './config.js';

/**
 * The folder (holding config.json) and weights file of a checkpoint at `path`: a folder, where
 * `folderOf` may pick a subfolder and the weights are the first of `preferred` present (else its
 * only .safetensors file), or one .safetensors file with its folder. Pickle files are refused.
 */
export function locateCheckpoint(
  path: string,
  preferred: readonly string[],
  folderOf: (dir: string) => string = (dir) => dir,
): { folder: string; weights: string } {
  if (!existsSync(path)) throw new ImmunizeError('E_MODEL_FILE', `${path} does not exist`);
  if (statSync(path).isDirectory()) {
    const folder = folderOf(path);
    return { folder, weights: weightsIn(folder, preferred) };
  }
  refusePickle(path);
  if (extname(path) !== '.safetensors')
    throw new ImmunizeError('E_MODEL_FILE', `${path}: expected a .safetensors file or a folder`);
  return { folder: dirname(path), weights: path };
}

function weightsIn(folder: string, preferred: readonly string[]): string {
  const files = readdirSync(folder);
  const st = files.filter((f) => f.endsWith('.safetensors')).sort();
  const chosen = preferred.find((name) => st.includes(name)) ?? (st.length === 1 ? st[0]! : undefined);
  if (chosen !== undefined) return join(folder, chosen);
  const pickle = files.find((f) => ['.bin', '.pt', '.pth', '.ckpt'].includes(extname(f)));
  if (pickle !== undefined && st.length === 0) refusePickle(join(folder, pickle));
  throw new ImmunizeError(
    'E_MODEL_FILE',
    st.length === 0
      ? `${folder}: no .safetensors weights found (files: ${files.join(', ') || 'none'})`
      : `${folder}: several .safetensors files and none is model.safetensors: ${st.join(', ')}`,
  );
}

/** `folder`/config.json as a JSON object; `needs` says, when it is missing, what it should hold. */
export function readConfigJson(folder: string, needs: string): { path: string; raw: Record<string, unknown> } {
  const path = join(folder, 'config.json');
  if (!existsSync(path)) throw new ImmunizeError('E_MODEL_FILE', `${path} is missing (${needs})`);
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new ImmunizeError('E_CONFIG', `${path} is not valid JSON: ${(e as Error).message}`);
  }
  if (!isObject(v)) throw new ImmunizeError('E_CONFIG', `${path} should hold a JSON object but holds ${describe(v)}`);
  return { path, raw: v };
}

/**
 * A WeightSource view that supplies absent `position_ids` buffers as arange(n) (transformers ≥ 4.31
 * no longer saves them) and converts present ones to int64, whatever dtype they were saved in (a
 * float copy is truncated, as torch's load_state_dict does); applies `o.rename` first.
 */
function withPositionIds(
  source: WeightSource | ReadonlyMap<string, Tensor>,
  o: LoadStateDictOptions,
  ids: readonly (readonly [string, number])[],
): WeightSource {
  const src = source instanceof Map ? mapSource(source) : (source as WeightSource);
  const names = new Map<string, string>(); // this model's key -> source key
  for (const k of src.keys()) {
    const mine = o.rename ? o.rename(k) : k;
    if (mine !== null) names.set(mine, k);
  }
  const synth = new Map(ids.filter(([k]) => !names.has(k)));
  const isId = new Set(ids.map(([k]) => k));
  return {
    keys: () => [...names.keys(), ...synth.keys()],
    shape: (k) => (synth.has(k) ? [1, synth.get(k)!] : src.shape(names.get(k)!)),
    read: (k) => {
      const n = synth.get(k);
      if (n !== undefined) {
        using r = arange(0, n, 1, { dtype: 'int64' });
        return r.unsqueeze(0);
      }
      const t = src.read(names.get(k)!);
      if (!isId.has(k) || t.dtype === 'int64') return t;
      using _t = t;
      return t.to('int64');
    },
  };
}

/**
 * transformers' CLIPPreTrainedModel: checkpoints may lack the `*.position_ids` buffers
 * (transformers >= 4.31 no longer saves them; they are then arange(n)) or hold them in another
 * dtype; loadStateDict accepts both and stores them as int64.
 */
export abstract class CLIPPreTrainedModel extends Module {
  override loadStateDict(source: WeightSource | ReadonlyMap<string, Tensor>, o: LoadStateDictOptions = {}): this {
    const ids = [...this.stateShapes()]
      .filter(([k]) => k.endsWith('.position_ids'))
      .map(([k, shape]) => [k, shape[1]!] as const);
    return super.loadStateDict(withPositionIds(source, o, ids), { ...o, rename: undefined });
  }
}
