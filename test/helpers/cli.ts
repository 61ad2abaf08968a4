// Runs the `immunize` command (bin/immunize.js) in a child Node process, as a user runs it.
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { join } from 'node:path';
import sharp from 'sharp';
import { repoRoot, sharedPath } from './shared.js';

export const IMMUNIZE_BIN = join(repoRoot, 'bin', 'immunize.js');

/** Quiet, offline (no Hugging Face hub) and with OpenMP threads that do not spin. */
export const OFFLINE_ENV: Record<string, string> = {
  IMMUNIZE_QUIET: '1',
  HF_HUB_OFFLINE: '1',
  OMP_WAIT_POLICY: 'passive',
};

/** A function that runs `immunize ARGS…` with this process's environment plus `env`, and waits for it. */
export function immunizeCli(
  env: Record<string, string> = OFFLINE_ENV,
): (...args: string[]) => SpawnSyncReturns<string> {
  return (...args) =>
    spawnSync(process.execPath, [IMMUNIZE_BIN, ...args], { encoding: 'utf8', env: { ...process.env, ...env } });
}

/** Asserts that `text` (a command's --help) mentions each of the space-separated `words`. */
export function assertMentions(text: string, words: string): void {
  for (const w of words.split(' ')) assert.ok(text.includes(w), w);
}

/** Writes a one-channel PNG mask of `width`×`height` that is white (protect) on its left half. */
export async function leftHalfMask(path: string, width: number, height: number): Promise<string> {
  const m = Buffer.alloc(width * height, 0);
  for (let y = 0; y < height; y++) m.fill(255, y * width, y * width + width / 2);
  await sharp(m, { raw: { width, height, channels: 1 } })
    .png()
    .toFile(path);
  return path;
}

/**
 * The tiny diffusers repositories of the conformance cases (`inpaint`: 9-channel, `img2img`: a
 * plain one) when they and the chelsea photo are in the shared folder, else null.
 */
export function tinyPipelines(): { inpaint: string; img2img: string } | null {
  const inpaint = sharedPath('golden', 'pipeline_inpaint');
  const img2img = sharedPath('golden', 'pipeline_img2img');
  if (inpaint === null || img2img === null || sharedPath('images', 'chelsea.png') === null) return null;
  return { inpaint, img2img };
}
