/**
 * What `GET /v1/config` says each model can run (issue 14 point 12: the page offers only methods
 * the server can run): `diffusion` only with an inpainting pipeline, and which pipelines are
 * test-sized (their edits are noise; point 13). Read from the folders' own configs, never loaded.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { buildApi, type Api } from '../../src/server/api.js';
import { describeModels, pipelineTraits } from '../../src/server/models.js';
import { HttpError, validateOptions } from '../../src/server/options.js';
import { EmbeddedQueue } from '../../src/server/queue.js';
import { Storage } from '../../src/server/storage.js';
import { sharedPath, skipReason } from '../helpers/shared.js';
import { tempDir, testApiConfig } from './harness.js';

const TAEF2 = sharedPath('models', 'taef2-hf');
const INPAINT = sharedPath('golden', 'pipeline_inpaint');
const IMG2IMG = sharedPath('golden', 'pipeline_img2img');
const why =
  TAEF2 === null
    ? skipReason('models', 'taef2-hf')
    : INPAINT === null || IMG2IMG === null
      ? skipReason('golden', 'pipeline_inpaint')
      : false;

describe('the models a server can run', { skip: why }, () => {
  test('pipelineTraits: an inpainting UNet has 9 input channels; the conformance pipelines are test-sized', () => {
    assert.deepEqual(pipelineTraits(INPAINT!), { inpainting: true, tiny: true });
    assert.deepEqual(pipelineTraits(IMG2IMG!), { inpainting: false, tiny: true });
    // An encoder-only folder or a hub id: nothing known beyond "an image encoder".
    assert.equal(pipelineTraits(TAEF2!), null);
    assert.equal(pipelineTraits('stabilityai/sd-vae-ft-mse'), null);
  });

  test('describeModels: diffusion only where an inpainting pipeline is; ids, never paths', () => {
    const list = describeModels([
      { id: 'taef2-hf', spec: TAEF2! },
      { id: 'inpaint', spec: INPAINT! },
      { id: 'hub-inpainting', spec: 'runwayml/stable-diffusion-inpainting' },
    ]);
    assert.deepEqual(list, [
      { id: 'taef2-hf', default: true, methods: ['encoder', 'noise', 'learned'] },
      { id: 'inpaint', default: false, methods: ['encoder', 'noise', 'diffusion', 'learned'] },
      { id: 'hub-inpainting', default: false, methods: ['encoder', 'noise', 'diffusion', 'learned'] },
    ]);
  });

  describe('GET /v1/config', () => {
    let storage: Storage;
    const apis: Api[] = [];
    before(() => {
      storage = new Storage(tempDir('models'));
    });
    after(async () => {
      for (const a of apis) await a.app.close();
    });

    async function config(models: { id: string; spec: string }[]): Promise<{
      methods: string[];
      baselines: string[];
      models: { id: string; methods: string[] }[];
    }> {
      const queue = new EmbeddedQueue(storage, { device: 'cpu', maxPixels: 1_000_000, models, retentionMs: 60_000 });
      const api = await buildApi(storage, queue, testApiConfig({ models, maxUploadBytes: 50_000 }));
      apis.push(api);
      return (await api.app.inject({ method: 'GET', url: '/v1/config' })).json();
    }

    test('an encoder-only server does not offer diffusion; noise is listed as a baseline', async () => {
      const c = await config([{ id: 'taef2-hf', spec: TAEF2! }]);
      assert.deepEqual(c.methods, ['encoder', 'noise', 'learned'], 'learned: the shipped weights/immunizer-taef2');
      assert.deepEqual(c.baselines, ['noise']);
      assert.doesNotMatch(JSON.stringify(c), /\/work|golden|shared/, 'the config must not reveal server paths');
    });

    test('with an inpainting pipeline it offers diffusion, for that model only', async () => {
      const c = await config([
        { id: 'taef2-hf', spec: TAEF2! },
        { id: 'inpaint', spec: INPAINT! },
      ]);
      assert.deepEqual(c.methods, ['encoder', 'noise', 'diffusion', 'learned']);
      assert.deepEqual(
        c.models.map((m) => [m.id, m.methods.includes('diffusion')]),
        [
          ['taef2-hf', false],
          ['inpaint', true],
        ],
      );
    });
  });

  test('a create asking for a method its model cannot run is refused up front (400 naming method), not at the end of the job', () => {
    const models = [
      { id: 'taef2-hf', spec: TAEF2! },
      { id: 'inpaint', spec: INPAINT! },
    ];
    const o = { models, maxSteps: 100, hasMask: true, methods: describeModels(models) };
    assert.throws(
      () => validateOptions({ method: 'diffusion', model: 'taef2-hf' }, o),
      (e: unknown) =>
        e instanceof HttpError &&
        e.status === 400 &&
        e.field === 'method' &&
        /method diffusion cannot run with model taef2-hf/.test(e.message),
    );
    assert.equal(validateOptions({ method: 'encoder', model: 'taef2-hf' }, o).parameters.method, 'encoder');
    assert.equal(validateOptions({ method: 'noise', model: 'taef2-hf' }, o).parameters.method, 'noise');
  });
});
