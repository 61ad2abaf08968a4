/**
 * Error types with stable codes, so the CLI and the server can map them to exit codes and
 * HTTP statuses without parsing messages.
 */
export class ImmunizeError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ImmunizeError';
    this.code = code;
  }
}

/** A libtorch error surfaced from native code; `op` names the operator that failed. */
export class TorchError extends ImmunizeError {
  readonly op: string;
  constructor(op: string, message: string, options?: { cause?: unknown }) {
    super('E_TORCH', message, options);
    this.name = 'TorchError';
    this.op = op;
  }
}

/**
 * Bad argument detected in TypeScript before anything reaches native code. `field` names the
 * parameter at fault when there is one (protect's parameters: the CLI shows it as --flag, the API
 * as the request field).
 */
export class ArgumentError extends ImmunizeError {
  readonly field: string | undefined;
  constructor(message: string, options?: { field?: string }) {
    super('E_ARGUMENT', message);
    this.name = 'ArgumentError';
    this.field = options?.field;
  }
}

/** A command line that cannot be run as written (exit code 2). */
export class UsageError extends ImmunizeError {
  constructor(message: string) {
    super('E_USAGE', message);
    this.name = 'UsageError';
  }
}

/** Describes a received value for error messages: `-1 of type number`, `an array of length 3`. */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (Array.isArray(value)) return `an array of length ${value.length}`;
  if (typeof value === 'object') return `an object (${value.constructor?.name ?? 'Object'})`;
  return `${String(value)} of type ${typeof value}`;
}
