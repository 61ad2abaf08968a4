/**
 * Memory scopes: `scope(fn)` disposes every tensor created inside `fn` except those it returns
 * (the same contract as tf.tidy). Tensors that escape move to the enclosing scope.
 */
import { ImmunizeError } from '../errors.js';

export interface Disposable_ {
  dispose(): void;
}

const stack: Set<Disposable_>[] = [];

/** Called by every Tensor constructor. */
export function track(t: Disposable_): void {
  const top = stack[stack.length - 1];
  if (top !== undefined) top.add(t);
}

/** Exempts a tensor from the current scope so it outlives it. */
export function keep<T extends Disposable_>(t: T): T {
  for (let i = stack.length - 1; i >= 0; i--) stack[i]!.delete(t);
  return t;
}

function collect(value: unknown, out: Set<unknown>, depth = 0): void {
  if (value === null || typeof value !== 'object' || depth > 8) return;
  if (isTensorLike(value)) {
    out.add(value);
    return;
  }
  if (Array.isArray(value)) {
    for (const v of value) collect(v, out, depth + 1);
  } else if (value instanceof Map) {
    for (const v of value.values()) collect(v, out, depth + 1);
  } else if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value)) collect(v, out, depth + 1);
  }
}

let isTensorLike: (v: object) => boolean = () => false;
/** tensor.ts registers its class here (avoids an import cycle). */
export function registerTensorClass(test: (v: object) => boolean): void {
  isTensorLike = test;
}

export function scope<T>(fn: () => T): T {
  const mine = new Set<Disposable_>();
  stack.push(mine);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    stack.pop();
    for (const t of mine) t.dispose();
    throw e;
  }
  stack.pop();
  if (result !== null && typeof result === 'object' && typeof (result as { then?: unknown }).then === 'function') {
    for (const t of mine) t.dispose();
    throw new ImmunizeError(
      'E_ASYNC_SCOPE',
      'scope(fn) got a Promise: scopes track tensors synchronously; await outside the scope and create tensors inside it',
    );
  }
  const kept = new Set<unknown>();
  collect(result, kept);
  const parent = stack[stack.length - 1];
  for (const t of mine) {
    if (kept.has(t)) parent?.add(t);
    else t.dispose();
  }
  return result;
}

/** Depth of nested scopes (for tests and debugging). */
export function scopeDepth(): number {
  return stack.length;
}
