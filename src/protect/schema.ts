/**
 * The protect job's parameters, declared once: name, type, range, default, which doors offer it
 * and a one-line description. The CLI's flags and `--help`, the API's request validation and its
 * OpenAPI document are all derived from this list (as fastify derives validation and docs from a
 * route schema), so a new parameter is added here and nowhere else.
 */
import { IMMUNIZE_METHODS } from '../attacks/immunize.js';
import { BUDGETS, DEFAULT_PRESET, PRESET_ALIASES, PRESETS, STOP_RULES, presetNames } from '../attacks/presets.js';
import { DEFAULT_CHECK_SUITE } from '../robustness/check.js';
import { PRECISIONS } from '../torch/index.js';

export type Door = 'cli' | 'api';

interface Common {
  /** camelCase: the API field, the sidecar's name. */
  name: string;
  /** The command-line flag without `--`. */
  flag: string;
  /** One line for `--help` and the OpenAPI document. */
  description: string;
  /** The doors that offer it (the others use its default). */
  doors: readonly Door[];
  /** Placeholder in `--help` (`--eps E`). */
  valueName?: string;
}

export interface NumberSpec extends Common {
  type: 'number' | 'integer';
  /** Inclusive bounds; `above` is an exclusive lower bound. */
  min?: number;
  max?: number;
  above?: number;
  /** Fractions such as 16/255 are accepted (budgets on 8-bit pixels). */
  fraction?: boolean;
  /** A fixed default, or 'preset' (from the chosen preset), or absent (none). */
  default?: number | 'preset';
}

export interface ChoiceSpec extends Common {
  type: 'choice';
  choices: readonly string[];
  /** On the command line any other value is a file path (`--target IMAGE`). */
  cliPath?: boolean;
  default?: string | 'preset';
}

export interface BooleanSpec extends Common {
  type: 'boolean';
  default: false;
}

export interface StringSpec extends Common {
  type: 'string' | 'list';
  /** Longest value accepted (each item, for a list). */
  maxLength?: number;
  default?: string | readonly string[];
}

export type ParameterSpec = NumberSpec | ChoiceSpec | BooleanSpec | StringSpec;

const both: readonly Door[] = ['cli', 'api'];
const cliOnly: readonly Door[] = ['cli'];

/** Largest image the command accepts by default: 40 MP (a 7,700×5,200 photo) needs a lot of memory. */
export const DEFAULT_MAX_PIXELS = 40_000_000;

/** An amount on [0, 1] pixels in (0, 1], written as a number or a fraction (16/255); the preset's by default. */
function pixelAmount(name: string, flag: string, valueName: string, description: string): NumberSpec {
  return {
    name,
    flag,
    type: 'number',
    fraction: true,
    above: 0,
    max: 1,
    default: 'preset',
    doors: both,
    valueName,
    description,
  };
}

export const PROTECT_PARAMETERS: readonly ParameterSpec[] = [
  {
    name: 'method',
    flag: 'method',
    type: 'choice',
    choices: IMMUNIZE_METHODS,
    default: 'encoder',
    doors: both,
    valueName: 'M',
    description:
      "encoder (the encoder attack) | diffusion (photoguard's attack through an inpainting pipeline; needs a mask, white = protect) | noise (random-noise baseline of the same budget) | learned (one forward pass of the learned immunizer in weights/immunizer-taef2, trained against TAEF2: seconds instead of minutes; docs/learned.md)",
  },
  {
    name: 'model',
    flag: 'model',
    type: 'string',
    maxLength: 4096,
    doors: both,
    valueName: 'ID|PATH',
    description:
      'the model to protect against: a Hugging Face repo id, a diffusers folder, a .safetensors file (the API: a model id from /v1/config)',
  },
  {
    name: 'preset',
    flag: 'preset',
    type: 'choice',
    choices: presetNames(),
    default: DEFAULT_PRESET,
    doors: both,
    valueName: 'P',
    description: [
      ...Object.entries(PRESETS).map(([k, p]) => `${k}: ${p.description}`),
      ...Object.entries(PRESET_ALIASES).map(([k, to]) => `${k}: the old name of ${to} (deprecated)`),
    ].join('; '),
  },
  {
    name: 'minSsim',
    flag: 'min-ssim',
    type: 'number',
    min: 0,
    max: 0.999,
    default: 'preset',
    doors: both,
    valueName: 'S',
    description:
      "visibility target: the result keeps SSIM ≥ S to the original (1 = identical; measured at full resolution on the whole photo), the attack shrinking its budget as needed and scaling the change back at the end if it must; 0 = no target (encoder attack; the preset's by default: subtle 0.95, balanced 0.90, others none)",
  },
  pixelAmount(
    'eps',
    'eps',
    'E',
    "L∞ budget on [0,1] pixels, e.g. 16/255 (overrides the preset); with budget texture, the bound where the photo's contrast is average",
  ),
  {
    name: 'budget',
    flag: 'budget',
    type: 'choice',
    choices: BUDGETS,
    default: 'preset',
    doors: both,
    valueName: 'B',
    description:
      "uniform: every pixel may move by eps (photoguard's) | texture: more in textured areas, less in flat ones such as skin or sky, where a pattern shows first (encoder attack; docs/attacks.md#per-pixel-budgets)",
  },
  pixelAmount('stepSize', 'step-size', 'S', 'step size, e.g. 2/255'),
  {
    name: 'steps',
    flag: 'steps',
    type: 'integer',
    min: 1,
    max: 1_000_000,
    default: 'preset',
    doors: both,
    valueName: 'N',
    description: 'iterations: the budget (with stop converged, the most steps the attack may take)',
  },
  {
    name: 'stop',
    flag: 'stop',
    type: 'choice',
    choices: STOP_RULES,
    default: 'preset',
    doors: both,
    valueName: 'R',
    description:
      "steps: take every step (photoguard's fixed count; the paper preset's default) | converged: stop once the encoder attack's loss has reached a plateau (the last 10 steps gained under 1% of all progress so far, never before step 40), steps being the cap (the default of subtle, balanced and strong; docs/protect.md#when-the-attack-stops)",
  },
  {
    name: 'start',
    flag: 'start',
    type: 'choice',
    choices: ['preset', 'learned'],
    default: 'preset',
    doors: both,
    valueName: 'S',
    description:
      "encoder: where PGD starts — preset (the preset's start: photoguard's random start, or the photo itself) | learned (the learned immunizer's perturbation, then steps of the encoder attack refine it: by default 20 steps at 4× the preset's step size; docs/learned.md)",
  },
  {
    name: 'optimizer',
    flag: 'optimizer',
    type: 'choice',
    choices: ['sign', 'momentum', 'adam'],
    default: 'preset',
    doors: both,
    valueName: 'O',
    description: 'sign | momentum | adam',
  },
  {
    name: 'schedule',
    flag: 'schedule',
    type: 'choice',
    choices: ['constant', 'linear-decay'],
    default: 'preset',
    doors: both,
    valueName: 'S',
    description: 'constant | linear-decay',
  },
  {
    name: 'target',
    flag: 'target',
    type: 'choice',
    choices: ['gray', 'zeros'],
    cliPath: true,
    default: 'gray',
    doors: both,
    valueName: 'T',
    description: 'gray (default) | zeros | (command line) the path of a target image',
  },
  {
    name: 'invertMask',
    flag: 'invert-mask',
    type: 'boolean',
    default: false,
    doors: both,
    description:
      "the mask is white where an editor would repaint (photoguard's and inpainting's convention): perturb where it is black",
  },
  {
    name: 'robust',
    flag: 'robust',
    type: 'choice',
    choices: ['none', 'jpeg', 'all'],
    default: 'none',
    doors: both,
    valueName: 'K',
    description:
      'jpeg | all: robust immunization (expectation over transforms): every step optimises through a random differentiable JPEG (quality 50–95), or JPEG/resize/blur/noise (all), so that re-saving as JPEG does not remove the protection; same cost per step',
  },
  {
    name: 'robustSamples',
    flag: 'robust-samples',
    type: 'integer',
    min: 1,
    max: 64,
    default: 1,
    doors: both,
    valueName: 'N',
    description: 'random transforms averaged per step with robust (N× the cost)',
  },
  {
    name: 'diffusionSteps',
    flag: 'diffusion-steps',
    type: 'integer',
    min: 1,
    max: 1000,
    default: 4,
    doors: both,
    valueName: 'N',
    description: 'diffusion: denoising steps back-propagated per pass',
  },
  {
    name: 'gradReps',
    flag: 'grad-reps',
    type: 'integer',
    min: 1,
    max: 1000,
    default: 1,
    doors: both,
    valueName: 'N',
    description: 'diffusion: random passes averaged per step',
  },
  {
    name: 'size',
    flag: 'size',
    type: 'integer',
    min: 8,
    max: 65_536,
    doors: both,
    valueName: 'N',
    description:
      'downscale so the longer side is N pixels (aspect ratio kept) first; by default photos are protected at their own size',
  },
  {
    name: 'tile',
    flag: 'tile',
    type: 'integer',
    min: 32,
    max: 65_536,
    doors: cliOnly,
    valueName: 'N',
    description:
      "encode in N×N tiles overlapping by N/4 (large images, less memory; N a multiple of 4 × the model's downscale factor, e.g. 512)",
  },
  {
    name: 'seed',
    flag: 'seed',
    type: 'integer',
    min: 0,
    max: Number.MAX_SAFE_INTEGER,
    default: 0,
    doors: both,
    valueName: 'N',
    description: 'random seed: same seed, same result',
  },
  {
    name: 'check',
    flag: 'check',
    type: 'boolean',
    default: false,
    doors: cliOnly,
    description:
      'after immunizing, purify the result (JPEG 95…50, WebP, blur, median, resize, rotation, flip, noise) and measure how much protection survives each',
  },
  {
    name: 'checkSuite',
    flag: 'check-suite',
    type: 'list',
    maxLength: 200,
    default: DEFAULT_CHECK_SUITE,
    doors: cliOnly,
    valueName: 'S,S',
    description: 'purifications for check (docs/purify.md grammar), comma-separated',
  },
  {
    name: 'maxPixels',
    flag: 'max-pixels',
    type: 'integer',
    min: 1,
    max: Number.MAX_SAFE_INTEGER,
    default: DEFAULT_MAX_PIXELS,
    doors: cliOnly,
    valueName: 'N',
    description: `refuse photos larger than N pixels (default ${DEFAULT_MAX_PIXELS / 1e6} MP)`,
  },
  {
    name: 'device',
    flag: 'device',
    type: 'string',
    maxLength: 32,
    default: 'cpu',
    doors: cliOnly,
    valueName: 'D',
    description: 'cpu (default) | cuda | cuda:N',
  },
  {
    name: 'precision',
    flag: 'precision',
    type: 'choice',
    choices: ['auto', ...PRECISIONS],
    default: 'auto',
    doors: both,
    valueName: 'P',
    description:
      "the encoder attack's arithmetic: auto (default: bf16 on CUDA or a CPU with native bf16 — avx512_bf16, AMX — else fp32) | fp32 | bf16 | fp16 (CUDA only). Convolutions and matrix products run in it; normalisations, the loss, the attack's state and every reported number stay fp32",
  },
  {
    name: 'fp16',
    flag: 'fp16',
    type: 'boolean',
    default: false,
    doors: cliOnly,
    description: "prefer the model's fp16 weights (computation stays float32 on CPU)",
  },
];

export function parameterSpec(name: string): ParameterSpec {
  const s = PROTECT_PARAMETERS.find((p) => p.name === name);
  if (s === undefined) throw new Error(`no protect parameter '${name}'`);
  return s;
}

/** The parameters a door offers. */
export function parametersFor(door: Door): ParameterSpec[] {
  return PROTECT_PARAMETERS.filter((p) => p.doors.includes(door));
}

/** The JSON schema of one parameter as a multipart/JSON field (values arrive as text in multipart forms). */
export function jsonSchemaOf(p: ParameterSpec): Record<string, unknown> {
  const base = { description: p.description };
  switch (p.type) {
    case 'choice':
      return {
        ...base,
        type: 'string',
        enum: [...p.choices],
        ...(p.default !== undefined && p.default !== 'preset' ? { default: p.default } : {}),
      };
    case 'boolean':
      return { ...base, type: 'string', enum: ['true', 'false'], default: 'false' };
    case 'number':
    case 'integer': {
      const range = [
        p.above !== undefined ? `> ${p.above}` : null,
        p.min !== undefined ? `≥ ${p.min}` : null,
        p.max !== undefined ? `≤ ${p.max}` : null,
      ]
        .filter((s) => s !== null)
        .join(', ');
      const pattern =
        p.type === 'integer'
          ? '^\\s*\\d+\\s*$'
          : '^\\s*-?\\d+(\\.\\d+)?([eE][-+]?\\d+)?\\s*(/\\s*\\d+(\\.\\d+)?)?\\s*$';
      return {
        ...base,
        type: 'string',
        pattern,
        'x-immunize-type': p.type,
        'x-immunize-range': range,
        ...(typeof p.default === 'number' ? { default: String(p.default) } : {}),
      };
    }
    case 'string':
    case 'list':
      return { ...base, type: 'string', ...(p.maxLength === undefined ? {} : { maxLength: p.maxLength }) };
  }
}
