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
