// kind "clip_model": transformers' CLIPModel from config.json + weights.safetensors. image_embeds
// = get_image_features(pixel_values), text_embeds = get_text_features(input_ids), cosine = the
// image × prompt cosine matrix; `<stem>_preprocessed_<n>` = CLIP preprocessing of the image
// <stem>.png/.jpg (looked up beside the case, then in the shared images folder). When prompts and
// a tokenizer folder are at hand, the prompts must tokenize to input_ids up to their end token
// (openai/CLIP pads with 0, transformers with the pad token; the pooled output is the same).
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { readImage } from '../../../src/io/images.js';
import { cosineSimilarityMatrix } from '../../../src/metrics/clip-score.js';
import { loadCLIPModelFromPath } from '../../../src/models/clip/clip-model.js';
import { clipPreprocess } from '../../../src/models/clip/image-processor.js';
import { CLIPTokenizer } from '../../../src/models/clip/tokenizer.js';
import { noGrad, scope, type Tensor } from '../../../src/torch/index.js';
import { sharedDir } from '../../helpers/shared.js';
import { assertClose, toleranceFor } from '../compare.js';
import { caseTensors } from '../io.js';
import type { CaseRunner } from './types.js';

function findImage(dir: string, stem: string): string | null {
  const shared = sharedDir();
  const folders = [dir, resolve(dir, '..', '..', 'images'), ...(shared === null ? [] : [join(shared, 'images')])];
  for (const f of folders)
    for (const ext of ['.png', '.jpg', '.jpeg']) if (existsSync(join(f, stem + ext))) return join(f, stem + ext);
  return null;
}

const run: CaseRunner = async ({ dir, spec }, t) => {
  using io = caseTensors(dir, spec.io);
  const { ref } = io;
  const weights = join(dir, String(spec.weights ?? 'weights.safetensors'));
  const model = loadCLIPModelFromPath(existsSync(weights) ? weights : dir);
  const tol = (k: string) => toleranceFor(spec.tolerances, k, spec.tolerances?.default);
  const report = (name: string, got: Tensor) => {
    const r = assertClose(got, ref(name), tol(name), name);
    t.diagnostic(`${name}: max |diff| ${r.maxAbs.toExponential(3)}`);
  };
  try {
    await t.test('config: heads as the case says', () => {
      if (spec.vision_heads !== undefined)
        assert.equal(model.config.visionConfig.num_attention_heads, spec.vision_heads);
      if (spec.text_heads !== undefined) assert.equal(model.config.textConfig.num_attention_heads, spec.text_heads);
    });
    await t.test('image_embeds, text_embeds, cosine', () =>
      noGrad(() =>
        scope(() => {
          const img = model.getImageFeatures(ref('pixel_values'));
          const txt = model.getTextFeatures(ref('input_ids'));
          if (io.has('image_embeds')) report('image_embeds', img);
          if (io.has('text_embeds')) report('text_embeds', txt);
          if (io.has('cosine')) report('cosine', cosineSimilarityMatrix(img, txt));
          const out = model.forward(ref('input_ids'), ref('pixel_values'));
          const scaled = cosineSimilarityMatrix(img, txt).mul(model.logitScale.t.exp());
          assertClose(
            out.logitsPerImage,
            scaled,
            { atol: 1e-4, rtol: 1e-4 },
            'logits_per_image = exp(logit_scale)·cosine',
          );
        }),
      ),
    );
    for (const key of [...io.all.keys()].filter((k) => /^.+_preprocessed_\d+$/.test(k))) {
      const [, stem, n] = /^(.+)_preprocessed_(\d+)$/.exec(key)!;
      const path = findImage(dir, stem!);
      await t.test(
        `preprocess ${stem} → ${n}px`,
        { skip: path === null ? `image ${stem}.png/.jpg not found beside the case or in the shared images` : false },
        async () => {
          const img = await readImage(path!);
          try {
            noGrad(() => scope(() => report(key, clipPreprocess(img.tensor, { size: Number(n) }))));
          } finally {
            img.tensor.dispose();
          }
        },
      );
    }
    const prompts = spec.prompts as string[] | undefined;
    const tokDir = [join(dir, 'tokenizer'), dir, resolve(dir, '..', 'clip_tokenizer')].find(
      (d) => existsSync(join(d, 'vocab.json')) && existsSync(join(d, 'merges.txt')),
    );
    if (Array.isArray(prompts) && io.has('input_ids')) {
      await t.test(
        'prompts tokenize to input_ids (up to the end token)',
        { skip: tokDir === undefined ? 'no tokenizer folder (vocab.json, merges.txt) beside the case' : false },
        () => {
          const ids = ref('input_ids');
          const tok = CLIPTokenizer.fromFolder(tokDir!);
          const width = ids.shape[1]!;
          const ours = tok.call(prompts, { maxLength: width, padding: 'max_length', truncation: true }).inputIds;
          const theirs = ids.toArray();
          ours.forEach((row, i) => {
            const want = theirs.slice(i * width, (i + 1) * width);
            const end = row.indexOf(tok.eosTokenId);
            assert.deepEqual(row.slice(0, end + 1), want.slice(0, end + 1), `prompt ${i} ('${prompts[i]}')`);
            assert.ok(
              want.slice(end + 1).every((v) => v === 0 || v === tok.padTokenId),
              `prompt ${i}: reference padding is neither 0 nor the pad token`,
            );
          });
        },
      );
    }
  } finally {
    model.dispose();
  }
};
export default run;
