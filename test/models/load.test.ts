import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { saveSafetensors } from '../../src/io/tensors.js';
import { AutoencoderKL } from '../../src/models/autoencoder-kl.js';
import { AutoencoderTiny } from '../../src/models/autoencoder-tiny.js';
import { loadAutoencoderFromPath } from '../../src/models/load.js';
import { zeros } from '../../src/torch/index.js';
import { tinyKL } from '../helpers/tiny-configs.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'immunize-load-'));

function writeModel(
  dir: string,
  config: Record<string, unknown> | null,
  file = 'diffusion_pytorch_model.safetensors',
  model: AutoencoderKL | AutoencoderTiny = new AutoencoderKL(tinyKL),
): void {
  mkdirSync(dir, { recursive: true });
  if (config) writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  const w = new Map([...model.stateShapes()].map(([k, s]) => [k, zeros(s)]));
  saveSafetensors(join(dir, file), w);
  for (const v of w.values()) v.dispose();
}

test('pickle checkpoints are refused with the conversion recipe', () => {
  const dir = tmp();
  for (const ext of ['.pth', '.ckpt', '.bin', '.pt']) {
    const p = join(dir, 'model' + ext);
    writeFileSync(p, 'not really a pickle');
    assert.throws(
      () => loadAutoencoderFromPath(p),
      (e: Error & { code?: string }) =>
        e.code === 'E_PICKLE_REFUSED' && e.message.includes('save_file') && e.message.includes(p),
    );
  }
});

test('missing paths and folders without weights name the problem', () => {
  assert.throws(
    () => loadAutoencoderFromPath('/nonexistent/vae'),
    /model not found: \/nonexistent\/vae does not exist/,
  );
  const dir = tmp();
  writeFileSync(join(dir, 'config.json'), JSON.stringify(tinyKL));
  assert.throws(() => loadAutoencoderFromPath(dir), /no \.safetensors weights found/);
  writeFileSync(join(dir, 'config.json'), '{ not json');
  assert.throws(
    () => loadAutoencoderFromPath(dir),
    (e: Error & { code?: string }) => e.code === 'E_CONFIG',
  );
});

test('unknown architecture in config.json is named', () => {
  const dir = tmp();
  writeModel(dir, { ...tinyKL, _class_name: 'VQModel' });
  assert.throws(() => loadAutoencoderFromPath(dir), /unknown architecture 'VQModel'/);
});

test('a pipeline root folder loads its vae/ subfolder; a single file infers the config', () => {
  const root = tmp();
  writeFileSync(join(root, 'model_index.json'), JSON.stringify({ _class_name: 'StableDiffusionPipeline' }));
  writeModel(join(root, 'vae'), tinyKL);
  const a = loadAutoencoderFromPath(root);
  assert.ok(a instanceof AutoencoderKL);
  a.dispose();
  const single = tmp();
  writeModel(single, null, 'vae.safetensors');
  const b = loadAutoencoderFromPath(join(single, 'vae.safetensors'));
  assert.ok(b instanceof AutoencoderKL);
  assert.deepEqual((b as AutoencoderKL).config.block_out_channels, [8]);
  b.dispose();
});

test('the fp16 variant is preferred only when asked', () => {
  const dir = tmp();
  writeModel(dir, tinyKL);
  writeModel(dir, null, 'diffusion_pytorch_model.fp16.safetensors');
  const a = loadAutoencoderFromPath(dir);
  const b = loadAutoencoderFromPath(dir, { variant: 'fp16' });
  assert.ok(a instanceof AutoencoderKL && b instanceof AutoencoderKL);
  a.dispose();
  b.dispose();
});

test('a TAESD-family folder without config.json is recognised', () => {
  const dir = tmp();
  writeModel(dir, null, 'taesd.safetensors', new AutoencoderTiny({ latent_channels: 16 }));
  const m = loadAutoencoderFromPath(dir);
  assert.ok(m instanceof AutoencoderTiny);
  assert.equal(m.config.latent_channels, 16);
  m.dispose();
});
