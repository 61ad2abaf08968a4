// scrubMessage (src/server/scrub.ts): job files by name, storage as <storage>, models by id, other absolute paths as <path>.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { homedir } from 'node:os';
import { scrubMessage } from '../../src/server/scrub.js';

const ctx = {
  storageRoot: '/srv/immunize',
  jobDir: '/srv/immunize/jobs/0123456789abcdef0123456789abcdef',
  models: [
    { id: 'taef2-hf', spec: '/work/shared/models/taef2-hf' },
    { id: 'sd', spec: 'stable-diffusion-v1-5/stable-diffusion-v1-5' },
    { id: 'local', spec: './models/tiny' },
  ],
};

test('server paths in error messages become names, ids or placeholders', () => {
  const cases: [string, string][] = [
    [
      '/work/shared/models/taef2-hf: not a diffusers pipeline folder',
      '<model taef2-hf>: not a diffusers pipeline folder',
    ],
    ['/work/shared/models/taef2-hf/vae/config.json: missing', '<model taef2-hf>/vae/config.json: missing'],
    ['/srv/immunize/jobs/0123456789abcdef0123456789abcdef/input.png: cannot decode', 'input.png: cannot decode'],
    ['cannot write /srv/immunize/secret', 'cannot write <storage>/secret'],
    [`${process.cwd()}/models/tiny/unet: missing`, '<model local>/unet: missing'],
    ["open '/usr/lib/x86_64-linux-gnu/libtorch.so' failed", "open '<path>' failed"],
    ['/root/.cache/huggingface/hub/models--acme--sd15/snapshots/abc/unet/config.json: bad JSON', 'acme/sd15: bad JSON'],
    [`${homedir()}/x/y.bin refused`, '<path> refused'],
    // Not paths: fractions, repo ids, URLs stay as they are.
    [
      'eps: must be at most 1 but received 16/255 (stable-diffusion-v1-5/stable-diffusion-v1-5)',
      'eps: must be at most 1 but received 16/255 (stable-diffusion-v1-5/stable-diffusion-v1-5)',
    ],
    ['cannot reach https://huggingface.co/api/models/x', 'cannot reach https://huggingface.co/api/models/x'],
  ];
  for (const [input, want] of cases) assert.equal(scrubMessage(input, ctx), want, input);
});
