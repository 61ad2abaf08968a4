// Builds a model from a diffusers/transformers config.json by its class name, for conformance
// runners. Returns a reason string for classes that have no implementation yet.
import { AutoencoderKL } from '../../src/models/autoencoder-kl.js';
import { AutoencoderTiny } from '../../src/models/autoencoder-tiny.js';
import { CLIPTextModel } from '../../src/models/clip/text-model.js';
import { UNet2DConditionModel } from '../../src/models/unet/index.js';
import type { Module } from '../../src/nn/module.js';

type ModelClass = new (config: Record<string, unknown>) => Module;
const CLASSES = new Map<string, ModelClass>(
  Object.entries({ AutoencoderKL, AutoencoderTiny, CLIPTextModel, UNet2DConditionModel }),
);

export function buildFromConfig(config: Record<string, unknown>): Module | string {
  const cls = String(config['_class_name'] ?? (config['architectures'] as string[] | undefined)?.[0] ?? 'unknown');
  const Class = CLASSES.get(cls);
  return Class ? new Class(config) : `no TypeScript implementation of ${cls} yet`;
}
