#!/usr/bin/env node
// Entry point of the `immunize` command; the program itself is compiled TypeScript in dist/.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const main = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(main))) {
  console.error(
    'immunize: not built yet. Run `npm install && npm run build` in ' + fileURLToPath(new URL('..', import.meta.url)),
  );
  process.exit(1);
}
const { run } = await import(main.href);
process.exitCode = await run(process.argv.slice(2));
