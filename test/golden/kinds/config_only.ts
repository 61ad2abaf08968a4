// kind "config_only": a real config to load; nothing to compute. Every JSON file in the case
// folder must parse as an object with a _class_name. Scheduler configs must build with
// createScheduler and give sane timesteps — for Stable Diffusion's layout (1000 training steps,
// steps_offset 1) exactly the documented 50-step list 981, 961, …, 1 (PNDM's PLMS repeats 961).
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createScheduler, SUPPORTED_SCHEDULERS, type SchedulerClassName } from '../../../src/schedulers/index.js';
import type { CaseRunner } from './types.js';

/** SD's 50-step timesteps (DDIM/PNDM with steps_offset 1): 981, 961, …, 21, 1. */
const SD_50 = Array.from({ length: 50 }, (_, i) => 981 - 20 * i);

const run: CaseRunner = async ({ dir }, t) => {
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.json') && n !== 'case.json')) {
    const v = JSON.parse(readFileSync(join(dir, f), 'utf8')) as Record<string, unknown>;
    await t.test(f, () => {
      assert.equal(typeof v['_class_name'], 'string', `${f}: _class_name`);
    });
    const cls = String(v['_class_name']);
    if (!cls.endsWith('Scheduler')) continue;
    await t.test(`${f}: createScheduler (${cls}), setTimesteps(50)`, (st) => {
      if (!SUPPORTED_SCHEDULERS.includes(cls as SchedulerClassName)) {
        assert.throws(
          () => createScheduler(v),
          (e: Error) => e.message.includes(cls) && SUPPORTED_SCHEDULERS.every((s) => e.message.includes(s)),
        );
        st.diagnostic(`${cls} is not supported; createScheduler says so and lists the supported classes`);
        return;
      }
      using s = createScheduler(join(dir, f));
      assert.equal(s.className, cls);
      s.setTimesteps(50);
      const ts = s.timesteps;
      assert.ok(ts.length >= 50, `${ts.length} timesteps`);
      assert.ok(
        ts.every((x, i) => x >= 0 && x < s.numTrainTimesteps && (i === 0 || x <= ts[i - 1]!)),
        `timesteps not decreasing within [0, ${s.numTrainTimesteps}): ${ts.join(', ')}`,
      );
      if (v['num_train_timesteps'] === 1000 && v['steps_offset'] === 1) {
        if (cls === 'DDIMScheduler') assert.deepEqual([...ts], SD_50);
        if (cls === 'PNDMScheduler' && v['skip_prk_steps'] === true)
          assert.deepEqual([...ts], [SD_50[0]!, SD_50[1]!, ...SD_50.slice(1)]);
      }
      // A pipeline's config converts to every other sampler (diffusers' from_config).
      for (const other of SUPPORTED_SCHEDULERS) {
        using o = createScheduler(v, { _class_name: other });
        o.setTimesteps(50);
        assert.equal(o.timesteps.length >= 50, true, `${other}: ${o.timesteps.length} timesteps`);
        assert.deepEqual(o.alphasCumprod, s.alphasCumprod, `${other}: same training schedule`);
      }
    });
  }
};
export default run;
