/**
 * Module: a tree of parameters whose dotted paths are the checkpoint's key names
 * (`encoder.down_blocks.0.resnets.0.conv1.weight`), so diffusers/transformers checkpoints load
 * without a mapping table. Parameters are declared with their shapes and filled by
 * loadStateDict(); nothing is allocated before weights arrive.
 */
import { ImmunizeError } from '../errors.js';
import { zeros, type DType, type Device, type Tensor } from '../torch/index.js';

export class WeightsError extends ImmunizeError {
  readonly missing: string[];
  readonly unexpected: string[];
  readonly mismatched: { key: string; expected: number[]; found: number[] }[];
  constructor(
    code: string,
    message: string,
    details: {
      missing?: string[];
      unexpected?: string[];
      mismatched?: { key: string; expected: number[]; found: number[] }[];
    } = {},
  ) {
    super(code, message);
    this.name = 'WeightsError';
    this.missing = details.missing ?? [];
    this.unexpected = details.unexpected ?? [];
    this.mismatched = details.mismatched ?? [];
  }
}

interface Slot {
  shape: number[];
  tensor: Tensor | null;
  /** Buffers are state that is not trained (e.g. running statistics). */
  buffer: boolean;
}

/** Where weights come from: a Map, or a lookup that reads one tensor on demand (safetensors). */
export interface WeightSource {
  keys(): Iterable<string>;
  shape(key: string): number[];
  /** Returns a new tensor the caller owns. */
  read(key: string): Tensor;
}

export function mapSource(weights: ReadonlyMap<string, Tensor>): WeightSource {
  return {
    keys: () => weights.keys(),
    shape: (k) => weights.get(k)!.shape,
    read: (k) => weights.get(k)!.alias(),
  };
}

export interface LoadStateDictOptions {
  /** Missing or unexpected keys are errors (default true); shape mismatches always are. */
  strict?: boolean;
  /** Compute dtype: floating-point weights are converted on load (fp16 on disk -> float32). */
  dtype?: DType;
  device?: Device;
  /** Renames a checkpoint key to this module's key (e.g. old diffusers attention names), or null to drop it. */
  rename?: (key: string) => string | null;
  /** Label for messages (file name). */
  label?: string;
}

const FLOAT = new Set<DType>(['float16', 'bfloat16', 'float32', 'float64']);

export abstract class Module {
  readonly #slots = new Map<string, Slot>();
  readonly #children = new Map<string, Module>();
  #training = false;

  /** Declares a parameter; returns an accessor used by forward(). */
  protected param(name: string, shape: readonly number[]): ParamRef {
    this.#slots.set(name, { shape: [...shape], tensor: null, buffer: false });
    return new ParamRef(this, name);
  }

  protected buffer(name: string, shape: readonly number[]): ParamRef {
    this.#slots.set(name, { shape: [...shape], tensor: null, buffer: true });
    return new ParamRef(this, name);
  }

  /** Registers a child module under `name` (its parameters appear as `name.*`). */
  protected child<M extends Module>(name: string, m: M): M {
    this.#children.set(name, m);
    return m;
  }

  /** @internal */
  slot(name: string): Slot {
    const s = this.#slots.get(name);
    if (s === undefined) throw new ImmunizeError('E_INTERNAL', `no parameter '${name}' in ${this.constructor.name}`);
    return s;
  }

  /** Every parameter and buffer as [dotted key, slot], in registration order (PyTorch's). */
  *#walk(prefix = ''): Generator<[string, Slot]> {
    for (const [n, s] of this.#slots) yield [prefix + n, s];
    for (const [n, c] of this.#children) yield* c.#walk(`${prefix}${n}.`);
  }

  /** Keys and shapes of the state dict, without needing weights. */
  stateShapes(): Map<string, number[]> {
    return new Map([...this.#walk()].map(([k, s]) => [k, [...s.shape]]));
  }

  /** Loaded parameters and buffers (handles owned by the module: do not dispose). */
  stateDict(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const [k, s] of this.#walk()) if (s.tensor !== null) out.set(k, s.tensor);
    return out;
  }

  parameters(): Tensor[] {
    return [...this.#walk()].filter(([, s]) => !s.buffer && s.tensor !== null).map(([, s]) => s.tensor!);
  }

  parameterCount(): number {
    let n = 0;
    for (const [, s] of this.#walk()) if (!s.buffer) n += s.shape.reduce((a, b) => a * b, 1);
    return n;
  }

  get training(): boolean {
    return this.#training;
  }

  /** Loads weights by key; reports every missing/unexpected key and shape mismatch by name. */
  loadStateDict(source: WeightSource | ReadonlyMap<string, Tensor>, o: LoadStateDictOptions = {}): this {
    const src = source instanceof Map ? mapSource(source) : (source as WeightSource);
    const strict = o.strict ?? true;
    const label = o.label ? `${o.label}: ` : '';
    const slots = new Map(this.#walk());
    const found = new Map<string, string>(); // module key -> source key
    const unexpected: string[] = [];
    for (const key of src.keys()) {
      const mine = o.rename ? o.rename(key) : key;
      if (mine === null) continue;
      if (slots.has(mine)) found.set(mine, key);
      else unexpected.push(key);
    }
    const missing = [...slots.keys()].filter((k) => !found.has(k));
    const mismatched: { key: string; expected: number[]; found: number[] }[] = [];
    for (const [mine, key] of found) {
      const want = slots.get(mine)!.shape;
      const got = src.shape(key);
      if (want.length !== got.length || want.some((d, i) => d !== got[i]))
        mismatched.push({ key, expected: want, found: got });
    }
    if (mismatched.length > 0) {
      const lines = mismatched
        .slice(0, 10)
        .map((m) => `  ${m.key}: expected [${m.expected.join(', ')}], found [${m.found.join(', ')}]`);
      throw new WeightsError(
        'E_WEIGHTS_SHAPE',
        `${label}${mismatched.length} weight(s) have the wrong shape:\n${lines.join('\n')}${mismatched.length > 10 ? '\n  …' : ''}`,
        { mismatched },
      );
    }
    if (strict && (missing.length > 0 || unexpected.length > 0)) {
      const parts: string[] = [];
      if (missing.length)
        parts.push(
          `missing ${missing.length} key(s): ${missing.slice(0, 10).join(', ')}${missing.length > 10 ? ', …' : ''}`,
        );
      if (unexpected.length)
        parts.push(
          `unexpected ${unexpected.length} key(s): ${unexpected.slice(0, 10).join(', ')}${unexpected.length > 10 ? ', …' : ''}`,
        );
      throw new WeightsError(
        missing.length ? 'E_WEIGHTS_MISSING' : 'E_WEIGHTS_UNEXPECTED',
        `${label}weights do not match ${this.constructor.name}: ${parts.join('; ')}`,
        { missing, unexpected },
      );
    }
    for (const [mine, key] of found) {
      const slot = slots.get(mine)!;
      let t = src.read(key);
      if (
        (o.dtype !== undefined && FLOAT.has(t.dtype) && t.dtype !== o.dtype) ||
        (o.device !== undefined && t.device !== o.device)
      ) {
        const u = t.to({
          dtype: o.dtype !== undefined && FLOAT.has(t.dtype) ? o.dtype : t.dtype,
          device: o.device ?? t.device,
        });
        t.dispose();
        t = u;
      }
      slot.tensor?.dispose();
      slot.tensor = t;
    }
    return this;
  }

  /** Fills every parameter with zeros (tests and shape checks without weights). */
  initZeros(dtype: DType = 'float32'): this {
    for (const [, s] of this.#walk()) {
      s.tensor?.dispose();
      s.tensor = zeros(s.shape, { dtype });
    }
    return this;
  }

  /** Sets requiresGrad on every parameter (off by default: attacks differentiate inputs only). */
  requiresGrad_(on = true): this {
    for (const p of this.parameters()) p.requiresGrad_(on);
    return this;
  }

  /** Frees every loaded tensor. */
  dispose(): void {
    for (const [, s] of this.#walk()) {
      s.tensor?.dispose();
      s.tensor = null;
    }
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** Accessor for a declared parameter: `this.weight.t` is the loaded tensor. */
export class ParamRef {
  constructor(
    private readonly owner: Module,
    private readonly name: string,
  ) {}
  get t(): Tensor {
    const s = this.owner.slot(this.name);
    if (s.tensor === null)
      throw new WeightsError(
        'E_WEIGHTS_MISSING',
        `parameter '${this.name}' of ${this.owner.constructor.name} is not loaded (call loadStateDict first)`,
      );
    return s.tensor;
  }
  get loaded(): boolean {
    return this.owner.slot(this.name).tensor !== null;
  }
}
