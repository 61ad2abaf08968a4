/**
 * The page's plain words for what the server names by id: presets, methods and models. Model ids
 * such as `taef2-hf` are an operator's names; people see what the model is.
 */
import type { Preset } from './api.js';

export { PRESET_HELP, METHOD_HELP, methodLabel, modelHelp, modelLabel, presetExactly, visibilityWords };

const PRESET_HELP: Record<string, string> = {
  subtle:
    'Hard to see: the photo stays very close to the original (SSIM at least 0.95). The changes go where the photo has texture. The protection is weak.',
  balanced:
    'The default: a faint pattern, kept to SSIM at least 0.90 to the original — a close look at flat areas such as skin or sky shows it. The changes go where the photo has texture. Moderate protection.',
  strong:
    "The published attack's strength (changes up to 16 of 255 levels everywhere) with a faster optimiser; it stops when more steps stop helping. A clearly visible pattern, the strongest protection. Slow on a CPU for large photos.",
  default: "The old name of 'strong'.",
  paper:
    'Exactly the published attack (Salman et al. 2023): sign steps, 200 steps, for comparisons with the paper. Slow on a CPU for large photos.',
  'photoguard-demo': "The settings of photoguard's online demo: a little weaker change (about 15/255), 200 steps.",
  fast: "A quick protection in 40 steps, good for trying things out; somewhat weaker than the paper's.",
};

const METHOD_HELP: Record<string, string> = {
  encoder:
    "Encoder attack: changes the photo so the model's image encoder takes it for a flat gray image. Fast and effective.",
  diffusion:
    'Diffusion attack: steers the whole editing pipeline around the painted region. Stronger but much slower; needs a painted region.',
  noise:
    'A baseline, not a protection: random noise of the same strength. It protects nothing; run it only to compare the real methods against it.',
  learned:
    'Quick protection: a small trained network adds the protective change in one pass, in seconds even for large photos. Somewhat weaker than the encoder attack; trained against TAEF2, so it protects best against that model.',
};

function methodLabel(id: string): string {
  return (
    {
      encoder: 'Encoder attack',
      diffusion: 'Diffusion attack',
      noise: 'Random noise (baseline: protects nothing)',
      learned: 'Quick learned protection (one pass)',
    }[id] ?? id
  );
}

/** What a model id is, in words; the id follows in parentheses so operators still recognise it. */
const MODEL_NAMES: [RegExp, string][] = [
  [/taef2/i, 'TAEF2, a fast stand-in for FLUX.2'],
  [/taef1/i, 'TAEF1, a fast stand-in for FLUX.1'],
  [/taesdxl/i, 'TAESDXL, a fast stand-in for SDXL'],
  [/taesd/i, 'TAESD, a fast stand-in for Stable Diffusion'],
  [/inpaint/i, 'Stable Diffusion inpainting'],
  [/stable-diffusion|sd-?v?1|sd15|vae/i, 'Stable Diffusion’s image encoder'],
];

function modelLabel(id: string): string {
  const name = MODEL_NAMES.find(([re]) => re.test(id))?.[1];
  return name ? `${name} (${id})` : id;
}

function modelHelp(id: string, description?: string): string {
  if (description) return description;
  if (/taef2|taesd|taesdxl|taef1/i.test(id))
    return "A tiny stand-in for a large model's image encoder: fast, and protection transfers to models that share that encoder.";
  if (/stable-diffusion|sd-|vae/i.test(id))
    return "Stable Diffusion's own image encoder: what most photo editors built on Stable Diffusion use. Slower.";
  return 'The image encoder the protection is made against. Protection works best against this model and those that share its encoder.';
}

/** A preset's numbers in words (the server's own description uses L∞ and friends). */
function presetExactly(p: Preset): string {
  const levels = (x: number): string => `${+(x * 255).toFixed(1)}`;
  const steps = p.stop === 'converged' ? `at most ${p.steps} steps` : `${p.steps} steps`;
  const target =
    p.minSsim != null
      ? ` The result keeps a structural similarity (SSIM) of at least ${p.minSsim} to the original.`
      : '';
  if (p.budget === 'texture')
    return (
      `Exactly: colour values move by about ${levels(p.eps)} of 255 levels where the photo has average texture, ` +
      `more in textured areas and less in flat ones, in ${steps}.${target}`
    );
  return (
    `Exactly: no colour value of any pixel moves by more than ${levels(p.eps)} of its 255 levels, ` +
    `reached in ${steps} of up to ${levels(p.stepSize)} levels each.${target}`
  );
}

/** How visible a change of this SSIM to the original is, in words (≥ 0.95 is the usual "near-identical"). */
function visibilityWords(ssim: number): string {
  if (ssim >= 0.95) return 'hard to see';
  if (ssim >= 0.9) return 'faint: a close look at flat areas shows it';
  if (ssim >= 0.8) return 'visible as a fine pattern';
  return 'clearly visible';
}
