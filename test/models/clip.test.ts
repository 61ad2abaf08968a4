import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ImmunizeError } from '../../src/errors.js';
import { saveSafetensors } from '../../src/io/tensors.js';
import { CLIPTextModel, loadCLIPTextModel, parseCLIPTextConfig } from '../../src/models/clip/text-model.js';
import { CLIPTokenizer, htmlUnescape } from '../../src/models/clip/tokenizer.js';
import {
  arange,
  assertGradcheck,
  liveTensors,
  manualSeed,
  noGrad,
  randn,
  scope,
  tensor,
  type DType,
  type Tensor,
} from '../../src/torch/index.js';
import { readManifestFolder } from '../helpers/manifest.js';
import { sharedPath, skipReason } from '../helpers/shared.js';
import { tinyCLIP as tinyConfig } from '../helpers/tiny-configs.js';

// ---- a tiny CLIP-style tokenizer folder -----------------------------------------------------------

const SYMBOLS = [...'abcdefghijklmnopqrstuvwxyz!&.,'];
const MERGES = ['h e', 'l l', 'he ll', 'hell o</w>', 'c a', 'ca t</w>'];

function tinyVocab(): Record<string, number> {
  const tokens = [
    ...SYMBOLS,
    ...SYMBOLS.map((s) => s + '</w>'),
    ...MERGES.map((m) => m.replace(' ', '')),
    '<|startoftext|>',
    '<|endoftext|>',
  ];
  return Object.fromEntries(tokens.map((t, i) => [t, i]));
}

function tinyTokenizerDir(files: Record<string, string | null> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'immunize-clip-tok-'));
  const all: Record<string, string | null> = {
    'vocab.json': JSON.stringify(tinyVocab()),
    'merges.txt': '#version: 0.2\n' + MERGES.join('\n') + '\n',
    'tokenizer_config.json': JSON.stringify({
      model_max_length: 8,
      bos_token: { content: '<|startoftext|>' },
      pad_token: '<|endoftext|>',
    }),
    ...files,
  };
  for (const [name, text] of Object.entries(all)) if (text !== null) writeFileSync(join(dir, name), text);
  return dir;
}

const V = tinyVocab();
const BOS = V['<|startoftext|>']!;
const EOS = V['<|endoftext|>']!;

test('tokenizer: BPE applies merges by rank, marks word ends with </w>, maps unknown symbols to unk', () => {
  const tok = CLIPTokenizer.fromFolder(tinyTokenizerDir());
  assert.deepEqual(tok.tokenize('hello cat'), ['hello</w>', 'cat</w>']);
  // 'hell o</w>' needs o to end the word: in "hellos" BPE stops at hell + o + s</w>.
  assert.deepEqual(tok.tokenize('hellos'), ['hell', 'o', 's</w>']);
  assert.deepEqual(tok.encode('hello cat'), [V['hello</w>'], V['cat</w>']]);
  assert.deepEqual(
    tok.encode('é'),
    [EOS, EOS],
    'two UTF-8 bytes, neither in the tiny vocabulary: unk (= <|endoftext|>) each',
  );
  assert.deepEqual(tok.encode('<|startoftext|>hello'), [BOS, V['hello</w>']], 'literal specials stay whole');
  assert.equal(tok.decode(tok.call('hello cat').inputIds[0]!), 'hello cat');
});

test('tokenizer: html-unescape, whitespace collapse, strip and lower-case as openai/CLIP', () => {
  const tok = CLIPTokenizer.fromFolder(tinyTokenizerDir());
  assert.equal(tok.normalize('  HELLO&amp;\u00a0\t Cat\n '), 'hello& cat');
  assert.equal(tok.normalize('&amp;amp;'), '&', 'unescaped twice, as basic_clean does');
  assert.deepEqual(tok.tokenize('  HELLO&amp;\u00a0\t Cat  '), tok.tokenize('hello & cat'));
  // Python's html.unescape rules: numeric references via Windows-1252, legacy names without ';'.
  assert.equal(htmlUnescape('&#128;&#x41;&eacute &notin; &amp &bogus;'), '\u20acAé \u2209 & &bogus;');
});

test('tokenizer call: start/end tokens, truncation keeps <|endoftext|> last, padding from the config', () => {
  const tok = CLIPTokenizer.fromFolder(tinyTokenizerDir());
  assert.equal(tok.modelMaxLength, 8);
  const h = V['hello</w>']!;
  const { inputIds, attentionMask } = tok.call(['hello', 'hello hello hello hello hello hello hello']);
  assert.deepEqual(inputIds[0], [BOS, h, EOS, EOS, EOS, EOS, EOS, EOS]);
  assert.deepEqual(attentionMask[0], [1, 1, 1, 0, 0, 0, 0, 0]);
  assert.deepEqual(inputIds[1], [BOS, h, h, h, h, h, h, EOS], 'cut to 8 with the end token last');
  assert.deepEqual(tok.call('hello', { maxLength: 4 }).inputIds, [[BOS, h, EOS, EOS]]);
  assert.deepEqual(tok.call(['hello', 'hello cat'], { padding: 'longest' }).inputIds, [
    [BOS, h, EOS, EOS],
    [BOS, h, V['cat</w>'], EOS],
  ]);
  assert.deepEqual(tok.call(['hello', 'hello cat'], { padding: false }).inputIds, [
    [BOS, h, EOS],
    [BOS, h, V['cat</w>'], EOS],
  ]);
  assert.equal(
    tok.call('hello hello hello hello hello hello hello', { truncation: false }).inputIds[0]!.length,
    9,
    'no truncation: the row stays longer',
  );
  assert.throws(() => tok.call('hello', { maxLength: 1 }), /maxLength to be an integer >= 2/);
  assert.throws(
    () => tok.call('hello', { padding: 'max' as never }),
    /padding to be 'max_length', 'longest' or false but received max/,
  );
  using ids = tok.inputIdsTensor(['hello', 'cat']);
  assert.equal(ids.dtype, 'int64');
  assert.deepEqual(ids.shape, [2, 8]);
  assert.deepEqual(ids.toArray().slice(8, 11), [BOS, V['cat</w>'], EOS]);
  assert.throws(() => tok.inputIdsTensor(['hello', 'hello cat'], { padding: false }), /rows have different lengths/);
});

test('tokenizer: pad token from special_tokens_map.json overrides tokenizer_config.json (SD 2.x pads with "!")', () => {
  const tok = CLIPTokenizer.fromFolder(
    tinyTokenizerDir({ 'special_tokens_map.json': JSON.stringify({ pad_token: '!' }) }),
  );
  assert.equal(tok.padTokenId, V['!']);
  assert.deepEqual(tok.call('cat', { maxLength: 5 }).inputIds, [[BOS, V['cat</w>'], EOS, V['!'], V['!']]]);
});

test('tokenizer: missing or malformed files are named in the error', () => {
  const code = (c: string, re: RegExp) => (e: unknown) =>
    e instanceof ImmunizeError && e.code === c && re.test(e.message);
  assert.throws(
    () => CLIPTokenizer.fromFolder(join(tmpdir(), 'no-such-tokenizer-dir')),
    code('E_MODEL_FILE', /no-such-tokenizer-dir does not exist/),
  );
  assert.throws(
    () => CLIPTokenizer.fromFolder(tinyTokenizerDir({ 'vocab.json': null })),
    code('E_MODEL_FILE', /vocab\.json is missing/),
  );
  assert.throws(
    () => CLIPTokenizer.fromFolder(tinyTokenizerDir({ 'vocab.json': '{"a": 0,' })),
    code('E_CONFIG', /vocab\.json is not valid JSON/),
  );
  assert.throws(
    () => CLIPTokenizer.fromFolder(tinyTokenizerDir({ 'vocab.json': '{"a": "zero"}' })),
    code('E_CONFIG', /vocab\.json: entry 'a' should map to a non-negative integer id/),
  );
  assert.throws(
    () => CLIPTokenizer.fromFolder(tinyTokenizerDir({ 'merges.txt': null })),
    code('E_MODEL_FILE', /merges\.txt is missing/),
  );
  assert.throws(
    () => CLIPTokenizer.fromFolder(tinyTokenizerDir({ 'merges.txt': '#version: 0.2\nh e\nhell\n' })),
    code('E_CONFIG', /merges\.txt: line 3 should be two symbols/),
  );
  assert.throws(
    () => CLIPTokenizer.fromFolder(tinyTokenizerDir({ 'tokenizer_config.json': '{oops' })),
    code('E_CONFIG', /tokenizer_config\.json is not valid JSON/),
  );
  assert.throws(
    () => CLIPTokenizer.fromFolder(tinyTokenizerDir({ 'special_tokens_map.json': '{"pad_token": "<pad>"}' })),
    code('E_CONFIG', /pad token '<pad>' is not in the vocabulary/),
  );
});

test('tokenizer: the real CLIP vocabulary, from a pipeline folder (tokenizer/)', (t) => {
  const dir = sharedPath('golden', 'pipeline_img2img');
  if (dir === null) return t.skip(skipReason('golden', 'pipeline_img2img'));
  const tok = CLIPTokenizer.fromFolder(dir);
  assert.equal(tok.vocabSize, 49408);
  assert.deepEqual([tok.bosTokenId, tok.eosTokenId, tok.padTokenId], [49406, 49407, 49407]);
  assert.deepEqual(
    tok.call('a photo of two men in a wedding').inputIds[0]!.slice(0, 10),
    [49406, 320, 1125, 539, 1237, 1656, 530, 320, 3101, 49407],
  );
  const long = tok.call('word '.repeat(100)).inputIds[0]!;
  assert.equal(long.length, 77);
  assert.equal(long[76], 49407);
  assert.equal(tok.decode(tok.encode('A cafe, 4k!')), 'a cafe , 4 k !');
});

// ---- a tiny CLIPTextModel -------------------------------------------------------------------------

function randomWeights(m: CLIPTextModel, dtype: DType = 'float32', seed = 0): Map<string, Tensor> {
  manualSeed(seed);
  return scope(
    () =>
      new Map(
        [...m.stateShapes()].map(([k, s]) => [
          k,
          k.endsWith('position_ids') ? arange(0, s[1]!).reshape(s) : randn(s, { dtype }).mul(0.5),
        ]),
      ),
  );
}

function tinyModel(config: Record<string, unknown> = tinyConfig, dtype: DType = 'float32'): CLIPTextModel {
  const m = new CLIPTextModel(config);
  const w = randomWeights(m, dtype);
  m.loadStateDict(w);
  for (const v of w.values()) v.dispose();
  return m;
}

const ids = (rows: number[][]) => tensor(BigInt64Array.from(rows.flat(), BigInt), [rows.length, rows[0]!.length]);

test('text config: transformers defaults, nested CLIPConfig, clear errors', () => {
  const c = parseCLIPTextConfig({ hidden_size: 64, num_attention_heads: 4 });
  assert.equal(c.vocab_size, 49408);
  assert.equal(c.hidden_act, 'quick_gelu');
  assert.equal(
    parseCLIPTextConfig({
      model_type: 'clip',
      text_config: { num_hidden_layers: 3, hidden_act: 'gelu' },
      vision_config: {},
    }).num_hidden_layers,
    3,
  );
  assert.throws(
    () => parseCLIPTextConfig({ ...tinyConfig, hidden_act: 'mish' }),
    (e: unknown) =>
      e instanceof ImmunizeError &&
      e.code === 'E_CONFIG' &&
      /unknown hidden_act "mish" \(expected one of quick_gelu, gelu/.test(e.message),
  );
  assert.throws(
    () => new CLIPTextModel({ ...tinyConfig, hidden_size: 9 }),
    /hidden_size 9 is not divisible by num_attention_heads 2/,
  );
  assert.throws(
    () => parseCLIPTextConfig({ ...tinyConfig, num_hidden_layers: 0 }),
    /num_hidden_layers should be a positive integer but is 0/,
  );
});

test('module paths are transformers state-dict keys (SD v1.5 text encoder manifest)', (t) => {
  const dir = sharedPath('golden', 'manifest_sd15_text_encoder');
  if (dir === null) return t.skip(skipReason('golden', 'manifest_sd15_text_encoder'));
  const { config, manifest } = readManifestFolder(dir);
  const m = new CLIPTextModel(config);
  assert.deepEqual(
    [...m.stateShapes()],
    manifest.keys.map(([k, s]) => [k, s]),
    'same keys, shapes and registration order',
  );
  assert.equal(m.parameterCount(), manifest.parameter_count);
});

test('forward rejects inputs it cannot embed, with the reason', () => {
  const m = tinyModel();
  try {
    scope(() => {
      assert.throws(
        () => m.forward(ids([[1, 2, 3, 4, 5, 6, 7]])),
        (e: unknown) =>
          e instanceof ImmunizeError &&
          e.code === 'E_SHAPE' &&
          /7 tokens per row, but the model has 6 positions/.test(e.message),
      );
      assert.throws(
        () => m.forward(ids([[1, 20]])),
        /token ids must be in \[0, 20\) \(vocab_size\) but range over \[1, 20\]/,
      );
      using f = tensor([1, 2], [1, 2]);
      assert.throws(() => m.forward(f), /integer input ids \(int64 or int32\) but received float32/);
      using flat = tensor(BigInt64Array.from([1n, 2n]), [2]);
      assert.throws(() => m.forward(flat), /shape \[batch, length\]/);
    });
  } finally {
    m.dispose();
  }
});

test('causal attention: a token changes only its own and later positions; pooled output is the hidden state at the first max id', () => {
  const m = tinyModel();
  const before = liveTensors();
  try {
    noGrad(() =>
      scope(() => {
        const a = m.forward(ids([[18, 3, 4, 19, 19, 19]]), { outputHiddenStates: true });
        const b = m.forward(ids([[18, 3, 7, 19, 19, 19]]));
        assert.equal(a.hiddenStates!.length, 3);
        assert.deepEqual(a.lastHiddenState.shape, [1, 6, 8]);
        assert.ok(
          a.lastHiddenState.narrow(1, 0, 2).equal(b.lastHiddenState.narrow(1, 0, 2)),
          'positions 0-1 do not see position 2',
        );
        assert.ok(
          a.lastHiddenState
            .narrow(1, 2, 4)
            .sub(b.lastHiddenState.narrow(1, 2, 4))
            .abs()
            .amax([2])
            .min()
            .item() > 1e-4,
          'positions 2-5 do',
        );
        assert.ok(a.pooledOutput.equal(a.lastHiddenState.select(1, 3)), 'first 19 (the largest id) is at position 3');
        const padded = m.forward(ids([[18, 3, 4, 19, 0, 0]]), { attentionMask: ids([[1, 1, 1, 1, 0, 0]]) });
        const allOnes = m.forward(ids([[18, 3, 4, 19, 0, 0]]), { attentionMask: ids([[1, 1, 1, 1, 1, 1]]) });
        const none = m.forward(ids([[18, 3, 4, 19, 0, 0]]));
        assert.ok(allOnes.lastHiddenState.equal(none.lastHiddenState), 'an all-ones mask changes nothing');
        assert.ok(
          padded.lastHiddenState.narrow(1, 0, 4).equal(none.lastHiddenState.narrow(1, 0, 4)),
          'real tokens never saw the later padding',
        );
        assert.ok(
          !padded.lastHiddenState.narrow(1, 4, 2).allclose(none.lastHiddenState.narrow(1, 4, 2)),
          'padded positions no longer attend to padding',
        );
      }),
    );
    assert.equal(liveTensors(), before, 'forward leaves no tensors behind');
  } finally {
    m.dispose();
  }
});

test('position_ids: absent (transformers >= 4.31) or saved as float, the outputs are the same', () => {
  const m = new CLIPTextModel(tinyConfig);
  const w = randomWeights(m);
  const without = new Map(w);
  without.delete('text_model.embeddings.position_ids');
  const asFloat = new Map(w);
  using pf = w.get('text_model.embeddings.position_ids')!.to('float32');
  asFloat.set('text_model.embeddings.position_ids', pf);
  const a = new CLIPTextModel(tinyConfig).loadStateDict(w);
  const b = new CLIPTextModel(tinyConfig).loadStateDict(without);
  const c = new CLIPTextModel(tinyConfig).loadStateDict(asFloat);
  try {
    assert.equal(b.stateDict().get('text_model.embeddings.position_ids')!.dtype, 'int64');
    assert.equal(c.stateDict().get('text_model.embeddings.position_ids')!.dtype, 'int64');
    noGrad(() =>
      scope(() => {
        const x = ids([[18, 5, 6, 19]]);
        const ya = a.forward(x).lastHiddenState;
        assert.ok(ya.equal(b.forward(x).lastHiddenState));
        assert.ok(ya.equal(c.forward(x).lastHiddenState));
      }),
    );
    const bad = new Map(w);
    bad.set('text_model.embeddings.bogus', pf);
    assert.throws(
      () => new CLIPTextModel(tinyConfig).loadStateDict(bad),
      /unexpected 1 key\(s\): text_model\.embeddings\.bogus/,
    );
  } finally {
    for (const x of [a, b, c]) x.dispose();
    for (const v of w.values()) v.dispose();
  }
});

test('gradients flow through embeddings, attention and MLP (finite differences, float64)', () => {
  for (const act of ['quick_gelu', 'gelu']) {
    const m = new CLIPTextModel({
      ...tinyConfig,
      hidden_act: act,
      num_hidden_layers: 1,
      hidden_size: 4,
      intermediate_size: 6,
    });
    const w = randomWeights(m, 'float64', 1);
    const pos = w.get('text_model.embeddings.position_embedding.weight')!.requiresGrad_();
    const q = w.get('text_model.encoder.layers.0.self_attn.q_proj.weight')!.requiresGrad_();
    m.loadStateDict(w);
    try {
      const x = ids([[18, 2, 9, 19]]);
      const r = assertGradcheck(() => m.forward(x).lastHiddenState, [pos, q], { atol: 1e-6, rtol: 1e-4 });
      assert.equal(r.checked, 6 * 4 + 4 * 4);
      x.dispose();
    } finally {
      m.dispose();
      for (const v of w.values()) v.dispose();
    }
  }
});

test('loadCLIPTextModel: text_encoder folder, full CLIP checkpoint (vision tower dropped), pickle refused', () => {
  const dir = mkdtempSync(join(tmpdir(), 'immunize-clip-te-'));
  const m = tinyModel();
  const w = m.stateDict();
  writeFileSync(join(dir, 'config.json'), JSON.stringify(tinyConfig));
  saveSafetensors(join(dir, 'model.safetensors'), w);
  const full = join(dir, 'full');
  mkdirSync(full);
  writeFileSync(
    join(full, 'config.json'),
    JSON.stringify({ model_type: 'clip', text_config: tinyConfig, vision_config: {} }),
  );
  using extra = randn([3]);
  saveSafetensors(
    join(full, 'model.safetensors'),
    new Map([...w, ['vision_model.post_layernorm.weight', extra], ['logit_scale', extra]]),
  );
  const pickle = join(dir, 'pickle');
  mkdirSync(pickle);
  writeFileSync(join(pickle, 'config.json'), JSON.stringify(tinyConfig));
  writeFileSync(join(pickle, 'pytorch_model.bin'), 'not read');
  const a = loadCLIPTextModel(dir);
  const b = loadCLIPTextModel(full);
  try {
    noGrad(() =>
      scope(() => {
        const x = ids([[18, 1, 19]]);
        const want = m.forward(x).pooledOutput;
        assert.ok(a.forward(x).pooledOutput.equal(want));
        assert.ok(b.forward(x).pooledOutput.equal(want));
      }),
    );
    assert.throws(
      () => loadCLIPTextModel(pickle),
      (e: unknown) => e instanceof ImmunizeError && e.code === 'E_PICKLE_REFUSED',
    );
    assert.throws(() => loadCLIPTextModel(join(dir, 'none', 'model.safetensors')), /does not exist/);
    const noConfig = join(dir, 'noconfig');
    mkdirSync(noConfig);
    saveSafetensors(join(noConfig, 'model.safetensors'), w);
    assert.throws(
      () => loadCLIPTextModel(noConfig),
      (e: unknown) =>
        e instanceof ImmunizeError && e.code === 'E_MODEL_FILE' && /noconfig\/config\.json is missing/.test(e.message),
    );
  } finally {
    for (const x of [a, b, m]) x.dispose();
  }
});
