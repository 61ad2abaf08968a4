/**
 * The page's plain words for what the server names by id: presets, methods and models. Model ids
 * such as `taef2-hf` are an operator's names; people see what the model is.
 */
import type { Preset } from './api.js';

export { PRESET_HELP, METHOD_HELP, methodLabel, modelHelp, modelLabel, presetExactly };

const PRESET_HELP: Record<string, string> = {
  default:
    "The recommended protection: the published attack's strength with a faster optimiser (momentum), 200 steps. Slow on a CPU for large photos.",
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
};

function methodLabel(id: string): string {
  return (
    { encoder: 'Encoder attack', diffusion: 'Diffusion attack', noise: 'Random noise (baseline: protects nothing)' }[
      id
    ] ?? id
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
  return (
    `Exactly: no colour value of any pixel moves by more than ${levels(p.eps)} of its 255 levels, ` +
    `reached in ${p.steps} steps of up to ${levels(p.stepSize)} levels each.`
  );
}
