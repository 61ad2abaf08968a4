/**
 * ATen operators by schema. `op('aten::conv2d')` returns a caller that resolves the operator
 * once, then passes its arguments straight to the dispatcher (see docs/engine.md). Arguments
 * left `undefined` take the schema's defaults, so wrappers name only what they set.
 */
import { TorchError } from '../errors.js';
import { native } from './native.js';

export type OpCaller = (...args: unknown[]) => unknown;

/** Turns a native error (plain Error with `op`) into a TorchError keeping libtorch's message. */
export function torchError(e: unknown): unknown {
  if (e instanceof Error && (e as Error & { code?: string }).code === 'E_TORCH' && !(e instanceof TorchError)) {
    const op = (e as Error & { op?: string }).op ?? 'libtorch';
    const err = new TorchError(op, e.message);
    return err;
  }
  return e;
}

const declared: [string, string][] = [];

/** Every operator a wrapper declared (a test checks this libtorch has them all). */
export function declaredOps(): readonly [string, string][] {
  return declared;
}

export function op(name: string, overload = ''): OpCaller {
  declared.push([name, overload]);
  let id = -1;
  return (...args: unknown[]): unknown => {
    try {
      if (id < 0) id = native.op(name, overload);
      return native.call(id, ...args);
    } catch (e) {
      throw torchError(e);
    }
  };
}

/** How many distinct operators native code has looked up: repeated lookups do not add to it. */
export function registeredOpCount(): number {
  return native.opCount();
}

/** True when this libtorch has the operator (e.g. scaled_dot_product_attention is 2.x only). */
export function hasOp(name: string, overload = ''): boolean {
  try {
    native.op(name, overload);
    return true;
  } catch {
    return false;
  }
}

/** The schema string of an operator, for docs and debugging. */
export function schemaOf(name: string, overload = ''): string {
  return native.schema(native.op(name, overload));
}
