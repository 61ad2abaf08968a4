// Checks shared by the assert.throws predicates of the io and torch tests.
import assert from 'node:assert/strict';
import { ImmunizeError } from '../../src/errors.js';

/**
 * Asserts that `e` is an instance of `Class` (failing with what it is otherwise), an ImmunizeError,
 * and has this name and code.
 */
export function assertImmunizeError<T extends ImmunizeError>(
  e: unknown,
  Class: abstract new (...args: never[]) => T,
  name: string,
  code: string,
): asserts e is T {
  assert.ok(
    e instanceof Class,
    `expected a ${name}, got ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`,
  );
  assert.ok(e instanceof ImmunizeError);
  assert.equal(e.name, name);
  assert.equal(e.code, code);
}
