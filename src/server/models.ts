/**
 * The models a server offers, by id. Requests name an id, never a path; every process (API and
 * workers) maps ids to its own local spec, so workers on other machines may keep weights
 * elsewhere as long as they use the same ids.
 */
import { basename } from 'node:path';
import { DEFAULT_MODEL } from '../models/defaults.js';
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
