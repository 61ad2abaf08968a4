import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { assertStateShapes } from '../helpers/state-shapes.js';
import { loadSafetensors, saveSafetensors } from '../../src/io/tensors.js';
import { CLIPScorer, cosineSimilarityMatrix } from '../../src/metrics/clip-score.js';
import {
  CLIPModel,
  DEFAULT_CLIP_MODEL,
  loadCLIPModel,
  loadCLIPModelFromPath,
  parseCLIPConfig,
  resolveCLIPFolder,
} from '../../src/models/clip/clip-model.js';
import { clipPreprocess, pilResize, resizedSize } from '../../src/models/clip/image-processor.js';
import { CLIPTokenizer } from '../../src/models/clip/tokenizer.js';
import { CLIPVisionModel, parseCLIPVisionConfig } from '../../src/models/clip/vision-model.js';
import { F, full, manualSeed, noGrad, rand, randn, scope } from '../../src/torch/index.js';
import { sharedPath, skipReason } from '../helpers/shared.js';

// openai/clip-vit-large-patch14's config.json (the parts that shape the model).
const L14 = {
  model_type: 'clip',
  projection_dim: 768,
  logit_scale_init_value: 2.6592,
  text_config: {
    hidden_size: 768,
    intermediate_size: 3072,
    num_attention_heads: 12,
    num_hidden_layers: 12,
    projection_dim: 768,
  },
  vision_config: {
    hidden_size: 1024,
    intermediate_size: 4096,
    num_attention_heads: 16,
    num_hidden_layers: 24,
    patch_size: 14,
    projection_dim: 768,
  },
};

test('cosineSimilarityMatrix: unit diagonal for the same rows, scale-invariant, [N, M], argument checks', () => {
  scope(() => {
    manualSeed(0);
    const a = randn([3, 5]);
    const s = cosineSimilarityMatrix(a, a.mul(7));
    assert.deepEqual(s.shape, [3, 3]);
    for (let i = 0; i < 3; i++) assert.ok(Math.abs(s.select(0, i).select(0, i).item() - 1) < 1e-6);
    assert.ok(s.abs().max().item() <= 1 + 1e-6);
    assert.deepEqual(cosineSimilarityMatrix(a, randn([4, 5])).shape, [3, 4]);
    assert.throws(() => cosineSimilarityMatrix(a, randn([4, 6])), /embedding sizes differ \(5 and 6\)/);
  });
});

test('CLIP configs: transformers 4.27 defaults, vision_config_dict overrides, ViT-L/14 has 427,616,513 parameters', () => {
  const v = parseCLIPVisionConfig({});
  assert.deepEqual(
    [v.hidden_size, v.num_hidden_layers, v.patch_size, v.image_size, v.hidden_act],
    [768, 12, 32, 224, 'quick_gelu'],
  );
  const o = parseCLIPVisionConfig({
    model_type: 'clip',
    vision_config: { patch_size: 16 },
    vision_config_dict: { patch_size: 14 },
  });
  assert.equal(o.patch_size, 14);
  assert.throws(
    () => parseCLIPVisionConfig({ image_size: 224, patch_size: 15 }),
    /image_size 224 is not a multiple of patch_size 15/,
  );
  assert.throws(() => parseCLIPVisionConfig({ hidden_act: 'swishy' }), /unknown hidden_act/);
  const model = new CLIPModel(parseCLIPConfig(L14));
  assert.equal(model.parameterCount(), 427_616_513);
  const shapes = model.stateShapes();
  assertStateShapes(shapes, 'clip-vit-l14');
  const vm = new CLIPVisionModel(L14);
  assert.equal(vm.stateShapes().get('vision_model.embeddings.patch_embedding.weight')?.join(), '1024,3,14,14');
});

// Pixel-exactness against Pillow itself is the conformance case golden/clip_model (its
// chelsea_preprocessed_224 is CLIPProcessor's output; compared within 1e-4, under one uint8 level).
test('image preprocessing: torchvision Resize/CenterCrop geometry, Pillow bicubic keeps constants and the same size, tensor path within 1/255-ish', () => {
  assert.deepEqual(resizedSize(300, 451, 224), [224, 336]);
  assert.deepEqual(resizedSize(451, 300, 224), [336, 224]);
  assert.deepEqual(resizedSize(224, 224, 224), [224, 224]);
  // Pillow keeps constant images constant and returns the same pixels for the same size.
  const flat = new Uint8Array(17 * 13 * 3).fill(77);
  assert.ok(pilResize(flat, 17, 13, 3, 5, 9).every((v) => v === 77));
  const ramp = Uint8Array.from({ length: 8 * 4 * 3 }, (_, i) => (i * 7) % 256);
  assert.deepEqual(pilResize(ramp, 8, 4, 3, 8, 4), ramp);
  scope(() => {
    manualSeed(1);
    const small = rand([2, 3, 20, 20]);
    const img = F.interpolate(small, { size: [240, 320], mode: 'bilinear' }); // smooth, 240×320
    const pil = clipPreprocess(img);
    assert.deepEqual(pil.shape, [2, 3, 224, 224]);
    const t = clipPreprocess(img, { resample: 'tensor' });
    const gap = t.sub(pil).abs().max().item();
    assert.ok(gap < 0.03, `the float path stays within ~1/255 (after normalisation) of the uint8 PIL path: ${gap}`);
    // Normalisation: a mid-grey image maps to (0.5 − mean) / std per channel.
    const grey = clipPreprocess(full([1, 3, 300, 300], 128 / 255));
    assert.ok(Math.abs(grey.select(1, 0).mean().item() - (128 / 255 - 0.48145466) / 0.26862954) < 1e-5);
    assert.throws(() => clipPreprocess(rand([1, 1, 30, 30])), /clipPreprocess: expected RGB images/);
    assert.throws(() => clipPreprocess(img, { resample: 'lanczos' as never }), /resample must be 'pil' or 'tensor'/);
  });
});

const golden = sharedPath('golden', 'clip_model');
const tokenizerDir = sharedPath('golden', 'clip_tokenizer');

test(
  'CLIPModel on the golden weights: features, forward logits, CLIPScorer end to end',
  { skip: golden === null || tokenizerDir === null ? skipReason('golden', 'clip_model') : false },
  () => {
    const model = loadCLIPModelFromPath(golden!);
    const io = loadSafetensors(join(golden!, 'io.safetensors'));
    try {
      scope(() => {
        const px = io.get('pixel_values')!;
        const img = noGrad(() => model.getImageFeatures(px));
        assert.ok(img.allclose(io.get('image_embeds')!, 1e-4, 1e-4));
        const out = noGrad(() => model.forward(io.get('input_ids')!, px));
        assert.deepEqual(out.logitsPerImage.shape, [2, 3]);
        assert.ok(out.imageEmbeds.norm(2, 1).sub(1).abs().max().item() < 1e-5);
        // The scorer: tokenizer + preprocessing (the golden model sees 32-px images) + cosine.
        const scorer = new CLIPScorer(model, CLIPTokenizer.fromFolder(tokenizerDir!), { preprocess: { size: 32 } });
        manualSeed(2);
        const images = rand([2, 3, 40, 48]);
        const prompts = ['two men in a wedding', 'a cat', 'dog under heavy rain and muddy ground real'];
        const cos = scorer.similarity(images, prompts);
        assert.deepEqual(cos.shape, [2, 3]);
        const direct = noGrad(() =>
          cosineSimilarityMatrix(
            model.getImageFeatures(clipPreprocess(images, { size: 32 })),
            model.getTextFeatures(io.get('input_ids')!),
          ),
        );
        assert.ok(
          cos.allclose(direct, 1e-5, 1e-5),
          "transformers-style padding gives the same pooled text features as openai/CLIP's 0 padding",
        );
        const score = scorer.clipScore(images, prompts);
        assert.ok(score.allclose(cos.clampMin(0).mul(100), 1e-5, 1e-4));
        assert.throws(() => scorer.textEmbeddings([]), /non-empty array of prompts/);
        assert.throws(
          () => model.getImageFeatures(rand([1, 3, 33, 33])),
          /CLIPVisionModel.forward: expected pixel values \[N, 3, 32, 32\]/,
        );
      });
    } finally {
      model.dispose();
      for (const v of io.values()) v.dispose();
    }
  },
);

test(
  'CLIPModel: checkpoints without position_ids (transformers ≥ 4.31) load the same',
  { skip: golden === null ? skipReason('golden', 'clip_model') : false },
  () => {
    const dir = mkdtempSync(join(tmpdir(), 'immunize-clip-'));
    const weights = loadSafetensors(join(golden!, 'weights.safetensors'));
    const io = loadSafetensors(join(golden!, 'io.safetensors'));
    try {
      saveSafetensors(
        join(dir, 'model.safetensors'),
        new Map([...weights].filter(([k]) => !k.endsWith('position_ids'))),
      );
      copyFileSync(join(golden!, 'config.json'), join(dir, 'config.json'));
      const m = loadCLIPModelFromPath(dir);
      try {
        assert.equal(m.stateDict().get('vision_model.embeddings.position_ids')?.dtype, 'int64');
        scope(() =>
          assert.ok(
            noGrad(() => m.getImageFeatures(io.get('pixel_values')!)).allclose(io.get('image_embeds')!, 1e-4, 1e-4),
          ),
        );
      } finally {
        m.dispose();
      }
    } finally {
      for (const v of [...weights.values(), ...io.values()]) v.dispose();
    }
  },
);

test('loading: a repo id goes through the hub cache (offline and uncached: a clear error); local paths as given', async () => {
  assert.equal(DEFAULT_CLIP_MODEL, 'openai/clip-vit-large-patch14');
  const cacheDir = mkdtempSync(join(tmpdir(), 'immunize-hub-'));
  await assert.rejects(
    () => loadCLIPModel(DEFAULT_CLIP_MODEL, { hub: { offline: true, cacheDir } }),
    (e: Error & { code?: string }) => e.code === 'E_HUB_OFFLINE',
  );
  assert.equal(await resolveCLIPFolder(cacheDir), cacheDir);
  assert.throws(() => loadCLIPModelFromPath(cacheDir), /no \.safetensors weights found/);
  assert.throws(() => loadCLIPModelFromPath(join(cacheDir, 'nope')), /does not exist/);
  writeFileSync(join(cacheDir, 'pytorch_model.bin'), 'x');
  assert.throws(
    () => loadCLIPModelFromPath(cacheDir),
    (e: Error & { code?: string }) => e.code === 'E_PICKLE_REFUSED',
  );
});
