// kind "unet_2d_condition": UNet2DConditionModel from config.json + weights.safetensors. Every
// `out_*` entry of case.json `calls` is one forward whose timestep argument is read from the call
// text (python int, float, torch.tensor([...]) or torch.tensor(x, dtype=...)); intermediates
// named `<module>_<suffix>` are checked through the forward's trace of the out_t<suffix> call;
// `loss_grad` = (out · grad_weight).sum() with its gradients to the sample and the context.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadSafetensors } from '../../../src/io/tensors.js';
import { loadUNet, type UNet2DConditionModel } from '../../../src/models/unet/index.js';
import { grad, noGrad, scope, tensor, type DType, type Tensor } from '../../../src/torch/index.js';
import { assertClose, toleranceFor, type CloseReport } from '../compare.js';
import type { CaseRunner } from './types.js';

/** The text of the argument after `unet(sample, ` in a call description, brackets balanced. */
function timestepArgText(call: string): string | null {
  const m = /unet\(\s*sample\s*,\s*/.exec(call);
  if (m === null) return null;
  let depth = 0;
  let i = m.index + m[0].length;
  const start = i;
  for (; i < call.length; i++) {
    const ch = call[i]!;
    if (ch === '(' || ch === '[') depth++;
    else if (ch === ')' || ch === ']') {
      if (depth === 0) break;
      depth--;
    } else if (ch === ',' && depth === 0) break;
  }
  return call.slice(start, i).trim();
}

const PY_DTYPES: Record<string, DType> = {
  float64: 'float64',
  double: 'float64',
  float32: 'float32',
  float: 'float32',
  int64: 'int64',
  long: 'int64',
  int32: 'int32',
  float16: 'float16',
  half: 'float16',
};

/**
 * A timestep as the reference passed it: a JS number for a python int/float, a tensor for
 * torch.tensor(...) (python's dtype inference: ints → int64, floats → float32, unless dtype=).
 */
export function parseTimestep(call: string): number | Tensor {
  const arg = timestepArgText(call);
  if (arg === null) throw new Error(`cannot find the timestep in call '${call}'`);
  if (/^-?\d+(\.\d*)?(e-?\d+)?$/i.test(arg)) return Number(arg);
  const m = /^torch\.tensor\(\s*(\[[^\]]*\]|[-\d.e]+)\s*(?:,\s*dtype\s*=\s*(?:torch\.)?(\w+)\s*)?\)$/.exec(arg);
  if (m === null) throw new Error(`unsupported timestep argument '${arg}' in call '${call}'`);
  const list = m[1]!.startsWith('[');
  const values = (list ? m[1]!.slice(1, -1).split(',') : [m[1]!]).map((s) => s.trim()).filter(Boolean);
  const nums = values.map(Number);
  if (nums.some((v) => !Number.isFinite(v))) throw new Error(`unparsable timestep values in '${arg}'`);
  const dtype: DType =
    m[2] !== undefined
      ? (PY_DTYPES[m[2]] ??
        (() => {
          throw new Error(`unknown dtype '${m[2]}' in '${arg}'`);
        })())
      : values.every((s) => /^-?\d+$/.test(s))
        ? 'int64'
        : 'float32';
  return tensor(new Float64Array(nums), list ? [nums.length] : [], { dtype });
}

/** io key prefix of a hooked intermediate → the UNet trace name. */
function traceName(prefix: string, unet: UNet2DConditionModel): string | null {
  const fixed: Record<string, string> = {
    t_proj: 'time_proj',
    t_emb: 'time_embedding',
    conv_in: 'conv_in',
    mid_block: 'mid_block',
  };
  if (fixed[prefix] !== undefined) return fixed[prefix];
  const m = /^(down|up)_block_(\d+|last)$/.exec(prefix);
  if (m === null) return null;
  const n = (m[1] === 'down' ? unet.downBlocks : unet.upBlocks).length;
  return `${m[1]}_blocks.${m[2] === 'last' ? n - 1 : Number(m[2])}`;
}

const fmt = (r: CloseReport) => `max|diff| ${r.maxAbs.toExponential(3)}`;

const run: CaseRunner = async ({ dir, spec }, t) => {
  const io = loadSafetensors(join(dir, 'io.safetensors'));
  const unet = loadUNet(join(dir, 'weights.safetensors')); // config.json beside it
  const calls: Record<string, string> = spec.calls ?? {};
  const ref = (k: string): Tensor => {
    const v = io.get(k);
    if (v === undefined) throw new Error(`io.safetensors has no '${k}'`);
    return v;
  };
  const tol = (k: string) => toleranceFor(spec.tolerances, k);
  const sample = ref('sample');
  const context = ref('encoder_hidden_states');
  const timestepFor = (key: string): number | Tensor => {
    const call = calls[key];
    if (call !== undefined) return parseTimestep(call);
    const m = /^out_t(\d+)$/.exec(key);
    if (m === null) throw new Error(`case.json calls has no description of '${key}' and its name gives no timestep`);
    return Number(m[1]);
  };
  try {
    await t.test('config and weights', () => {
      assert.equal(unet.config.in_channels, sample.shape[1], 'in_channels equals the sample channels');
      assert.equal(unet.config.cross_attention_dim, context.shape[2], 'cross_attention_dim equals the context width');
    });
    const outs = [...io.keys()].filter((k) => /^out_/.test(k)).sort();
    assert.ok(outs.length > 0, 'the case has out_* references');
    const others = new Set([
      'sample',
      'encoder_hidden_states',
      'grad_weight',
      'loss_grad',
      'grad_sample',
      'grad_encoder_hidden_states',
      ...outs,
    ]);
    for (const key of outs) {
      const suffix = key.slice('out_t'.length);
      const inter = [...io.keys()].filter((k) => !others.has(k) && k.endsWith(`_${suffix}`));
      await t.test(
        `${key}: unet(sample, ${calls[key] ? timestepArgText(calls[key]!) : suffix}, context)${inter.length ? ` + ${inter.length} intermediates` : ''}`,
        (tt) =>
          noGrad(() =>
            scope(() => {
              const ts = timestepFor(key);
              const wanted = new Map<string, string>();
              for (const k of inter) {
                const name = traceName(k.slice(0, -(suffix.length + 1)), unet);
                if (name === null)
                  throw new Error(
                    `io key '${k}': unknown intermediate (expected t_proj, t_emb, conv_in, down_block_N, mid_block, up_block_N or up_block_last)`,
                  );
                wanted.set(name, k);
              }
              const seen = new Set<string>();
              const notes: string[] = [];
              const out = unet.forward(sample, ts, context, {
                trace: (name, v) => {
                  const k = wanted.get(name);
                  if (k === undefined) return;
                  seen.add(k);
                  notes.push(
                    `${k} ${fmt(assertClose(v, ref(k), toleranceFor(spec.tolerances, k, tol('intermediates')), k))}`,
                  );
                },
              });
              assert.deepEqual(
                inter.filter((k) => !seen.has(k)),
                [],
                'every intermediate was produced',
              );
              notes.unshift(`${key} ${fmt(assertClose(out, ref(key), tol(key), key))}`);
              tt.diagnostic(notes.join('; '));
            }),
          ),
      );
    }
    if (io.has('loss_grad')) {
      await t.test('loss_grad = (out · grad_weight).sum() and its gradients', (tt) =>
        scope(() => {
          const x = sample.detach().requiresGrad_();
          const ctx = context.detach().requiresGrad_();
          const loss = unet.forward(x, timestepFor('loss_grad'), ctx).mul(ref('grad_weight')).sum();
          const notes = [
            `loss_grad ${fmt(assertClose(loss.reshape(1), ref('loss_grad'), tol('loss_grad'), 'loss_grad'))}`,
          ];
          const [gx, gc] = grad(loss, [x, ctx]);
          if (io.has('grad_sample'))
            notes.push(`grad_sample ${fmt(assertClose(gx!, ref('grad_sample'), tol('grad_sample'), 'grad_sample'))}`);
          if (io.has('grad_encoder_hidden_states'))
            notes.push(
              `grad_encoder_hidden_states ${fmt(assertClose(gc!, ref('grad_encoder_hidden_states'), tol('grad_encoder_hidden_states'), 'grad_encoder_hidden_states'))}`,
            );
          tt.diagnostic(notes.join('; '));
        }),
      );
    }
  } finally {
    unet.dispose();
    for (const v of io.values()) v.dispose();
  }
};
export default run;
