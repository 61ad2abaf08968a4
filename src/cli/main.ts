/**
 * The `immunize` command line: dispatches to one module per command. Modules load on demand, so
 * a command does not pay for the others' imports (the service, the evaluation, sharp pipelines).
 */
import { ImmunizeError } from '../errors.js';
import { toolVersion } from '../version.js';

interface Command {
  summary: string;
  run(args: string[]): Promise<number>;
}

interface LazyCommand {
  summary: string;
  load(): Promise<Command>;
}

// Summaries are repeated here (and checked against the modules by test/cli/cli.test.ts) so that
// `immunize --help` loads nothing.
const COMMANDS: Record<string, LazyCommand> = {
  protect: {
    summary: 'immunize photos against AI editing (PNG labelled as immunized + JSON sidecar)',
    load: async () => (await import('./protect.js')).protect,
  },
  edit: {
    summary: 'edit a photo with Stable Diffusion (img2img or inpainting), as an adversary would',
    load: async () => (await import('./edit.js')).edit,
  },
  evaluate: {
    summary: "run the paper's evaluation protocol on a dataset: results JSON + HTML report",
    load: async () => (await import('./evaluate.js')).evaluateCommand,
  },
  inspect: {
    summary: 'tell whether an image carries the "immunized" label and what it records',
    load: async () => (await import('./inspect.js')).inspect,
  },
  purify: {
    summary: "apply an adversary's purifications (JPEG, blur, resize, …) to images, save PNG",
    load: async () => (await import('./purify.js')).purify,
  },
  info: {
    summary: 'show the tensor engine: libtorch version, threads, CUDA devices',
    load: async () => (await import('./info.js')).info,
  },
  serve: {
    summary: 'run the immunization API (HTTP, job queue; --redis to scale out with workers)',
    load: async () => (await import('./serve.js')).serve,
  },
  worker: {
    summary: 'run immunization jobs from Redis (scale-out for immunize serve --redis)',
    load: async () => (await import('./worker.js')).worker,
  },
};

/** The command modules, loaded (for tests that compare summaries). */
export async function loadCommands(): Promise<Record<string, Command>> {
  return Object.fromEntries(
    await Promise.all(Object.entries(COMMANDS).map(async ([k, c]) => [k, await c.load()] as const)),
  );
}

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
    return await (await cmd.load()).run(rest);
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
