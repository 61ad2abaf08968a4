/** Parsing helpers for the commands' own flags: numbers like `16/255`, integers, choices, with clear errors. */
import { parseArgs, type ParseArgsConfig } from 'node:util';

type OptionsConfig = NonNullable<ParseArgsConfig['options']>;
type WithHelp<O extends OptionsConfig> = O & { help: { type: 'boolean'; short: 'h' } };
import { UsageError } from '../errors.js';
import { parseNumberText } from '../numbers.js';

/** A number or a fraction `a/b` (budgets are usually written as 16/255). */
export function parseNumber(
  flag: string,
  v: string | undefined,
  o: { min?: number; max?: number } = {},
): number | undefined {
  if (v === undefined) return undefined;
  const n = parseNumberText(v);
  if (n === null) throw new UsageError(`--${flag}: expected a number or a fraction like 16/255 but received '${v}'`);
  if (o.min !== undefined && n < o.min) throw new UsageError(`--${flag}: must be at least ${o.min} but received ${v}`);
  if (o.max !== undefined && n > o.max) throw new UsageError(`--${flag}: must be at most ${o.max} but received ${v}`);
  return n;
}

export function parseInteger(
  flag: string,
  v: string | undefined,
  o: { min?: number; max?: number } = {},
): number | undefined {
  if (v !== undefined && parseNumberText(v) === null)
    throw new UsageError(`--${flag}: expected an integer but received '${v}'`);
  const n = parseNumber(flag, v, o);
  if (n !== undefined && !Number.isSafeInteger(n))
    throw new UsageError(`--${flag}: expected an integer but received '${v}'`);
  return n;
}

export function parseChoice<T extends string>(
  flag: string,
  v: string | undefined,
  choices: readonly T[],
): T | undefined {
  if (v === undefined) return undefined;
  if (!(choices as readonly string[]).includes(v))
    throw new UsageError(`--${flag}: expected one of ${choices.join(', ')} but received '${v}'`);
  return v as T;
}

/** node:util parseArgs, with its errors (unknown option, missing value) turned into UsageErrors. */
export function parseCommandArgs<const T extends ParseArgsConfig>(config: T): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (e) {
    const err = e as Error & { code?: string };
    if (typeof err.code === 'string' && err.code.startsWith('ERR_PARSE_ARGS'))
      throw new UsageError(`${err.message.split('\n')[0]} (see --help)`);
    throw e;
  }
}

type Words<S extends string> = S extends `${infer H} ${infer T}` ? H | Words<T> : S extends '' ? never : S;

/** parseArgs options for flags named by space-separated words; see `flags`. */
export type Flags<V extends string, S extends string, L extends string> = {
  [K in Words<V>]: { type: 'string' };
} & { [K in Words<S>]: { type: 'boolean' } } & { [K in Words<L>]: { type: 'string'; multiple: true } };

/**
 * A command's flags by name: `values` take one value each (most do), `switches` take none, `lists`
 * may be repeated. Names are space-separated words, so a command states its flags in a line or two
 * and their meaning once, in its help text.
 */
export function flags<const V extends string = '', const S extends string = '', const L extends string = ''>(names: {
  values?: V;
  switches?: S;
  lists?: L;
}): Flags<V, S, L> {
  const words = (s: string | undefined): string[] => (s ?? '').split(' ').filter((w) => w !== '');
  return Object.fromEntries([
    // -o is short for --output in every command.
    ...words(names.values).map((n) => [n, n === 'output' ? { type: 'string', short: 'o' } : { type: 'string' }]),
    ...words(names.switches).map((n) => [n, { type: 'boolean' }]),
    ...words(names.lists).map((n) => [n, { type: 'string', multiple: true }]),
  ]) as Flags<V, S, L>;
}

/**
 * A command's arguments (strict, see parseCommandArgs) with `-h/--help` added: prints `help` and
 * returns null when it was asked for, so each command says only what is its own.
 */
export function parseCommand<const O extends OptionsConfig>(
  args: string[],
  help: string,
  options: O,
  allowPositionals = true,
): ReturnType<
  typeof parseArgs<{ args: string[]; strict: true; allowPositionals: boolean; options: WithHelp<O> }>
> | null {
  const parsed = parseCommandArgs({
    args,
    strict: true,
    allowPositionals,
    options: { ...options, help: { type: 'boolean', short: 'h' } } as WithHelp<O>,
  });
  if ((parsed.values as { help?: boolean }).help === true) {
    console.log(help);
    return null;
  }
  return parsed;
}

/** The one argument a command takes (`usage` shows how to give it), or a usage error naming the count. */
export function onePositional(positionals: string[], what: string, usage: string): string {
  if (positionals.length !== 1)
    throw new UsageError(`expected one ${what} but received ${positionals.length} (${usage}; see --help)`);
  return positionals[0]!;
}

/** What main.ts runs: `immunize NAME …` calls `run` with the arguments after NAME. */
export interface Command {
  summary: string;
  run(args: string[]): Promise<number>;
}

/**
 * A command from its summary, help text, options (see `flags`) and body. The body gets the parsed
 * arguments; `-h/--help` prints the help and returns 0 without running it.
 */
export function defineCommand<const O extends OptionsConfig>(spec: {
  summary: string;
  help: string;
  options: O;
  positionals?: boolean;
  run(parsed: NonNullable<ReturnType<typeof parseCommand<O>>>): Promise<number>;
}): Command {
  return {
    summary: spec.summary,
    async run(args) {
      const parsed = parseCommand(args, spec.help, spec.options, spec.positionals ?? true);
      return parsed === null ? 0 : await spec.run(parsed);
    },
  };
}
