/**
 * The models a server offers, by id. Requests name an id, never a path; every process (API and
 * workers) maps ids to its own local spec, so workers on other machines may keep weights
 * elsewhere as long as they use the same ids.
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { DEFAULT_IMMUNIZER, DEFAULT_MODEL } from '../models/defaults.js';
import { UsageError } from '../errors.js';

export interface ModelEntry {
  id: string;
  /** What `immunize protect --model` receives: a repo id, a folder or a .safetensors file. */
  spec: string;
}

const ID = /^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$/;

/** `NAME=SPEC` or `SPEC` (the id is then the repo id, or a local path's file name). */
export function parseModelEntry(s: string): ModelEntry {
  const eq = s.indexOf('=');
  const [id, spec] =
    eq > 0 ? [s.slice(0, eq), s.slice(eq + 1)] : [s.startsWith('/') || s.startsWith('.') ? basename(s) : s, s];
  if (!ID.test(id) || id.includes('..'))
    throw new UsageError(
      `--model: '${id}' is not a usable model id (letters, digits, . _ - /; give NAME=PATH to choose one)`,
    );
  if (spec === '') throw new UsageError(`--model: empty model spec in '${s}'`);
  return { id, spec };
}

export function parseModels(values: string[] | undefined): ModelEntry[] {
  const list = (values ?? []).map(parseModelEntry);
  if (list.length === 0) list.push({ id: DEFAULT_MODEL, spec: DEFAULT_MODEL });
  const seen = new Set<string>();
  for (const m of list) {
    if (seen.has(m.id)) throw new UsageError(`--model: the id '${m.id}' is given twice`);
    seen.add(m.id);
  }
  return list;
}

/**
 * What `GET /v1/config` may say about a model without loading it, read from a local diffusers
 * folder's `unet/config.json`; null when the spec is not such a folder (a hub id, a VAE-only
 * folder or a .safetensors file), i.e. when nothing is known beyond "an image encoder".
 */
export interface PipelineTraits {
  /** A 9-channel UNet: an inpainting pipeline, what `method: diffusion` needs. */
  inpainting: boolean;
  /**
   * A test-sized UNet (widest block under 128 channels; Stable Diffusion's have 320–1280), such as
   * the conformance suite's tiny pipelines: it runs the real pipeline, but its edits are noise.
   */
  tiny: boolean;
}

export function pipelineTraits(spec: string): PipelineTraits | null {
  let cfg: { in_channels?: unknown; block_out_channels?: unknown };
  try {
    cfg = JSON.parse(readFileSync(join(spec, 'unet', 'config.json'), 'utf8')) as typeof cfg;
  } catch {
    return null;
  }
  const widths = Array.isArray(cfg.block_out_channels) ? cfg.block_out_channels.filter(Number.isFinite) : [];
  return {
    inpainting: cfg.in_channels === 9,
    tiny: widths.length > 0 && Math.max(...(widths as number[])) < 128,
  };
}

/** Whether the learned immunizer's weights are installed (weights/immunizer-taef2): method learned runs then. */
export function learnedShipped(): boolean {
  return existsSync(join(DEFAULT_IMMUNIZER, 'config.json'));
}

/** The models as `GET /v1/config` lists them: ids (never paths) and the methods each can run. */
export function describeModels(models: ModelEntry[]): { id: string; default: boolean; methods: string[] }[] {
  return models.map((m, i) => {
    // A hub id is not read here (that would download it); its name is the only hint it has.
    const inpainting = pipelineTraits(m.spec)?.inpainting ?? /inpaint/i.test(m.spec);
    return {
      id: m.id,
      default: i === 0,
      methods: ['encoder', 'noise', ...(inpainting ? ['diffusion'] : []), ...(learnedShipped() ? ['learned'] : [])],
    };
  });
}
