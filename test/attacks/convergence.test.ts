// The stopping rule `stop: converged` (src/attacks/convergence.ts) on synthetic loss sequences,
// and in the PGD engine on a tiny problem: it stops at a plateau, records why, and the step
// budget stays the cap.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  DEFAULT_CONVERGENCE,
  checkConvergenceRule,
  convergedStep,
  hasConverged,
  type ConvergenceRule,
} from '../../src/attacks/convergence.js';
import { pgd } from '../../src/attacks/pgd.js';
import { ArgumentError } from '../../src/errors.js';
import { noGrad, ones, zeros } from '../../src/torch/index.js';

const rule: ConvergenceRule = { window: 10, tolerance: 0.02, minSteps: 40 };
const seq = (n: number, f: (k: number) => number): number[] => Array.from({ length: n }, (_, k) => f(k));

describe('convergedStep on synthetic losses', () => {
  test('a drop then a flat loss stops once the last window gained under the tolerance of all progress', () => {
    // 100, 99, …, 71, then 70 for ever: total progress 30, so with tolerance 2.5% a window must
    // gain less than 0.75. At 46 steps the previous window's mean is 71.0 (gain 1); at 47, 70.6.
    const losses = seq(200, (k) => (k < 30 ? 100 - k : 70));
    const r = { ...rule, tolerance: 0.025 };
    assert.equal(convergedStep(losses, r), 47);
    assert.equal(hasConverged(losses.slice(0, 46), r), false);
    assert.equal(hasConverged(losses.slice(0, 47), r), true);
  });

  test('a loss still falling steadily never converges: the attack runs to the cap', () => {
    assert.equal(
      convergedStep(
        seq(200, (k) => 200 - k),
        rule,
      ),
      null,
    );
  });

  test('a loss that rises, or never moves, is not convergence', () => {
    assert.equal(
      convergedStep(
        seq(200, (k) => 10 + k),
        rule,
      ),
      null,
    );
    assert.equal(
      convergedStep(
        seq(200, () => 5),
        rule,
      ),
      null,
    );
  });

  test('never before minSteps, even when flat from the second step', () => {
    const losses = [100, ...seq(199, () => 50)];
    assert.equal(convergedStep(losses, rule), 40);
    assert.equal(convergedStep(losses, { ...rule, minSteps: 60 }), 60);
  });

  test('a looser tolerance stops earlier on a decaying loss; the rule is scale-free', () => {
    const decay = seq(200, (k) => 10 + 90 * Math.exp(-k / 25));
    const strict = convergedStep(decay, rule)!;
    const loose = convergedStep(decay, { ...rule, tolerance: 0.1 })!;
    assert.ok(loose < strict, `tolerance 0.1 stops at ${loose}, 0.02 at ${strict}`);
    assert.equal(
      convergedStep(
        decay.map((l) => l * 1000),
        rule,
      ),
      strict,
      'multiplying the loss by 1000 changes nothing',
    );
  });

  test('bad rules are refused with the field named', () => {
    assert.throws(() => checkConvergenceRule({ ...rule, window: 0 }), ArgumentError);
    assert.throws(() => checkConvergenceRule({ ...rule, tolerance: 1 }), /tolerance/);
    assert.throws(() => checkConvergenceRule({ ...rule, minSteps: 19 }), /minSteps/);
    checkConvergenceRule(DEFAULT_CONVERGENCE);
  });
});

describe('pgd with converge', () => {
  // ‖x − 0‖² from 0.5 with ε 0.1 and step 0.01: the loss falls for 10 steps, then the budget pins it.
  const run = (steps: number, converge?: ConvergenceRule) => {
    const x = noGrad(() => ones([1, 3, 8, 8]).mul(0.5));
    const c = noGrad(() => zeros(x.shape));
    const r = pgd(x, (xa) => xa.sub(c).square().sum(), { eps: 0.1, stepSize: 0.01, steps, converge });
    r.adv.dispose();
    x.dispose();
    c.dispose();
    return r;
  };
  const small: ConvergenceRule = { window: 3, tolerance: 0.02, minSteps: 6 };

  test('stops at the plateau, says so, and the stop step is the rule applied to the recorded losses', () => {
    const r = run(100, small);
    assert.equal(r.stoppedBy, 'converged');
    assert.ok(r.stepsTaken >= 11 && r.stepsTaken < 20, `stopped after ${r.stepsTaken} steps`);
    assert.equal(r.losses.length, r.stepsTaken);
    assert.equal(convergedStep(r.losses, small), r.stepsTaken);
  });

  test('the step budget is the cap: a rule that has not fired by then stops by steps', () => {
    const r = run(8, small);
    assert.equal(r.stoppedBy, 'steps');
    assert.equal(r.stepsTaken, 8);
    const fixed = run(30);
    assert.equal(fixed.stoppedBy, 'steps', 'without converge every step is taken');
    assert.equal(fixed.stepsTaken, 30);
  });

  test('a rule that fires exactly at the cap reports the cap (steps)', () => {
    const stop = run(100, small).stepsTaken;
    const r = run(stop, small);
    assert.equal(r.stepsTaken, stop);
    assert.equal(r.stoppedBy, 'steps');
  });
});
