// The commands' flag tables: `flags` turns names into node:util parseArgs options, and
// `parseCommand` refuses what a table does not allow, with a usage error naming the flag.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { flags, parseCommand } from '../../src/cli/args.js';
import { UsageError } from '../../src/errors.js';

const table = flags({ values: 'port max-steps output', switches: 'json', lists: 'model' });

test('flags: values take one value, switches none, lists repeat; -o is --output', () => {
  assert.deepEqual(table, {
    port: { type: 'string' },
    'max-steps': { type: 'string' },
    output: { type: 'string', short: 'o' },
    json: { type: 'boolean' },
    model: { type: 'string', multiple: true },
  });
  assert.deepEqual(flags({}), {});
  const parsed = parseCommand(
    ['--port', '8080', '--max-steps', '3', '-o', 'out.png', '--json', '--model', 'a', '--model', 'b', 'photo.png'],
    'help',
    table,
  );
  assert.deepEqual(
    { ...parsed?.values },
    { port: '8080', 'max-steps': '3', output: 'out.png', json: true, model: ['a', 'b'] },
  );
  assert.deepEqual(parsed?.positionals, ['photo.png']);
});

test('flags: an unknown flag, a value flag without its value and a value given to a switch are usage errors', () => {
  for (const [args, says] of [
    [['--frobnicate'], /--frobnicate/],
    [['--port'], /--port/],
    [['--json=yes'], /--json/],
  ] as const) {
    assert.throws(
      () => parseCommand([...args], 'help', table),
      (e: unknown) => e instanceof UsageError && says.test(e.message),
      args.join(' '),
    );
  }
});
