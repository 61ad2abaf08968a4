/**
 * Error messages that leave the server name no server paths (docs/api.md: "the message never
 * contains paths"). A failed job's message comes from deep inside (a loader naming the folder it
 * could not read, sharp naming a file), so the runner scrubs it before it reaches the record:
 * files of the job by their own names, the storage root as `<storage>`, a model's path as
 * `<model ID>`, a Hugging Face cache path as its repo id, and any other absolute path as `<path>`.
 */
import { homedir } from 'node:os';
import { resolve } from 'node:path';
import type { ModelEntry } from './models.js';

export { scrubMessage };
export type { ScrubContext };

interface ScrubContext {
  /** The storage root and the job's folder in it. */
  storageRoot: string;
  jobDir: string;
  /** Every model this process may load (protection and editing), mapped to their ids. */
  models: readonly ModelEntry[];
}

/** Where the Hugging Face cache puts a repo: …/models--owner--name/snapshots/<rev>/… */
const HUB_CACHE =
  /(?:^|(?<=[\s'"`(=:,]))\/[^\s'"`()]*?\/models--([A-Za-z0-9._-]+?)--([A-Za-z0-9._-]+)(?:\/[^\s'"`(),;:]*)?/g;
/** An absolute path: a slash-led token of at least two segments, not part of a word or a fraction (16/255). */
const ABSOLUTE = /(?:^|(?<=[\s'"`(=:,[]))(?:~|\/(?!\/))[^\s'"`()[\]/]*\/[^\s'"`(),;:[\]]*/g;

function scrubMessage(message: string, c: ScrubContext): string {
  let m = message.split(`${c.jobDir}/`).join('').split(c.jobDir).join('<job>');
  // Longest first, so a model folder inside another one is replaced whole.
  const pairs: [string, string][] = [];
  for (const e of c.models) {
    if (e.spec.startsWith('/') || e.spec.startsWith('.') || e.spec.startsWith('~')) {
      pairs.push([resolve(e.spec), `<model ${e.id}>`]);
      if (e.spec !== resolve(e.spec)) pairs.push([e.spec, `<model ${e.id}>`]);
    }
  }
  pairs.sort((a, b) => b[0].length - a[0].length);
  for (const [from, to] of pairs) m = m.split(from).join(to);
  m = m.split(c.storageRoot).join('<storage>');
  m = m.replace(HUB_CACHE, (_s, owner: string, name: string) => `${owner}/${name}`);
  const home = homedir();
  if (home.length > 1) m = m.split(home).join('~');
  return m.replace(ABSOLUTE, '<path>');
}
