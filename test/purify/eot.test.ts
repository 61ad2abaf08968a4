// differentiableTransforms (src/purify/eot.ts), the sampler robust immunization averages over:
// gradients flow through every kind (nonzero, finite), draws are deterministic for a generator
// seed and stay in their ranges, and bad options are refused.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ArgumentError } from '../../src/errors.js';
import {
  differentiableTransforms,
  DIFFERENTIABLE_TRANSFORM_KINDS,
  type DifferentiableTransformKind,
} from '../../src/purify/eot.js';
import { parsePurification } from '../../src/purify/spec.js';
import { Generator, grad, noGrad, rand, scope, type Tensor } from '../../src/torch/index.js';

function image(seed = 1, h = 32, w = 40): Tensor {
  return noGrad(() =>
    rand([1, 3, h, w], { generator: new Generator({ seed }) })
      .mul(0.8)
      .add(0.1),
  );
}

describe('differentiableTransforms', () => {
  test("'jpeg' draws only differentiable JPEG, with integer qualities spread over 50–95", () => {
    const s = differentiableTransforms('jpeg');
    const gen = new Generator({ seed: 3 });
    const qualities = new Set<number>();
    for (let i = 0; i < 200; i++) {
      const d = s.draw(gen);
      assert.equal(d.kind, 'jpeg');
      const m = /^diffjpeg:(\d+)$/.exec(d.spec);
      assert.ok(m, `unexpected spec ${d.spec}`);
      const q = Number(m[1]);
      assert.ok(q >= 50 && q <= 95, `quality ${q}`);
      qualities.add(q);
    }
    assert.ok(qualities.has(50) && qualities.has(95), 'both ends of the range are drawn');
    assert.ok(qualities.size > 35, `only ${qualities.size} distinct qualities in 200 draws`);
  });

  test("'all' draws every kind; parameters stay in their ranges", () => {
    const s = differentiableTransforms('all');
    const gen = new Generator({ seed: 4 });
    const seen = new Map<DifferentiableTransformKind, number>();
    for (let i = 0; i < 200; i++) {
      const d = s.draw(gen);
      seen.set(d.kind, (seen.get(d.kind) ?? 0) + 1);
      const v = Number(d.spec.split(':')[d.kind === 'noise' ? 2 : 1]);
      if (d.kind === 'resize') assert.ok(v >= 0.5 && v <= 0.9, d.spec);
      if (d.kind === 'blur') assert.ok(v >= 0.5 && v <= 1.5, d.spec);
      if (d.kind === 'noise') assert.ok(v >= 0 && v <= 4 / 255 + 1e-6, d.spec);
    }
    for (const k of DIFFERENTIABLE_TRANSFORM_KINDS)
      assert.ok((seen.get(k) ?? 0) > 25, `${k} drawn ${seen.get(k) ?? 0} times in 200`);
    // Every drawn spec is valid in the purification grammar (for logs and sidecars).
    for (let i = 0; i < 20; i++) assert.doesNotThrow(() => parsePurification(s.draw(gen).spec));
  });

  for (const kind of DIFFERENTIABLE_TRANSFORM_KINDS) {
    test(`${kind}: gradient w.r.t. x is finite and nonzero; shape, dtype kept; x unchanged`, () => {
      scope(() => {
        const s = differentiableTransforms('all', { kinds: [kind] });
        const x0 = image(5);
        const x = x0.clone().requiresGrad_();
        const w = rand(x.shape, { generator: new Generator({ seed: 6 }) });
        const y = s(x, new Generator({ seed: 7 }));
        assert.deepEqual(y.shape, x.shape);
        assert.equal(y.dtype, 'float32');
        assert.ok(y.requiresGrad, 'the output is attached to the graph');
        const [g] = grad(y.mul(w).sum(), [x]);
        assert.ok(g!.isfinite().all().item(), 'finite gradient');
        assert.ok(g!.abs().sum().item() > 1, `gradient mass ${g!.abs().sum().item()}`);
        assert.equal(x.detach().sub(x0).abs().max().item(), 0);
        // Differs from the identity: something was applied.
        assert.ok(noGrad(() => y.sub(x).abs().max().item()) > 1e-4);
      });
    });
  }

  test('deterministic for a generator seed, different for another seed; the global generator is untouched', () => {
    scope(() => {
      const s = differentiableTransforms('all');
      const x = image(8);
      const run = (seed: number) => {
        const gen = new Generator({ seed });
        return Array.from({ length: 6 }, () => noGrad(() => s(x, gen)));
      };
      const a = run(11);
      const b = run(11);
      const c = run(12);
      a.forEach((t, i) => assert.equal(t.sub(b[i]!).abs().max().item(), 0, `draw ${i} differs for the same seed`));
      assert.ok(
        a.some((t, i) => t.sub(c[i]!).abs().max().item() > 0),
        'another seed gives other draws',
      );
      const g1 = new Generator({ seed: 11 });
      const g2 = new Generator({ seed: 11 });
      for (let i = 0; i < 20; i++) assert.equal(s.draw(g1).spec, s.draw(g2).spec);
    });
  });

  test('options: kinds, ranges and rounding are honoured; bad options are refused', () => {
    const s = differentiableTransforms('jpeg', { quality: [80, 80], rounding: 'cubic', chromaSubsampling: '4:4:4' });
    assert.equal(s.draw(new Generator({ seed: 1 })).spec, 'diffjpeg:80:cubic:444');
    assert.deepEqual(differentiableTransforms('all', { kinds: ['blur', 'noise'] }).kinds, ['blur', 'noise']);
    assert.throws(() => differentiableTransforms('png' as 'jpeg'), ArgumentError);
    assert.throws(() => differentiableTransforms('all', { kinds: [] }), /kinds/);
    assert.throws(() => differentiableTransforms('all', { kinds: ['rotate' as 'jpeg'] }), /kinds/);
    assert.throws(() => differentiableTransforms('jpeg', { quality: [95, 50] }), /lo <= hi/);
    assert.throws(() => differentiableTransforms('jpeg', { quality: [0, 50] }), /quality/);
    assert.throws(() => differentiableTransforms('all', { resizeScale: [0.5, 1.5] }), /resizeScale/);
    assert.throws(() => differentiableTransforms('all', { noiseSigma: [-1, 0] }), /noiseSigma/);
  });

  test('tiny images: the blur kernel shrinks to fit', () => {
    scope(() => {
      const s = differentiableTransforms('all', { kinds: ['blur'], blurSigma: [3, 3] });
      const y = noGrad(() => s(image(9, 4, 4), new Generator({ seed: 1 })));
      assert.deepEqual(y.shape, [1, 3, 4, 4]);
    });
  });
});
