/**
 * Attack presets, on the [0, 1] pixel scale. photoguard's notebooks state ε on [-1, 1]
 * (ε = 0.06 there is 0.03 here); the paper's Table 9 states it on [0, 1].
 */
import type { PgdOptions } from './pgd.js';

/** converged: stop at a plateau of the loss (convergence.ts), `steps` being the cap; steps: take them all. */
export const STOP_RULES = ['converged', 'steps'] as const;
export type StopRule = (typeof STOP_RULES)[number];

export interface Preset {
  description: string;
  source: string;
  /** When the attack stops by default (the encoder attack; the others take every step). */
  stop: StopRule;
  options: Pick<PgdOptions, 'eps' | 'stepSize' | 'steps' | 'norm' | 'schedule' | 'randomStart' | 'optimizer'>;
}

/** What `immunize protect` (and the service) use when no preset is named. */
export const DEFAULT_PRESET = 'default';

/** Salman et al. 2023's encoder attack, as photoguard runs it; `default` changes only its optimizer. */
const PAPER_ATTACK: Preset['options'] = {
  eps: 16 / 255,
  stepSize: 2 / 255,
  steps: 200,
  norm: 'linf',
  schedule: 'linear-decay',
  randomStart: true,
  optimizer: 'sign',
};

export const PRESETS: Record<string, Preset> = {
  default: {
    description:
      "the paper's budget and steps (L∞ 16/255, step 2/255 decaying, 200 steps) with momentum: as strong as the paper's attack in 80 steps instead of 120, and stronger at 200",
    source:
      'Immunize: the paper preset with MI-FGSM (Dong et al. 2018); measured on TAEF2 at 256² with trevor_5.jpg (scripts/reproduce-taef2.mjs): reconstruction PSNR 23.41 dB after 200 steps (sign 23.53, Adam 23.61), ≤ 23.9 dB from step 80 (sign 120, Adam 100)',
    stop: 'steps',
    options: { ...PAPER_ATTACK, optimizer: 'momentum' },
  },
  paper: {
    description: "the paper's encoder attack: L∞ 16/255, step 2/255, 200 steps",
    source:
      "Salman et al. 2023, Table 9 (encoder attack hyper-parameters), with photoguard's random start and decaying step",
    stop: 'steps',
    options: PAPER_ATTACK,
  },
  'photoguard-demo': {
    description:
      "photoguard's demo app: ε 0.12 and step 0.01 on [-1, 1] (0.06 and 0.005 here), 200 steps, towards a gray image",
    source:
      'hadisalman/photoguard Hugging Face Space app.py: pgd(X, eps=0.12, step_size=0.01, iters=200, clamp_min=-1, clamp_max=1) with a random start and linear step decay',
    stop: 'steps',
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
