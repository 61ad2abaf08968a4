// Trains the learned immunizer (issue 16) against TAEF2 with its real weights: a thin wrapper
// around trainImmunizer() (src/attacks/train-immunizer.ts). Photos come pre-decoded from DATA
// (scripts/prepare-immunizer-data.mjs); the files named in --val are held out. Writes the weights
// (config.json + model.safetensors) and history.json to --out, checkpoints to --ckpt (resumes from
// there after a kill). Progress: one line every --log steps with loss, lr, s/step and ETA.
// Usage: node scripts/train-immunizer.mjs --data DIR --out DIR [--ckpt DIR] [--steps N] [--batch B]
//   [--crops 128,192,256,320] [--lr 1e-3] [--width 128] [--blocks 6] [--norm-groups 0]
//   [--precision bf16] [--threads 2] [--jpeg 0.25] [--val a,b,c] [--val-every 200] [--seed 0] [--init WEIGHTS_DIR]
import { readdirSync, writeFileSync, mkdirSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { trainImmunizer } from '../dist/src/attacks/train-immunizer.js';
import { readImage } from '../dist/src/io/images.js';
import { ImmunizerNet, loadImmunizer, saveImmunizer } from '../dist/src/models/immunizer.js';
import { loadAutoencoderFromPath } from '../dist/src/models/load.js';
import { setNumThreads } from '../dist/src/torch/index.js';

const { values: a } = parseArgs({
  options: {
    data: { type: 'string' },
    out: { type: 'string' },
    ckpt: { type: 'string' },
    steps: { type: 'string', default: '2000' },
    batch: { type: 'string', default: '4' },
    crops: { type: 'string', default: '128,192,256' },
    lr: { type: 'string', default: '1e-3' },
    width: { type: 'string', default: '128' },
    blocks: { type: 'string', default: '6' },
    'norm-groups': { type: 'string', default: '0' },
    precision: { type: 'string', default: 'bf16' },
    threads: { type: 'string', default: '2' },
    jpeg: { type: 'string', default: '0' },
    val: { type: 'string', default: 'Storm,ColdRipple,Path,LadyBird' },
    'val-every': { type: 'string', default: '200' },
    log: { type: 'string', default: '10' },
    seed: { type: 'string', default: '0' },
    penalty: { type: 'string', default: '1e-3' },
    model: { type: 'string' },
    init: { type: 'string' },
  },
});
if (!a.data || !a.out) {
  console.error('usage: node scripts/train-immunizer.mjs --data DIR --out DIR [options] (see the file header)');
  process.exit(2);
}
setNumThreads(Number(a.threads));
const shared = resolve(process.env.IMMUNIZE_SHARED ?? join(import.meta.dirname, '..', '..', 'shared'));
const modelPath = a.model ?? join(shared, 'models', 'taef2-hf');
const autoencoder = loadAutoencoderFromPath(modelPath);
const valNames = new Set(a.val.split(',').filter(Boolean));
const train = [];
const val = [];
for (const f of readdirSync(a.data)
  .filter((n) => n.endsWith('.png'))
  .sort()) {
  const { tensor } = await readImage(join(a.data, f));
  (valNames.has(basename(f, '.png')) ? val : train).push(tensor);
}
console.log(`${train.length} training photos, ${val.length} validation photos (${[...valNames].join(', ')})`);
// --init DIR fine-tunes trained weights (fp32 copies; Adam's moments start from zero) instead of a random G.
const net = a.init
  ? loadImmunizer(a.init, { dtype: 'float32' })
  : new ImmunizerNet({
      hidden_channels: Number(a.width),
      num_blocks: Number(a.blocks),
      norm_groups: Number(a['norm-groups']),
      target_model: 'taef2',
      eps: 16 / 255,
    }).initRandom(Number(a.seed));
console.log(`G: ${net.parameterCount()} parameters, ${(net.macsPerPixel() / 1000).toFixed(1)} kMAC per pixel`);
const steps = Number(a.steps);
const logEvery = Number(a.log);
const fmt = (s) => `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, '0')}s`;
const t0 = Date.now();
const r = trainImmunizer(net, {
  train,
  val,
  autoencoder,
  steps,
  batch: Number(a.batch),
  cropSizes: a.crops.split(',').map(Number),
  lr: Number(a.lr),
  eps: 16 / 255,
  precision: a.precision,
  seed: Number(a.seed),
  jpegProb: Number(a.jpeg),
  saturationPenalty: Number(a.penalty),
  valEvery: Number(a['val-every']),
  checkpointDir: a.ckpt,
  checkpointEvery: 50,
  onProgress: (e) => {
    if (e.kind === 'val')
      console.log(
        `[val] step ${e.step}: loss ${e.val.loss.toFixed(5)}  recon PSNR ${e.val.psnr.toFixed(2)} dB (clean ${e.val.cleanPsnr.toFixed(2)} dB)`,
      );
    else if (e.step % logEvery === 0 || e.step === e.steps)
      console.log(
        `step ${e.step}/${e.steps}  loss ${e.loss.toFixed(5)}  saturated ${(100 * e.saturated).toFixed(1)}%  lr ${e.lr.toExponential(2)}  ${e.secondsPerStep.toFixed(2)} s/step  ETA ${fmt(e.etaSeconds)}  (${new Date().toISOString().slice(11, 19)})`,
      );
  },
});
mkdirSync(a.out, { recursive: true });
saveImmunizer(a.out, net, { dtype: 'float16' });
writeFileSync(
  join(a.out, 'history.json'),
  JSON.stringify(
    { args: a, steps: r.step, trainSeconds: r.trainSeconds, wallSeconds: (Date.now() - t0) / 1000, history: r.history },
    null,
    1,
  ),
);
console.log(`done: ${r.step} steps, ${fmt(r.trainSeconds)} of training; weights in ${a.out}`);
