// Schedulers: config validation and clear errors, state errors, seeded determinism, a toy
// denoising problem every scheduler must solve, from_config conversion, img2img start, memory.
// Bit-level agreement with diffusers 0.14 is the conformance case `schedulers`.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ImmunizeError } from '../../src/errors.js';
import {
  createScheduler,
  fromName,
  SCHEDULER_NAMES,
  SchedulerConfigError,
  SchedulerStateError,
  SUPPORTED_SCHEDULERS,
  type Scheduler,
  type SchedulerClassName,
  type SchedulerName,
} from '../../src/schedulers/index.js';
import { Generator, grad, liveTensors, manualSeed, randn, scope, tensor, type Tensor } from '../../src/torch/index.js';

// Stable Diffusion v1.5's scheduler_config.json.
const SD = {
  _class_name: 'PNDMScheduler',
  beta_end: 0.012,
  beta_schedule: 'scaled_linear',
  beta_start: 0.00085,
  num_train_timesteps: 1000,
  set_alpha_to_one: false,
  skip_prk_steps: true,
  steps_offset: 1,
  trained_betas: null,
  clip_sample: false,
};
const make = (cls: SchedulerClassName, extra: Record<string, unknown> = {}): Scheduler =>
  createScheduler({ ...SD, ...extra }, { _class_name: cls });

const isErr =
  (code: string, ...parts: (string | RegExp)[]) =>
  (e: unknown): boolean => {
    assert.ok(e instanceof ImmunizeError, `expected an ImmunizeError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    for (const p of parts)
      assert.ok(
        typeof p === 'string' ? e.message.includes(p) : p.test(e.message),
        `message ${JSON.stringify(e.message)} lacks ${String(p)}`,
      );
    return true;
  };

const gc = (globalThis as { gc?: () => void }).gc;
async function settle(): Promise<void> {
  for (let i = 0; i < 4; i++) {
    gc?.();
    await new Promise((r) => setImmediate(r));
  }
}

const rms = (a: Tensor, b: Tensor): number => scope(() => a.sub(b).square().mean().sqrt().item());

describe('config validation', () => {
  test('an unknown beta_schedule is rejected by every class, naming the field and the value', () => {
    for (const cls of SUPPORTED_SCHEDULERS) {
      assert.throws(
        () => make(cls, { beta_schedule: 'cosine' }),
        (e: unknown) => {
          isErr('E_CONFIG', cls, 'beta_schedule', "'cosine'", "'scaled_linear'")(e);
          assert.ok(e instanceof SchedulerConfigError);
          assert.equal(e.field, 'beta_schedule');
          return true;
        },
      );
    }
  });

  test('bad numbers and enums name the field: num_train_timesteps, steps_offset, prediction_type, trained_betas, solver_order', () => {
    assert.throws(
      () => make('DDIMScheduler', { num_train_timesteps: -5 }),
      isErr('E_CONFIG', 'num_train_timesteps', '-5'),
    );
    assert.throws(
      () => make('DDIMScheduler', { num_train_timesteps: 10.5 }),
      isErr('E_CONFIG', 'num_train_timesteps', '10.5'),
    );
    assert.throws(() => make('DDIMScheduler', { steps_offset: -1 }), isErr('E_CONFIG', 'steps_offset', '-1'));
    assert.throws(() => make('DDIMScheduler', { clip_sample: 'yes' }), isErr('E_CONFIG', 'clip_sample', "'yes'"));
    assert.throws(
      () => make('PNDMScheduler', { prediction_type: 'sample' }),
      isErr('E_CONFIG', 'PNDMScheduler', 'prediction_type', "'sample'", "'v_prediction'"),
    );
    assert.throws(
      () => make('EulerAncestralDiscreteScheduler', { prediction_type: 'sample' }),
      isErr('E_CONFIG', 'prediction_type'),
    );
    assert.throws(() => make('DDIMScheduler', { beta_end: 2 }), isErr('E_CONFIG', 'beta_end', '2'));
    assert.throws(
      () => make('DDIMScheduler', { trained_betas: [0.1, 0.2] }),
      isErr('E_CONFIG', 'trained_betas', '1000'),
    );
    assert.throws(
      () => make('DPMSolverMultistepScheduler', { solver_order: 4 }),
      isErr('E_CONFIG', 'solver_order', '4'),
    );
    assert.throws(
      () => make('DDPMScheduler', { variance_type: 'learned' }),
      isErr('E_CONFIG', 'variance_type', "'learned'"),
    );
    assert.throws(
      () => make('DDIMScheduler', { beta_schedule: 'sigmoid' }),
      isErr('E_CONFIG', 'beta_schedule'),
      "sigmoid is DDPM's alone, as in 0.14",
    );
  });

  test('an unknown _class_name lists the supported classes', () => {
    assert.throws(
      () => createScheduler({ ...SD, _class_name: 'HeunDiscreteScheduler' }),
      isErr('E_CONFIG', "'HeunDiscreteScheduler'", ...SUPPORTED_SCHEDULERS),
    );
    assert.throws(() => createScheduler({ beta_start: 0.1 }), isErr('E_CONFIG', '_class_name', 'undefined'));
  });

  test('trained_betas replaces the schedule; the resulting config keeps given keys and fills defaults', () => {
    const betas = Array.from({ length: 10 }, (_, i) => 0.01 + i * 0.01);
    using s = createScheduler({
      _class_name: 'DDIMScheduler',
      num_train_timesteps: 10,
      trained_betas: betas,
      beta_schedule: 'whatever',
      foo: 1,
    });
    assert.deepEqual(Array.from(s.betas), betas.map(Math.fround));
    assert.equal(s.alphasCumprod[1], Math.fround(Math.fround(1 - s.betas[0]!) * Math.fround(1 - s.betas[1]!)));
    assert.equal(s.config['foo'], 1, 'keys a class does not take are kept (diffusers keeps them hidden)');
    assert.equal(s.config['set_alpha_to_one'], true, "DDIM's default");
    assert.equal(s.config['_class_name'], 'DDIMScheduler');
  });
});

describe('argument and state errors', () => {
  test('setTimesteps rejects negative, zero, fractional and too-large step counts, naming the value', () => {
    using s = make('DDIMScheduler');
    for (const n of [-1, 0, 2.5, 1001, Number.NaN]) {
      assert.throws(() => s.setTimesteps(n), isErr('E_ARGUMENT', 'num_inference_steps', String(n), '1000'));
    }
    assert.equal(s.numInferenceSteps, null, 'a rejected call leaves the scheduler untouched');
  });

  test('strength outside [0, 1] is rejected, naming strength and the value', () => {
    using s = make('PNDMScheduler');
    s.setTimesteps(10);
    for (const v of [-0.1, 1.5, Number.NaN])
      assert.throws(() => s.img2imgTimesteps(v), isErr('E_ARGUMENT', 'strength', String(v)));
  });

  test('step(), img2imgTimesteps() and sigma-based scaleModelInput() before setTimesteps() say to call setTimesteps', () => {
    for (const cls of SUPPORTED_SCHEDULERS) {
      using s = make(cls);
      const x = randn([1, 2, 2, 2]);
      assert.throws(
        () => s.step(x, 999, x),
        (e: unknown) => e instanceof SchedulerStateError && isErr('E_SCHEDULER_STATE', cls, 'setTimesteps')(e),
      );
      assert.throws(() => s.img2imgTimesteps(0.5), isErr('E_SCHEDULER_STATE', 'setTimesteps'));
      if (s.timestepsDtype === 'float64')
        assert.throws(() => s.scaleModelInput(x, 999), isErr('E_SCHEDULER_STATE', 'setTimesteps'));
      assert.deepEqual(s.timesteps, []);
      x.dispose();
    }
  });

  test('options a scheduler does not take, bad eta, shape mismatch and foreign timesteps are clear errors', () => {
    const x = randn([1, 2, 2, 2]);
    using pndm = make('PNDMScheduler');
    pndm.setTimesteps(10);
    const plain = scope(() => pndm.step(x, 901, x).prevSample.toArray());
    pndm.setTimesteps(10);
    const withEta = scope(() =>
      pndm.step(x, 901, x, { eta: 1, generator: new Generator({ seed: 1 }) }).prevSample.toArray(),
    );
    assert.deepEqual(
      withEta,
      plain,
      'eta and generator are ignored by a class without them, as diffusers pipelines do',
    );
    assert.throws(() => pndm.step(x, 801, x, { sChurn: 1 }), isErr('E_ARGUMENT', "'sChurn'", 'PNDMScheduler'));
    using lms = make('LMSDiscreteScheduler');
    lms.setTimesteps(10);
    assert.throws(
      () => lms.step(x, 999, x, { noise: x }),
      isErr('E_ARGUMENT', "'noise'", 'LMSDiscreteScheduler', 'order'),
    );
    using ddim = make('DDIMScheduler');
    ddim.setTimesteps(10);
    assert.throws(() => ddim.step(x, 901, x, { eta: -1 }), isErr('E_ARGUMENT', 'eta', '-1'));
    assert.throws(() => ddim.step(randn([1, 3, 2, 2]), 901, x), isErr('E_ARGUMENT', '[1, 3, 2, 2]', '[1, 2, 2, 2]'));
    assert.throws(() => ddim.step(x, 1000, x), isErr('E_ARGUMENT', 'timestep 1000', '[0, 999]'));
    using euler = make('EulerDiscreteScheduler');
    euler.setTimesteps(10);
    assert.throws(() => euler.step(x, 500, x), isErr('E_ARGUMENT', 'timestep 500', '.timesteps'));
    assert.throws(() => euler.addNoise(x, x, [123.5]), isErr('E_ARGUMENT', 'timestep 123.5'));
    x.dispose();
  });
});

describe('timesteps and img2img', () => {
  test("SD's 0.14 timesteps: DDIM leading + steps_offset, PNDM's repeated first PLMS entry, DDPM without offset, Euler float64", () => {
    using ddim = make('DDIMScheduler');
    ddim.setTimesteps(4);
    assert.deepEqual(ddim.timesteps, [751, 501, 251, 1]);
    using pndm = make('PNDMScheduler');
    pndm.setTimesteps(4);
    assert.deepEqual(pndm.timesteps, [751, 501, 501, 251, 1]);
    using ddpm = make('DDPMScheduler');
    ddpm.setTimesteps(4);
    assert.deepEqual(ddpm.timesteps, [750, 500, 250, 0]);
    using euler = make('EulerDiscreteScheduler');
    euler.setTimesteps(4);
    assert.deepEqual(euler.timesteps, [999, 666, 333, 0]);
    assert.equal(euler.timestepsDtype, 'float64');
    using tt = euler.timestepsTensor();
    assert.equal(tt.dtype, 'float64');
    using dpm = make('DPMSolverMultistepScheduler');
    dpm.setTimesteps(10);
    assert.equal(dpm.timesteps[5], 500, 'round half to even: 499.5 → 500');
  });

  test('img2imgTimesteps follows StableDiffusionImg2ImgPipeline 0.14 (t_start not multiplied by order)', () => {
    using s = make('DDIMScheduler');
    s.setTimesteps(10);
    const r = s.img2imgTimesteps(0.75);
    assert.deepEqual(
      { ...r, timesteps: [...r.timesteps] },
      {
        strength: 0.75,
        initTimestep: 7,
        tStart: 3,
        timesteps: [601, 501, 401, 301, 201, 101, 1],
        latentTimestep: 601,
        numSteps: 7,
      },
    );
    assert.deepEqual(s.img2imgTimesteps(1).timesteps, [...s.timesteps]);
    const none = s.img2imgTimesteps(0.05);
    assert.equal(none.initTimestep, 0);
    assert.deepEqual(none.timesteps, []);
    assert.equal(none.latentTimestep, null);
    using pndm = make('PNDMScheduler');
    pndm.setTimesteps(10);
    const p = pndm.img2imgTimesteps(0.7);
    assert.equal(p.timesteps.length, 8, "PNDM's list has the repeated entry");
    assert.equal(p.numSteps, 7);
  });
});

/**
 * Toy data with an exact denoiser: every element of x0 is N(μ, s²) (s = 0 is a point mass at μ).
 * For x_t = a·x0 + b·ε (a = √ᾱ, b = √(1−ᾱ)), E[x0 | x_t] = μ + a s² (x_t − aμ) / (a²s² + b²), and
 * the probability-flow ODE keeps z = (x_t − aμ) / √(a²s² + b²) constant: its exact solution.
 */
interface Toy {
  mu: Tensor | number;
  s: number;
}

/** Signal and noise scales (a, b) of the variance-preserving form at timestep t; sigma-based classes work in x/a. */
function scales(s: Scheduler, t: number | 'final'): { a: number; b: number; ve: boolean } {
  if (s.sigmas !== undefined) {
    const sigma = t === 'final' ? 0 : s.sigmas[s.timesteps.indexOf(t)]!;
    return { a: 1 / Math.sqrt(sigma * sigma + 1), b: sigma / Math.sqrt(sigma * sigma + 1), ve: true };
  }
  // After the last step alpha-based classes land on ᾱ_0 (set_alpha_to_one false, and DPM-Solver's prev_timestep 0).
  const acp =
    t === 'final'
      ? s.config['set_alpha_to_one'] === true && s.className !== 'DPMSolverMultistepScheduler'
        ? 1
        : s.alphasCumprod[0]!
      : s.alphasCumprod[t]!;
  return { a: Math.sqrt(acp), b: Math.sqrt(1 - acp), ve: false };
}

/** The exact model output (ε, or v for v-prediction) for the toy data, given the scaled model input at t. */
function perfectModel(s: Scheduler, toy: Toy, modelInput: Tensor, t: number): Tensor {
  return scope(() => {
    const { a, b, ve } = scales(s, t);
    const x = ve ? modelInput.mul(Math.sqrt((b / a) ** 2 + 1)).mul(a) : modelInput; // VP form a·x0 + b·ε
    const amu = typeof toy.mu === 'number' ? a * toy.mu : toy.mu.mul(a);
    const x0 = x
      .sub(amu)
      .mul((a * toy.s * toy.s) / (a * a * toy.s * toy.s + b * b))
      .add(toy.mu);
    const eps = x.sub(x0.mul(a)).div(b);
    return s.config['prediction_type'] === 'v_prediction' ? eps.mul(a).sub(x0.mul(b)) : eps;
  });
}

/** The ODE's exact point at `t` for the trajectory through sample x at t0, in the scheduler's units. */
function odePoint(s: Scheduler, toy: Toy, x: Tensor, t0: number, t: number | 'final'): Tensor {
  return scope(() => {
    const p = scales(s, t0);
    const q = scales(s, t);
    const unit = (v: { a: number; ve: boolean }): number => (v.ve ? v.a : 1); // VE samples are x_VP / a
    const xvp = x.mul(unit(p));
    const mu = (k: number): Tensor | number => (typeof toy.mu === 'number' ? k * toy.mu : toy.mu.mul(k));
    const z = xvp.sub(mu(p.a)).div(Math.sqrt(p.a * p.a * toy.s * toy.s + p.b * p.b));
    return z
      .mul(Math.sqrt(q.a * q.a * toy.s * toy.s + q.b * q.b))
      .add(mu(q.a))
      .div(unit(q));
  });
}

/**
 * Runs a full sampling loop with the exact model. `check` sees every step's output and where the
 * ODE through that step's input says it should land; `exactEnd` is the ODE's end point from the start.
 */
function sample(
  s: Scheduler,
  toy: Toy,
  shape: number[],
  opts: Record<string, unknown>,
  check?: (prev: Tensor, exact: Tensor, i: number) => void,
): { x: Tensor; exactEnd: Tensor } {
  manualSeed(3);
  const gen = new Generator({ seed: 11 });
  let x = randn(shape).mul(s.initNoiseSigma);
  const ts = s.timesteps;
  const exactEnd = odePoint(s, toy, x, ts[0]!, 'final');
  ts.forEach((t, i) => {
    x = scope(() => {
      const r = s.step(perfectModel(s, toy, s.scaleModelInput(x, t), t), t, x, { ...opts, generator: gen });
      if (check) check(r.prevSample, odePoint(s, toy, x, t, i + 1 < ts.length ? ts[i + 1]! : 'final'), i);
      return r.prevSample;
    });
  });
  return { x, exactEnd };
}

const DETERMINISTIC: [SchedulerClassName, Record<string, unknown>][] = [
  ['DDIMScheduler', {}],
  ['DDIMScheduler', { prediction_type: 'v_prediction', set_alpha_to_one: true }],
  ['PNDMScheduler', {}],
  ['PNDMScheduler', { skip_prk_steps: false }],
  ['EulerDiscreteScheduler', {}],
  ['EulerDiscreteScheduler', { prediction_type: 'v_prediction' }],
  ['LMSDiscreteScheduler', {}],
  ['DPMSolverMultistepScheduler', {}],
  ['DPMSolverMultistepScheduler', { solver_order: 3 }],
  ['DPMSolverMultistepScheduler', { solver_type: 'heun' }],
  ['DPMSolverMultistepScheduler', { algorithm_type: 'dpmsolver' }],
];

describe('toy problem, a point mass: with the exact model every step lands on the ODE trajectory', () => {
  // For a point mass ε is constant along the ODE and x̂0 is exact, so DDIM, Euler, DPM-Solver and
  // the multistep PLMS/LMS combinations (weights summing to 1) are exact at every step.
  for (const [cls, extra] of DETERMINISTIC) {
    test(`${cls} ${JSON.stringify(extra)}`, () =>
      scope(() => {
        manualSeed(2);
        const toy = { mu: randn([1, 4, 8, 8]).tanh(), s: 0 };
        using s = make(cls, extra);
        s.setTimesteps(20);
        const { x, exactEnd } = sample(s, toy, [1, 4, 8, 8], {}, (prev, exact, i) => {
          const err = rms(prev, exact);
          assert.ok(err < 1e-4 * (1 + rms(exact, exact.mul(0))), `step ${i}: ${err} off the trajectory`);
        });
        assert.ok(rms(x, exactEnd) < 1e-4, `final sample is ${rms(x, exactEnd)} from the exact end point`);
        assert.ok(rms(x, toy.mu) < 0.05, `final sample is ${rms(x, toy.mu)} from x0`);
      }));
  }
  for (const [cls, opts] of [
    ['DDIMScheduler', { eta: 1 }],
    ['DDPMScheduler', {}],
    ['EulerAncestralDiscreteScheduler', {}],
    ['EulerDiscreteScheduler', { sChurn: 1 }],
  ] as const) {
    test(`${cls} ${JSON.stringify(opts)} (stochastic): the final sample is x0`, () =>
      scope(() => {
        manualSeed(2);
        const toy = { mu: randn([1, 4, 8, 8]).tanh(), s: 0 };
        using s = make(cls);
        s.setTimesteps(20);
        const { x } = sample(s, toy, [1, 4, 8, 8], opts);
        assert.ok(rms(x, toy.mu) < 0.05, `final sample is ${rms(x, toy.mu)} from x0`);
      }));
  }
});

describe('toy problem, Gaussian data N(0.5, 0.5²): samplers reach the exact ODE end point / the data distribution', () => {
  const toy = { mu: 0.5, s: 0.5 };
  // rms distance of the 20-step result from the exact ODE end point, measured on this build
  // (bit-identical to diffusers 0.14): bounds are 1.5× that, so a wrong coefficient shows.
  const measured: Record<string, number> = {
    'DDIMScheduler {}': 0.054,
    'DDIMScheduler {"prediction_type":"v_prediction","set_alpha_to_one":true}': 0.055,
    'PNDMScheduler {}': 0.0073,
    'PNDMScheduler {"skip_prk_steps":false}': 0.0073,
    'EulerDiscreteScheduler {}': 0.06,
    'EulerDiscreteScheduler {"prediction_type":"v_prediction"}': 0.06,
    'LMSDiscreteScheduler {}': 0.00074,
    'DPMSolverMultistepScheduler {}': 0.066,
    'DPMSolverMultistepScheduler {"solver_order":3}': 0.0026,
    'DPMSolverMultistepScheduler {"solver_type":"heun"}': 0.1,
    'DPMSolverMultistepScheduler {"algorithm_type":"dpmsolver"}': 0.04,
  };

  for (const [cls, extra] of DETERMINISTIC) {
    const key = `${cls} ${JSON.stringify(extra)}`;
    test(`${key}: 20 steps end within ${(1.5 * measured[key]!).toFixed(4)} of the exact solution`, () =>
      scope(() => {
        using s = make(cls, extra);
        s.setTimesteps(20);
        const { x, exactEnd } = sample(s, toy, [1, 4, 8, 8], {});
        const err = rms(x, exactEnd);
        assert.ok(err < 1.5 * measured[key]!, `rms from the exact end point ${err}`);
      }));
  }
  for (const [cls, opts] of [
    ['DDIMScheduler', { eta: 1 }],
    ['DDPMScheduler', {}],
    ['EulerAncestralDiscreteScheduler', {}],
  ] as const) {
    test(`${cls} ${JSON.stringify(opts)}: 50 ancestral steps give samples with the data's mean and spread`, () =>
      scope(() => {
        using s = make(cls);
        s.setTimesteps(50);
        const { x } = sample(s, toy, [1, 4, 32, 32], opts);
        const mean = x.mean().item();
        const std = x.std().item();
        // Measured 0.50 / 0.45 for all three (coarse steps lose a little variance); a wrong noise
        // scale moves std far (Euler-ancestral stepping to σ_up instead of σ_down gives 0.25).
        assert.ok(Math.abs(mean - 0.5) < 0.03, `mean ${mean}`);
        assert.ok(std > 0.42 && std < 0.52, `std ${std}`);
      }));
  }
});

describe('randomness', () => {
  const stochastic: [SchedulerClassName, Record<string, unknown>][] = [
    ['DDIMScheduler', { eta: 1 }],
    ['DDPMScheduler', {}],
    ['EulerAncestralDiscreteScheduler', {}],
    ['EulerDiscreteScheduler', { sChurn: 2 }],
  ];
  const rollout = (
    cls: SchedulerClassName,
    opts: Record<string, unknown>,
    seed: number,
    noiseFrom?: Generator,
  ): Float32Array =>
    scope(() => {
      using s = make(cls);
      s.setTimesteps(6);
      manualSeed(99);
      let x = randn([1, 2, 4, 4]).mul(s.initNoiseSigma);
      const gen = new Generator({ seed });
      s.timesteps.forEach((t, i) => {
        manualSeed(1000 + i); // model outputs independent of the scheduler's draws
        const eps = randn([1, 2, 4, 4]);
        const o =
          noiseFrom === undefined
            ? { ...opts, generator: gen }
            : { ...opts, noise: randn([1, 2, 4, 4], { generator: noiseFrom }) };
        x = s.step(eps, t, s.scaleModelInput(x, t), o).prevSample;
      });
      return x.toTypedArray() as Float32Array;
    });
  for (const [cls, opts] of stochastic) {
    test(`${cls}: the same seeded Generator gives the same result, another seed another one, replayed noise the same`, () => {
      const a = rollout(cls, opts, 5);
      const b = rollout(cls, opts, 5);
      const c = rollout(cls, opts, 6);
      assert.deepEqual(a, b, 'same seed, same samples');
      assert.notDeepEqual(a, c, 'another seed must change the samples');
      assert.deepEqual(
        rollout(cls, opts, 0, new Generator({ seed: 5 })),
        a,
        'noise option replays the generator draws',
      );
    });
  }

  test('a step draws from the generator it is given, not the global one', () => {
    using s = make('EulerAncestralDiscreteScheduler');
    s.setTimesteps(5);
    const x = randn([1, 1, 2, 2]);
    manualSeed(1);
    const g1 = new Generator({ seed: 42 });
    const r1 = s.step(x, s.timesteps[0]!, x, { generator: g1 }).prevSample.toTypedArray();
    s.setTimesteps(5);
    manualSeed(2); // a different global stream must not matter
    const r2 = s.step(x, s.timesteps[0]!, x, { generator: new Generator({ seed: 42 }) }).prevSample.toTypedArray();
    assert.deepEqual(r1, r2);
  });
});

describe('fromName, createScheduler from folders', () => {
  test("fromName converts SD's PNDM config to every sampler with the same training schedule", () => {
    using base = createScheduler(SD);
    for (const name of Object.keys(SCHEDULER_NAMES) as SchedulerName[]) {
      using s = fromName(name, base);
      assert.equal(s.className, SCHEDULER_NAMES[name].className);
      assert.deepEqual(s.alphasCumprod, base.alphasCumprod, `${name}: betas carry over`);
    }
    using dpm = fromName('dpm++', { ...SD, _class_name: 'DPMSolverMultistepScheduler', algorithm_type: 'dpmsolver' });
    assert.equal(dpm.config['algorithm_type'], 'dpmsolver++', "'dpm++' means DPM-Solver++");
    using o = fromName('ddim', SD, { set_alpha_to_one: true });
    assert.equal(o.config['set_alpha_to_one'], true, 'overrides win');
    assert.throws(() => fromName('heun' as SchedulerName, SD), isErr('E_ARGUMENT', "'heun'", 'euler-a', 'dpm++'));
  });

  test('createScheduler reads a pipeline folder, a scheduler folder or a file, and says what it looked for', () => {
    const root = mkdtempSync(join(tmpdir(), 'immunize-sched-'));
    mkdirSync(join(root, 'pipe', 'scheduler'), { recursive: true });
    writeFileSync(join(root, 'pipe', 'scheduler', 'scheduler_config.json'), JSON.stringify(SD));
    writeFileSync(join(root, 'ddim.json'), JSON.stringify({ ...SD, _class_name: 'DDIMScheduler' }));
    mkdirSync(join(root, 'empty'));
    writeFileSync(join(root, 'bad.json'), '{nope');
    using a = createScheduler(join(root, 'pipe'));
    assert.equal(a.className, 'PNDMScheduler');
    using b = createScheduler(join(root, 'pipe', 'scheduler'), { _class_name: 'EulerDiscreteScheduler' });
    assert.equal(b.className, 'EulerDiscreteScheduler');
    using c = createScheduler(join(root, 'ddim.json'));
    assert.equal(c.className, 'DDIMScheduler');
    assert.throws(() => createScheduler(join(root, 'empty')), isErr('E_CONFIG', 'scheduler_config.json', 'empty'));
    assert.throws(() => createScheduler(join(root, 'bad.json')), isErr('E_CONFIG', 'bad.json', 'not valid JSON'));
    assert.throws(() => createScheduler(join(root, 'missing')), isErr('E_CONFIG', 'does not exist'));
  });
});

describe('tensors', () => {
  test('addNoise: √ᾱ·x0 + √(1−ᾱ)·ε per batch element; sigma-based: x0 + σ·ε', () =>
    scope(() => {
      using s = make('DDIMScheduler');
      const x0 = tensor([1, 1, 2, 2], [2, 2]);
      const eps = tensor([1, -1, 1, -1], [2, 2]);
      const y = s.addNoise(x0, eps, [999, 0]).toArray();
      const [a999, a0] = [s.alphasCumprod[999]!, s.alphasCumprod[0]!];
      assert.ok(Math.abs(y[0]! - (Math.sqrt(a999) + Math.sqrt(1 - a999))) < 1e-6);
      assert.ok(Math.abs(y[2]! - (2 * Math.sqrt(a0) + Math.sqrt(1 - a0))) < 1e-6);
      assert.deepEqual(
        s.addNoise(x0, eps, tensor(BigInt64Array.of(999n, 0n), [2])).toArray(),
        y,
        'timesteps as an int64 tensor',
      );
      assert.throws(() => s.addNoise(x0, eps, []), isErr('E_ARGUMENT', 'addNoise', 'timesteps'));
      using e = make('EulerDiscreteScheduler');
      e.setTimesteps(10);
      const z = e.addNoise(x0, eps, e.timesteps[0]!).toArray();
      assert.ok(Math.abs(z[1]! - (1 - e.sigmas![0]!)) < 1e-5, `${z[1]} vs ${1 - e.sigmas![0]!}`);
    }));

  test('DDIM step is differentiable in the sample (d x_prev / d x_t = √(ᾱ_prev/ᾱ_t) for ε-prediction)', () =>
    scope(() => {
      using s = make('DDIMScheduler');
      s.setTimesteps(10);
      const x = randn([1, 1, 2, 2]).requiresGrad_();
      const eps = randn([1, 1, 2, 2]);
      const prev = s.step(eps, 501, x).prevSample;
      const [g] = grad(prev.sum(), [x]);
      const want = Math.sqrt(s.alphasCumprod[401]! / s.alphasCumprod[501]!);
      for (const v of g!.toArray()) assert.ok(Math.abs(v - want) < 1e-5, `${v} vs ${want}`);
    }));

  test('multistep state is freed by setTimesteps()/dispose(), and step outputs are independent handles', async () => {
    await settle(); // let earlier tests' garbage be finalized so the count below is stable
    const before = liveTensors();
    for (const cls of ['PNDMScheduler', 'LMSDiscreteScheduler', 'DPMSolverMultistepScheduler'] as const) {
      const s = make(cls, cls === 'PNDMScheduler' ? { skip_prk_steps: false } : {});
      s.setTimesteps(12);
      let x = randn([1, 2, 4, 4]);
      for (const t of s.timesteps) {
        const eps = randn([1, 2, 4, 4]);
        const scaled = s.scaleModelInput(x, t);
        const r = s.step(eps, t, scaled);
        eps.dispose(); // the scheduler keeps its own handles on what it needs
        scaled.dispose();
        r.predOriginalSample?.dispose();
        x.dispose();
        x = r.prevSample;
      }
      assert.ok(liveTensors() > before + 1, `${cls} keeps state between steps`);
      s.dispose();
      x.dispose();
      assert.equal(liveTensors(), before, `${cls}: tensors left after dispose()`);
    }
  });
});
