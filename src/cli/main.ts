/** The `immunize` command line: dispatches to one module per command. */
import { ImmunizeError } from '../errors.js';
import { edit } from './edit.js';
import { evaluateCommand as evaluate } from './evaluate.js';
import { info } from './info.js';
import { inspect } from './inspect.js';
import { protect } from './protect.js';
import { purify } from './purify.js';
import { serve } from './serve.js';
import { worker } from './worker.js';
import { toolVersion } from './version.js';

interface Command {
  summary: string;
  run(args: string[]): Promise<number>;
}

const COMMANDS: Record<string, Command> = {
  protect,
  edit,
  evaluate,
  inspect,
  purify,
  info,
  serve,
  worker,
};

function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  return [
    'immunize — protect photos against malicious AI editing, and measure how well the protection holds.',
    '',
    'Usage: immunize <command> [options]',
    '',
    'Commands:',
    ...Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
    '',
    'Options:',
    '  -h, --help     show help (also `immunize <command> --help`)',
    '  -v, --version  print the version',
    '',
    'Docs: README.md and docs/ in the repository.',
  ].join('\n');
}

/** Runs the CLI; returns the process exit code (0 ok, 1 error, 2 usage). */
export async function run(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined || first === '-h' || first === '--help' || first === 'help') {
    console.log(usage());
    return first === undefined ? 2 : 0;
  }
  if (first === '-v' || first === '--version') {
    console.log(toolVersion());
    return 0;
  }
  const cmd = COMMANDS[first];
  if (cmd === undefined) {
    console.error(`immunize: unknown command '${first}'.\n\n${usage()}`);
    return 2;
  }
  try {
    return await cmd.run(rest);
  } catch (e) {
    // One line, never a stack trace (IMMUNIZE_DEBUG=1 adds it, for bug reports).
    if (process.env['IMMUNIZE_DEBUG'] === '1') console.error((e as Error).stack ?? e);
    if (e instanceof ImmunizeError) {
      console.error(`immunize ${first}: ${firstLine(e.message)} [${e.code}]`);
      return e.code === 'E_ARGUMENT' || e.code === 'E_USAGE' ? 2 : 1;
    }
    const err = e as NodeJS.ErrnoException;
    console.error(`immunize ${first}: unexpected error: ${firstLine(err.message ?? String(e))}${err.code ? ` [${err.code}]` : ''} (IMMUNIZE_DEBUG=1 shows the stack)`);
    return 1;
  }
}

function firstLine(s: string): string {
  return s.split('\n')[0]!.trim();
}
