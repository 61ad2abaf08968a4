/**
 * Command-line inputs: files, folders and glob patterns → a sorted, de-duplicated list of image
 * files. Shells usually expand globs themselves; a quoted pattern ('photos/*.jpg', 'a/**\/*.png')
 * is expanded here, with the shell's rules (`*` and `?` do not cross `/` nor match a leading dot;
 * `**` spans folders; `[abc]` and `{a,b}` as usual). Folders contribute their image files (not
 * recursively); other files there are skipped with a note, and so are earlier outputs of
 * `immunize protect` (`*.immunized.*`), so that re-running on a folder does not protect the
 * protected copies.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { UsageError } from '../errors.js';

/** Extensions sharp decodes that hold photos. */
export const IMAGE_EXTENSIONS: readonly string[] = [
  '.png',
  '.jpg',
  '.jpeg',
  '.jpe',
  '.jfif',
  '.webp',
  '.tif',
  '.tiff',
  '.avif',
  '.heic',
  '.heif',
  '.gif',
];

export function isImageName(name: string): boolean {
  return IMAGE_EXTENSIONS.includes(extname(name).toLowerCase());
}

/** Outputs of `immunize protect` (image and sidecar): NAME.immunized.EXT */
export function isImmunizeOutput(name: string): boolean {
  return /\.immunized\.[^.]+$/i.test(name);
}

export interface ExpandedInputs {
  files: string[];
  /** One line per folder or pattern where something was skipped. */
  notes: string[];
}

const MAGIC = /[*?[{]/;

export function hasGlobMagic(s: string): boolean {
  return MAGIC.test(s);
}

/** One path segment of a glob → a RegExp (anchored). */
export function segmentRegExp(seg: string): RegExp {
  let re = '';
  let i = 0;
  let braces = 0;
  while (i < seg.length) {
    const c = seg[i]!;
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = seg.indexOf(']', i + 2);
      if (end === -1) re += '\\[';
      else {
        let body = seg.slice(i + 1, end);
        if (body.startsWith('!')) body = '^' + body.slice(1);
        re += `[${body.replace(/\\/g, '\\\\')}]`;
        i = end;
      }
    } else if (c === '{') {
      re += '(?:';
      braces++;
    } else if (c === '}' && braces > 0) {
      re += ')';
      braces--;
    } else if (c === ',' && braces > 0) re += '|';
    else re += c.replace(/[.+^$()|\\\]}]/g, '\\$&');
    i++;
  }
  if (braces > 0) throw new UsageError(`glob '${seg}': unbalanced '{'`);
  return new RegExp(`^${re}$`);
}

/** Expands one glob pattern to existing files (sorted). */
export function expandGlob(pattern: string): string[] {
  const parts = pattern.split(/[\\/]+/);
  const absolute = pattern.startsWith('/');
  let i = 0;
  const fixed: string[] = [];
  while (i < parts.length - 1 && !MAGIC.test(parts[i]!)) fixed.push(parts[i++]!);
  const base = absolute ? '/' + fixed.filter(Boolean).join('/') : fixed.join('/') || '.';
  const rest = parts.slice(i);
  const out = new Set<string>();
  const walk = (dir: string, k: number): void => {
    if (k === rest.length) return;
    const seg = rest[k]!;
    let entries: { name: string; dir: boolean }[];
    try {
      entries = readdirSync(dir, { withFileTypes: true }).map((e) => ({
        name: e.name,
        dir: e.isDirectory() || (e.isSymbolicLink() && isDir(join(dir, e.name))),
      }));
    } catch {
      return;
    }
    if (seg === '**') {
      walk(dir, k + 1); // zero folders
      for (const e of entries) if (e.dir && !e.name.startsWith('.')) walk(join(dir, e.name), k);
      return;
    }
    const re = segmentRegExp(seg);
    const last = k === rest.length - 1;
    for (const e of entries) {
      if (e.name.startsWith('.') && !seg.startsWith('.')) continue;
      if (!re.test(e.name)) continue;
      const p = join(dir, e.name);
      if (last) {
        if (!e.dir) out.add(p);
      } else if (e.dir) walk(p, k + 1);
    }
  };
  walk(base, 0);
  return [...out].sort();
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function summarize(names: string[]): string {
  return names.length <= 3 ? names.join(', ') : `${names.slice(0, 3).join(', ')}, … ${names.length - 3} more`;
}

/**
 * Files, folders and patterns → image files. A path that does not exist and is not a pattern is a
 * UsageError; so is a pattern or folder that yields no image.
 */
export function expandInputs(args: readonly string[]): ExpandedInputs {
  const files: string[] = [];
  const notes: string[] = [];
  const seen = new Set<string>();
  const add = (p: string): void => {
    const key = resolve(p);
    if (!seen.has(key)) {
      seen.add(key);
      files.push(p);
    }
  };
  const filterListed = (where: string, candidates: string[]): number => {
    const images: string[] = [];
    const others: string[] = [];
    const outputs: string[] = [];
    for (const p of candidates) {
      const name = p.split(/[\\/]/).pop()!;
      if (isImmunizeOutput(name)) outputs.push(name);
      else if (isImageName(name)) images.push(p);
      else others.push(name);
    }
    const skipped: string[] = [];
    if (others.length > 0)
      skipped.push(`${others.length} non-image file${others.length === 1 ? '' : 's'} (${summarize(others)})`);
    if (outputs.length > 0)
      skipped.push(`${outputs.length} earlier immunize output${outputs.length === 1 ? '' : 's'} (*.immunized.*)`);
    if (skipped.length > 0) notes.push(`${where}: skipped ${skipped.join(' and ')}`);
    images.forEach(add);
    return images.length;
  };
  for (const arg of args) {
    if (existsSync(arg)) {
      if (isDir(arg)) {
        const listed = readdirSync(arg, { withFileTypes: true })
          .filter((e) => !e.name.startsWith('.') && (e.isFile() || (e.isSymbolicLink() && !isDir(join(arg, e.name)))))
          .map((e) => join(arg, e.name))
          .sort();
        if (filterListed(arg, listed) === 0)
          throw new UsageError(`${arg}: the folder has no images (looked for ${IMAGE_EXTENSIONS.join(' ')})`);
      } else add(arg);
      continue;
    }
    if (!hasGlobMagic(arg)) throw new UsageError(`input image not found: ${arg}`);
    const matched = expandGlob(arg);
    if (matched.length === 0) throw new UsageError(`no files match '${arg}'`);
    if (filterListed(`'${arg}'`, matched) === 0) throw new UsageError(`'${arg}' matches no images`);
  }
  return { files, notes };
}

const OUTPUT_EXT = /\.(png|jpe?g|webp|tiff?|gif|avif|bmp)$/i;

/** Where `immunize protect` writes a photo: NAME.immunized.png next to it, in `output` (a folder), or `output` itself (one photo). */
function outputPathFor(input: string, output: string | undefined, single: boolean): string {
  const name = `${basename(input, extname(input))}.immunized.png`;
  if (output === undefined) return join(dirname(input), name);
  const isDirLike = output.endsWith('/') || (existsSync(output) && statSync(output).isDirectory());
  if (single && !isDirLike && OUTPUT_EXT.test(output)) return output;
  return join(output, name);
}

/** Each input with its output path; refuses a file name for several inputs, overwriting an input, and two inputs on one output. */
export function planOutputs(
  files: readonly string[],
  output: string | undefined,
  single: boolean,
): { input: string; output: string }[] {
  if (
    output !== undefined &&
    !single &&
    OUTPUT_EXT.test(output) &&
    !(existsSync(output) && statSync(output).isDirectory())
  ) {
    throw new UsageError(`--output: with several inputs give a folder, not a file name (${output})`);
  }
  const plan = files.map((input) => ({ input, output: resolve(outputPathFor(input, output, single)) }));
  const inputs = new Set(plan.map((j) => resolve(j.input)));
  const byOutput = new Map<string, string>();
  for (const j of plan) {
    if (inputs.has(j.output))
      throw new UsageError(`refusing to overwrite an input photo: ${j.output} (choose another --output)`);
    const other = byOutput.get(j.output);
    if (other !== undefined)
      throw new UsageError(
        `${other} and ${j.input} would both be written to ${j.output}; protect them into different folders`,
      );
    byOutput.set(j.output, j.input);
  }
  return plan;
}
