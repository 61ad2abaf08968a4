// kind "clip_text_model": transformers' CLIPTextModel from config.json + weights.safetensors;
// last_hidden_state, pooler_output and every hidden_states_NN that io.safetensors holds (NN = 00
// for the embeddings, k for encoder layer k), the penultimate layer named on its own. When the
// case gives prompts and a tokenizer folder can be found, the prompts must tokenize to its ids.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadCLIPTextModel } from '../../../src/models/clip/text-model.js';
import { CLIPTokenizer } from '../../../src/models/clip/tokenizer.js';
import { noGrad, scope, tensor, type Tensor } from '../../../src/torch/index.js';
import { assertClose, toleranceFor } from '../compare.js';
import { caseTensors, dataCheck } from '../io.js';
import type { CaseRunner } from './types.js';

/** Tokenizer folders the case names: inputs.tokenizer_dir, ./tokenizer, or a `../<case>/tokenizer` mentioned in case.json. */
function tokenizerDirs(dir: string, spec: Record<string, unknown>): string[] {
  const named = (spec['inputs'] as { tokenizer_dir?: unknown } | undefined)?.tokenizer_dir;
  const mentioned = [...JSON.stringify(spec).matchAll(/(\.\.\/[\w.-]+\/tokenizer)\b/g)].map((m) => m[1]!);
  return [...(typeof named === 'string' ? [named] : []), 'tokenizer', ...mentioned]
    .map((p) => resolve(dir, p))
    .filter((p) => existsSync(join(p, 'vocab.json')));
}

const run: CaseRunner = async ({ dir, spec }, t) => {
  using io = caseTensors(dir, spec.io);
  const { ref } = io;
  const weights = join(dir, String(spec.weights ?? 'weights.safetensors'));
  const model = loadCLIPTextModel(existsSync(weights) ? weights : dir);
  const tol = (k: string) => toleranceFor(spec.tolerances, k);
  const values = spec.inputs?.input_ids_values as number[][] | undefined;
  let ids: Tensor;
  if (io.has('input_ids')) ids = ref('input_ids');
  else if (Array.isArray(values))
    ids = tensor(
      BigInt64Array.from(values.flat(), (v) => BigInt(v)),
      [values.length, values[0]!.length],
    );
  else throw new Error('case has neither io.safetensors input_ids nor inputs.input_ids_values');
  const hiddenKeys = [...io.all.keys()].filter((k) => /^hidden_states_\d+$/.test(k)).sort();
  const layers = model.config.num_hidden_layers;
  try {
    if (io.has('input_ids') && Array.isArray(values)) {
      await dataCheck(t, 'input_ids in io.safetensors equal case.json input_ids_values', () => {
        assert.deepEqual(ids.toArray(), values.flat());
      });
    }
    const prompts = spec.inputs?.prompts as unknown;
    const tokDir = tokenizerDirs(dir, spec)[0];
    if (Array.isArray(prompts) && tokDir !== undefined) {
      await t.test(`prompts tokenize to input_ids (${tokDir})`, () => {
        const tok = CLIPTokenizer.fromFolder(tokDir);
        const got = tok.call(prompts as string[], {
          maxLength: ids.shape[1]!,
          padding: 'max_length',
          truncation: true,
        }).inputIds;
        assert.deepEqual(got.flat(), ids.toArray());
      });
    }
    const out = noGrad(() =>
      model.forward(ids, { outputHiddenStates: hiddenKeys.length > 0 || io.has('penultimate') }),
    );
    try {
      const report = (name: string, got: Tensor, want: Tensor, label = name) => {
        const r = assertClose(got, want, tol(name), label);
        t.diagnostic(`${label}: max |diff| ${r.maxAbs.toExponential(3)} (atol ${tol(name).atol})`);
      };
      await t.test('last_hidden_state', () =>
        report('last_hidden_state', out.lastHiddenState, ref('last_hidden_state')),
      );
      if (io.has('pooler_output'))
        await t.test('pooler_output', () => report('pooler_output', out.pooledOutput, ref('pooler_output')));
      if (hiddenKeys.length > 0) {
        await t.test(`hidden states (${hiddenKeys.join(', ')})`, () => {
          assert.equal(out.hiddenStates?.length, layers + 1, 'hiddenStates: embeddings + one per layer');
          for (const k of hiddenKeys) report(k, out.hiddenStates![Number(k.slice('hidden_states_'.length))]!, ref(k));
        });
        const penultimate = `hidden_states_${String(layers - 1).padStart(2, '0')}`;
        if (io.has(penultimate)) {
          await t.test('penultimate layer = hiddenStates.at(-2)', () =>
            report(penultimate, out.hiddenStates!.at(-2)!, ref(penultimate), `penultimate (${penultimate})`),
          );
        }
      }
      if (io.has('penultimate'))
        await t.test('penultimate', () => report('penultimate', out.hiddenStates!.at(-2)!, ref('penultimate')));
      if (out.hiddenStates !== undefined)
        await t.test('last_hidden_state = final_layer_norm(hiddenStates.at(-1))', () =>
          noGrad(() =>
            scope(() => {
              const again = model.textModel.finalLayerNorm.forward(out.hiddenStates!.at(-1)!);
              assert.ok(
                again.equal(out.lastHiddenState),
                'final_layer_norm of the last hidden state differs from lastHiddenState',
              );
            }),
          ),
        );
    } finally {
      out.lastHiddenState.dispose();
      out.pooledOutput.dispose();
      for (const h of out.hiddenStates ?? []) h.dispose();
    }
  } finally {
    model.dispose();
    if (!io.has('input_ids')) ids.dispose();
  }
};
export default run;
