// kind "clip_tokenizer": CLIPTokenizer from the case's vocab.json + merges.txt must give exactly
// the reference token ids for every prompt. The call's arguments (max_length, padding,
// truncation) are read from case.json's `call` description when it states them.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { CLIPTokenizer, type CallOptions } from '../../../src/models/clip/tokenizer.js';
import type { CaseRunner } from './types.js';

/** Reads `max_length=77`, `padding='max_length'`, `truncation=True` out of the case's call text. */
export function callOptions(call: unknown): CallOptions {
  const text = typeof call === 'string' ? call : '';
  const o: CallOptions = {};
  const len = /max_length\s*=\s*(\d+)/.exec(text);
  if (len) o.maxLength = Number(len[1]);
  const pad = /padding\s*=\s*(?:'(\w+)'|(True|False))/.exec(text);
  if (pad)
    o.padding = pad[1] === 'longest' || pad[2] === 'True' ? 'longest' : pad[1] === 'max_length' ? 'max_length' : false;
  const trunc = /truncation\s*=\s*(True|False)/.exec(text);
  if (trunc) o.truncation = trunc[1] === 'True';
  return o;
}

const run: CaseRunner = async ({ dir, spec }, t) => {
  const prompts = spec.prompts as unknown;
  const expected = spec.input_ids as unknown;
  assert.ok(Array.isArray(prompts) && Array.isArray(expected), 'case.json needs arrays `prompts` and `input_ids`');
  assert.equal(expected.length, prompts.length, 'case.json: one input_ids row per prompt');
  const tok = CLIPTokenizer.fromFolder(join(dir, String(spec.tokenizer_dir ?? '.')));
  const o = callOptions(spec.call);

  await t.test(`${prompts.length} prompts → input_ids (exact)`, () => {
    const got = tok.call(prompts as string[], o).inputIds;
    const wrong: string[] = [];
    (expected as number[][]).forEach((want, i) => {
      const row = got[i]!;
      if (JSON.stringify(row) === JSON.stringify(want)) return;
      const at = row.findIndex((id, j) => id !== want[j]);
      const j = at < 0 ? Math.min(row.length, want.length) : at;
      wrong.push(
        `prompt ${i} ${JSON.stringify(String(prompts[i]).slice(0, 60))}: first difference at position ${j} (length ${row.length} vs ${want.length}): got [${row.slice(j, j + 6).join(', ')}…], expected [${want.slice(j, j + 6).join(', ')}…]`,
      );
    });
    assert.deepEqual(
      wrong,
      [],
      `${wrong.length} of ${prompts.length} prompts tokenized differently:\n${wrong.join('\n')}`,
    );
  });

  if (Array.isArray(spec.attention_mask)) {
    await t.test('attention_mask', () => {
      assert.deepEqual(tok.call(prompts as string[], o).attentionMask, spec.attention_mask);
    });
  }

  const width = (expected as number[][])[0]?.length ?? 0;
  if ((expected as number[][]).every((r) => r.length === width))
    await t.test('inputIdsTensor gives the same ids as int64', () => {
      using ids = tok.inputIdsTensor(prompts as string[], o);
      assert.equal(ids.dtype, 'int64');
      assert.deepEqual(ids.shape, [prompts.length, width]);
      assert.deepEqual(ids.toArray(), (expected as number[][]).flat());
    });
};
export default run;
