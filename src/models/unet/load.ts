/**
 * Loading a UNet2DConditionModel from a diffusers folder: `unet/` (config.json +
 * `diffusion_pytorch_model[.fp16].safetensors`), the pipeline root that contains it, or one
 * `.safetensors` file with its config.json beside it. Pickle checkpoints are refused.
 */
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ImmunizeError } from '../../errors.js';
import { SafetensorsSource, readJson, refusePickle, weightsIn, type LoadModelOptions } from '../load.js';
import { parseUNet2DConditionConfig } from './config.js';
import { UNet2DConditionModel } from './unet-2d-condition.js';

export type { LoadModelOptions as LoadUNetOptions } from '../load.js';

/** Builds the UNet from config.json and loads its weights (strict: every key, right shapes). */
export function loadUNet(path: string, o: LoadModelOptions = {}): UNet2DConditionModel {
  if (!existsSync(path)) throw new ImmunizeError('E_MODEL_FILE', `UNet not found: ${path} does not exist`);
  refusePickle(path);
  let folder = path;
  let file: string;
  if (statSync(path).isDirectory()) {
    if (!existsSync(join(path, 'config.json')) && existsSync(join(path, 'unet'))) folder = join(path, 'unet');
    if (!existsSync(join(folder, 'config.json'))) {
      throw new ImmunizeError(
        'E_MODEL_FILE',
        `${path}: no config.json${folder === path ? ' (expected a diffusers unet/ folder, or a pipeline folder that has one)' : ` in ${folder}`}`,
      );
    }
    file = weightsIn(folder, o.variant);
  } else {
    if (!path.endsWith('.safetensors'))
      throw new ImmunizeError('E_MODEL_FILE', `${path}: expected a .safetensors file or a diffusers unet/ folder`);
    folder = dirname(path);
    if (!existsSync(join(folder, 'config.json')))
      throw new ImmunizeError(
        'E_MODEL_FILE',
        `${path}: a UNet needs its config.json beside the weights (none in ${folder})`,
      );
    file = path;
  }
  const configPath = join(folder, 'config.json');
  const model = new UNet2DConditionModel(parseUNet2DConditionConfig(readJson(configPath), configPath));
  try {
    using source = new SafetensorsSource([{ path: file }]);
    model.loadStateDict(source, { dtype: o.dtype ?? 'float32', device: o.device, label: file });
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}
