// Runs the `immunize` command (bin/immunize.js) in a child Node process, as a user runs it.
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from './shared.js';

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
