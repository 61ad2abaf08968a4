/**
 * Attack presets, on the [0, 1] pixel scale. photoguard's notebooks state ε on [-1, 1]
 * (ε = 0.06 there is 0.03 here); the paper's Table 9 states it on [0, 1].
 */
import type { PgdOptions } from './pgd.js';

/** converged: stop at a plateau of the loss (convergence.ts), `steps` being the cap; steps: take them all. */
export const STOP_RULES = ['converged', 'steps'] as const;
export type StopRule = (typeof STOP_RULES)[number];

/**
 * uniform: every pixel may move by eps (photoguard's L∞ ball); texture: a per-pixel bound that
 * follows the photo's local contrast, eps where the contrast is average (budget.ts, textureBudget).
 */
export const BUDGETS = ['uniform', 'texture'] as const;
export type BudgetKind = (typeof BUDGETS)[number];

export interface Preset {
  description: string;
  source: string;
  /** When the attack stops by default (the encoder attack; the others take every step). */
  stop: StopRule;
  /** The shape of the budget (the encoder attack; the others use a uniform one). */
  budget: BudgetKind;
  /** The visibility target: SSIM of the result to the original at least this (the encoder attack); null: none. */
  minSsim: number | null;
  options: Pick<PgdOptions, 'eps' | 'stepSize' | 'steps' | 'norm' | 'schedule' | 'randomStart' | 'optimizer'>;
}

/** What `immunize protect` (and the service) use when no preset is named. */
export const DEFAULT_PRESET = 'balanced';

/**
 * Old names that still work: `default` was the name of `strong` until the `balanced` default
 * (issue 15); old API clients and sidecars still send it.
 */
export const PRESET_ALIASES: Readonly<Record<string, string>> = Object.freeze({ default: 'strong' });

/** The preset a name means (an alias resolved), or undefined. */
export function presetNamed(name: string): { name: string; preset: Preset; alias: string | null } | undefined {
  const real = PRESET_ALIASES[name] ?? name;
  const preset = PRESETS[real];
  return preset === undefined ? undefined : { name: real, preset, alias: real === name ? null : name };
}

/** Every name a request may give: the presets, then the deprecated aliases. */
export function presetNames(): string[] {
  return [...Object.keys(PRESETS), ...Object.keys(PRESET_ALIASES)];
}

/** Salman et al. 2023's encoder attack, as photoguard runs it; `strong` changes only its optimizer. */
const PAPER_ATTACK: Preset['options'] = {
  eps: 16 / 255,
  stepSize: 2 / 255,
  steps: 200,
  norm: 'linf',
  schedule: 'linear-decay',
  randomStart: true,
  optimizer: 'sign',
};

/** The visibility-bounded presets: momentum on a texture budget, stopped at a plateau (at most 200 steps). */
const VISIBLE_ATTACK: Omit<Preset['options'], 'eps' | 'stepSize'> = {
  steps: 200,
  norm: 'linf',
  schedule: 'linear-decay',
  randomStart: true,
  optimizer: 'momentum',
};

export const PRESETS: Record<string, Preset> = {
  subtle: {
    description:
      "hard to see: SSIM to the original at least 0.95; a budget that follows the photo's texture (6/255 where its contrast is average, more in texture, less in flat areas), momentum, stops at a plateau (at most 200 steps). Weak protection",
    source:
      'Immunize (issue 15): the texture budget of budget.ts scaled down during the attack until SSIM ≥ 0.95; docs/protect.md#presets has its measurements',
    stop: 'converged',
    budget: 'texture',
    minSsim: 0.95,
    options: { ...VISIBLE_ATTACK, eps: 6 / 255, stepSize: 6 / 255 / 8 },
  },
  balanced: {
    description:
      "the default: SSIM to the original at least 0.90 (visible on close inspection of flat areas); a budget that follows the photo's texture (10/255 where its contrast is average, more in texture, less in flat areas), momentum, stops at a plateau (at most 200 steps)",
    source:
      'Immunize (issue 15): the texture budget of budget.ts scaled down during the attack until SSIM ≥ 0.90; docs/protect.md#presets has its measurements',
    stop: 'converged',
    budget: 'texture',
    minSsim: 0.9,
    options: { ...VISIBLE_ATTACK, eps: 10 / 255, stepSize: 10 / 255 / 8 },
  },
  strong: {
    description:
      "the paper's budget and steps (L∞ 16/255, step 2/255 decaying, at most 200 steps) with momentum, stopping at a plateau of the loss; a plainly visible pattern (SSIM 0.40–0.49 to the original at full resolution on the test photos)",
    source:
      'Immunize: the paper preset with MI-FGSM (Dong et al. 2018); measured on TAEF2 at 256² with trevor_5.jpg (scripts/reproduce-taef2.mjs): reconstruction PSNR 23.41 dB after 200 steps (sign 23.53, Adam 23.61), ≤ 23.9 dB from step 80 (sign 120, Adam 100)',
    stop: 'converged',
    budget: 'uniform',
    minSsim: null,
    options: { ...PAPER_ATTACK, optimizer: 'momentum' },
  },
  paper: {
    description: "the paper's encoder attack: L∞ 16/255, step 2/255, 200 steps",
    source:
      "Salman et al. 2023, Table 9 (encoder attack hyper-parameters), with photoguard's random start and decaying step",
    stop: 'steps',
    budget: 'uniform',
    minSsim: null,
    options: PAPER_ATTACK,
  },
  'photoguard-demo': {
    description:
      "photoguard's demo app: ε 0.12 and step 0.01 on [-1, 1] (0.06 and 0.005 here), 200 steps, towards a gray image",
    source:
      'hadisalman/photoguard Hugging Face Space app.py: pgd(X, eps=0.12, step_size=0.01, iters=200, clamp_min=-1, clamp_max=1) with a random start and linear step decay',
    stop: 'steps',
    budget: 'uniform',
    minSsim: null,
    options: {
      eps: 0.06,
      stepSize: 0.005,
      steps: 200,
      norm: 'linf',
      schedule: 'linear-decay',
      randomStart: true,
      optimizer: 'sign',
    },
  },
  fast: {
    description: 'a quick protection for previews: L∞ 16/255, 40 steps with momentum',
    source:
      'Immunize default for interactive use; MI-FGSM (Dong et al. 2018) converges in fewer steps than plain sign steps',
    stop: 'steps',
    budget: 'uniform',
    minSsim: null,
    options: {
      eps: 16 / 255,
      stepSize: 2 / 255,
      steps: 40,
      norm: 'linf',
      schedule: 'constant',
      randomStart: true,
      optimizer: 'momentum',
    },
  },
};
