// The refusal a protect request meets, for the tests of the protect library's parameters.
import assert from 'node:assert/strict';
import { ParameterError, resolveProtectParameters } from '../../src/protect/index.js';

/** The ParameterError `resolveProtectParameters` throws for `request`; fails the test if it accepts it. */
export function refusal(
  request: Record<string, unknown>,
  ctx: Parameters<typeof resolveProtectParameters>[1] = {},
): ParameterError {
  try {
    resolveProtectParameters(request, ctx);
  } catch (e) {
    assert.ok(e instanceof ParameterError, `a ParameterError, not ${String(e)}`);
    return e;
  }
  assert.fail(`accepted ${JSON.stringify(request)}`);
}
