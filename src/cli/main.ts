/**
 * The `immunize` command line: dispatches to one module per command. Modules load on demand, so
 * a command does not pay for the others' imports (the service, the evaluation, sharp pipelines).
 */
import type { Command } from './args.js';
import { ImmunizeError } from '../errors.js';
import { toolVersion } from '../version.js';

// Summaries are repeated here (and checked against the modules by test/cli/cli.test.ts) so that
// `immunize --help` loads nothing. Command NAME is the module ./NAME.js, which exports `command`.
const SUMMARIES: Record<string, string> = {
  protect: 'immunize photos against AI editing (PNG labelled as immunized + JSON sidecar)',
  edit: 'edit a photo with Stable Diffusion (img2img or inpainting), as an adversary would',
  evaluate: "run the paper's evaluation protocol on a dataset: results JSON + HTML report",
  inspect: 'tell whether an image carries the "immunized" label and what it records',
  purify: "apply an adversary's purifications (JPEG, blur, resize, …) to images, save PNG",
  info: 'show the tensor engine: libtorch version, threads, CUDA devices',
  serve: 'run the immunization API (HTTP, job queue; --redis to scale out with workers)',
  worker: 'run immunization jobs from Redis (scale-out for immunize serve --redis)',
};

/** The command modules, loaded (for tests that compare summaries). */
export async function loadCommands(): Promise<Record<string, Command>> {
  return Object.fromEntries(await Promise.all(Object.keys(SUMMARIES).map(async (k) => [k, await load(k)] as const)));
}

async function load(name: string): Promise<Command> {
  return ((await import(`./${name}.js`)) as { command: Command }).command;
}

function usage(): string {
  const width = Math.max(...Object.keys(SUMMARIES).map((c) => c.length));
  return [
    'immunize — protect photos against malicious AI editing, and measure how well the protection holds.',
    '',
    'Usage: immunize <command> [options]',
    '',
    'Commands:',
    ...Object.entries(SUMMARIES).map(([name, summary]) => `  ${name.padEnd(width)}  ${summary}`),
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
  if (!Object.hasOwn(SUMMARIES, first)) {
    console.error(`immunize: unknown command '${first}'.\n\n${usage()}`);
    return 2;
  }
  try {
    return await (await load(first)).run(rest);
  } catch (e) {
    // One line, never a stack trace (IMMUNIZE_DEBUG=1 adds it, for bug reports).
    if (process.env['IMMUNIZE_DEBUG'] === '1') console.error((e as Error).stack ?? e);
    if (e instanceof ImmunizeError) {
      console.error(`immunize ${first}: ${firstLine(e.message)} [${e.code}]`);
      return e.code === 'E_ARGUMENT' || e.code === 'E_USAGE' ? 2 : 1;
    }
    const err = e as NodeJS.ErrnoException;
    console.error(
      `immunize ${first}: unexpected error: ${firstLine(err.message ?? String(e))}${err.code ? ` [${err.code}]` : ''} (IMMUNIZE_DEBUG=1 shows the stack)`,
    );
    return 1;
  }
}

function firstLine(s: string): string {
  return s.split('\n')[0]!.trim();
}
