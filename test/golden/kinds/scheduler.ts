// kind "scheduler": every entry of case.json `schedulers` names a diffusers class and the config it
// ends up with. For each: the resulting config, timesteps (and sigmas) for every stored N,
// add_noise, img2img timesteps, and a step rollout replaying the stored model outputs, with the
// step's random draws checked against the stored noise and the generator's state.
import assert from 'node:assert/strict';
import { createScheduler, type Scheduler, type StepOptions } from '../../../src/schedulers/index.js';
import { Generator, randn, scope, type Tensor } from '../../../src/torch/index.js';
import { assertClose, toleranceFor, type Tolerance } from '../compare.js';
import { caseTensors } from '../io.js';
import type { CaseRunner } from './types.js';

interface Entry {
  class: string;
  config_overrides?: Record<string, unknown>;
  config?: Record<string, unknown>;
  order?: number;
  timesteps?: Record<string, number[]>;
  sigmas?: Record<string, number[]>;
  timesteps_dtype?: 'int64' | 'float64';
  step_kwargs?: Record<string, unknown>;
  add_noise_timesteps?: number[];
  add_noise_int_timesteps?: number[];
  img2img?: {
    num_inference_steps: number;
    strength: number;
    init_timestep: number;
    t_start: number;
    timesteps: number[];
    latent_timestep: number;
  };
  init_noise_sigma?: number;
  rollout?: {
    num_inference_steps: number;
    steps: number;
    random_draws_per_step?: number[];
    generator_seed: number | null;
  };
}

const pad = (i: number): string => String(i).padStart(2, '0');
const camel = (k: string): string => k.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());

/** Float timesteps and sigmas: 1e-6 relative (case.json); integers exactly. */
function assertSeq(got: readonly number[] | Float32Array, expected: number[], label: string): void {
  assert.equal(got.length, expected.length, `${label}: ${got.length} values, expected ${expected.length}`);
  expected.forEach((e, i) => {
    const g = got[i]!;
    const ok = Number.isInteger(e) && Number.isInteger(g) ? g === e : Math.abs(g - e) <= 1e-6 * Math.abs(e) + 1e-12;
    assert.ok(ok, `${label}[${i}]: got ${g}, expected ${e} (all: [${Array.from(got).join(', ')}])`);
  });
}

const run: CaseRunner = async ({ dir, spec }, t) => {
  using io = caseTensors(dir);
  const { ref } = io;
  const defaultTol: Tolerance = toleranceFor(spec.tolerances, 'default', { atol: 1e-5, rtol: 1e-5 });
  const base = (spec.base_config ?? {}) as Record<string, unknown>;
  if (io.has('alphas_cumprod') || io.has('betas')) {
    await t.test('betas and alphas_cumprod of base_config, bit for bit', () => {
      using s = createScheduler(base);
      for (const [k, got] of [
        ['betas', s.betas],
        ['alphas_cumprod', s.alphasCumprod],
      ] as const) {
        if (!io.has(k)) continue;
        const exp = ref(k).toTypedArray() as Float32Array;
        assert.equal(got.length, exp.length, `${k}: length`);
        const bad = exp.findIndex((v, i) => v !== got[i]);
        assert.equal(bad, -1, `${k}[${bad}]: got ${got[bad]}, expected ${exp[bad]}`);
      }
    });
  }
  for (const [tag, e] of Object.entries(spec.schedulers as Record<string, Entry>)) {
    const tol = toleranceFor(spec.tolerances, e.class, defaultTol);
    const build = (): Scheduler =>
      createScheduler({ ...base, ...(e.config_overrides ?? {}) }, { _class_name: e.class });
    await t.test(`${tag} (${e.class})`, async (st) => {
      const maxDiff: Record<string, number> = {};
      const close = (got: Tensor, key: string): void => {
        const r = assertClose(got, ref(key), tol, key);
        const group = key.replace(/^[^.]*\./, '').replace(/(_t?\d+)+$/, '');
        maxDiff[group] = Math.max(maxDiff[group] ?? 0, r.maxAbs);
      };

      await st.test('config, order, init_noise_sigma', () => {
        using s = build();
        assert.equal(s.className, e.class);
        for (const [k, v] of Object.entries(e.config ?? {})) {
          if (k.startsWith('_')) continue;
          assert.deepEqual(
            s.config[k],
            v,
            `config.${k}: got ${JSON.stringify(s.config[k])}, expected ${JSON.stringify(v)}`,
          );
        }
        if (e.order !== undefined) assert.equal(s.order, e.order, 'order');
        if (e.init_noise_sigma !== undefined) assertSeq([s.initNoiseSigma], [e.init_noise_sigma], 'init_noise_sigma');
      });

      await st.test('timesteps and sigmas', () => {
        using s = build();
        for (const [n, expected] of Object.entries(e.timesteps ?? {})) {
          s.setTimesteps(Number(n));
          assertSeq(s.timesteps, expected, `timesteps(N=${n})`);
          if (e.timesteps_dtype !== undefined) {
            assert.equal(s.timestepsDtype, e.timesteps_dtype, 'timesteps dtype');
            using tt = s.timestepsTensor();
            assert.equal(tt.dtype, e.timesteps_dtype, 'timestepsTensor() dtype');
            assertSeq(tt.toArray(), expected, `timestepsTensor(N=${n})`);
          }
          const sig = e.sigmas?.[n];
          if (sig !== undefined) {
            assert.ok(s.sigmas !== undefined, `${e.class} has no sigmas`);
            assertSeq(s.sigmas, sig, `sigmas(N=${n})`);
          }
        }
      });

      if (e.add_noise_timesteps !== undefined || e.add_noise_int_timesteps !== undefined) {
        await st.test('add_noise', () =>
          scope(() => {
            using s = build();
            s.setTimesteps(e.rollout?.num_inference_steps ?? 10);
            const x0 = ref('x0');
            const noise = ref('noise');
            (e.add_noise_timesteps ?? []).forEach((ts, j) =>
              close(s.addNoise(x0, noise, [ts]), `${tag}.add_noise_${j}`),
            );
            for (const T of e.add_noise_int_timesteps ?? [])
              close(s.addNoise(x0, noise, [T]), `${tag}.add_noise_t${T}`);
          }),
        );
      }

      if (e.img2img !== undefined) {
        await st.test('img2img timesteps', () => {
          const g = e.img2img!;
          using s = build();
          s.setTimesteps(g.num_inference_steps);
          const r = s.img2imgTimesteps(g.strength);
          assert.equal(r.initTimestep, g.init_timestep, 'init_timestep');
          assert.equal(r.tStart, g.t_start, 't_start');
          assertSeq(r.timesteps, g.timesteps, 'img2img timesteps');
          assert.equal(r.latentTimestep, g.latent_timestep, 'latent_timestep');
        });
      }

      if (e.rollout !== undefined) {
        await st.test(
          `rollout (N=${e.rollout.num_inference_steps}${e.rollout.generator_seed === null ? '' : `, generator seed ${e.rollout.generator_seed}`})`,
          () =>
            scope(() => {
              const ro = e.rollout!;
              using s = build();
              s.setTimesteps(ro.num_inference_steps);
              assert.equal(s.timesteps.length, ro.steps, 'number of step() calls');
              const gen = ro.generator_seed === null ? undefined : new Generator({ seed: ro.generator_seed });
              const kwargs: StepOptions = Object.fromEntries(
                Object.entries(e.step_kwargs ?? {}).map(([k, v]) => [camel(k), v]),
              );
              let sample = ref('init_sample').mul(s.initNoiseSigma);
              if (io.has(`${tag}.sample_init`)) close(sample, `${tag}.sample_init`);
              s.timesteps.forEach((ts, i) =>
                scope(() => {
                  const ii = pad(i);
                  if (io.has(`${tag}.scaled_${ii}`)) close(s.scaleModelInput(sample, ts), `${tag}.scaled_${ii}`);
                  const draws = ro.random_draws_per_step?.[i] ?? 0;
                  const opts: StepOptions = { ...kwargs };
                  let probe: Generator | null = null;
                  if (gen !== undefined) {
                    opts.generator = gen;
                    // The draws step() will make, from a copy of the generator: they must equal the stored noise.
                    probe = new Generator();
                    probe.setState(gen.getState());
                    for (let k = 0; k < draws; k++) {
                      const drawn = randn(sample.shape, { generator: probe });
                      const key = k === 0 ? `${tag}.noise_${ii}` : `${tag}.noise_${ii}_${k}`;
                      if (io.has(key)) close(drawn, key);
                    }
                  } else if (draws === 1) {
                    opts.noise = ref(`${tag}.noise_${ii}`); // replay what the reference drew from the global generator
                  }
                  const res = s.step(ref(`model_output_${ii}`), ts, sample, opts);
                  if (probe !== null) {
                    assert.ok(
                      Buffer.compare(gen!.getState().toBytes(), probe.getState().toBytes()) === 0,
                      `step ${i}: step() did not draw exactly ${draws} noise tensor(s) from the generator`,
                    );
                  }
                  close(res.prevSample, `${tag}.prev_${ii}`);
                  if (io.has(`${tag}.pred_original_${ii}`)) {
                    assert.ok(
                      res.predOriginalSample !== undefined,
                      `step ${i}: the reference returns pred_original_sample, this scheduler did not`,
                    );
                    close(res.predOriginalSample, `${tag}.pred_original_${ii}`);
                  }
                  sample.dispose();
                  sample = res.prevSample;
                  return sample;
                }),
              );
            }),
        );
      }
      st.diagnostic(
        `${tag}: max |diff| ${Object.entries(maxDiff)
          .map(([k, v]) => `${k} ${v.toExponential(2)}`)
          .join(', ')} (atol ${tol.atol}, rtol ${tol.rtol})`,
      );
    });
  }
};
export default run;
