/**
 * Randomness is libtorch's own: after manualSeed(s), randn/rand/randint give bit-identical values
 * to PyTorch's CPU generator (golden case `rng`). CUDA generators give other numbers for the same
 * seed, as in PyTorch; results say which generator they used.
 */
import { ArgumentError, describe } from '../errors.js';
import { isInt } from './check.js';
import { checkDevice, type Device } from './device.js';
import { native, type GeneratorHandle } from './native.js';
import { torchError } from './ops.js';
import { Tensor } from './tensor.js';

function checkSeed(seed: unknown): number | bigint {
  if (typeof seed === 'bigint') return seed;
  if (!isInt(seed)) throw new ArgumentError(`Expected an integer or a bigint for seed but received ${describe(seed)}`);
  return seed;
}

/** Seeds the default CPU generator and every CUDA generator, as torch.manual_seed. */
export function manualSeed(seed: number | bigint): void {
  native.manualSeed(checkSeed(seed));
}

/** An explicit random stream, as torch.Generator. */
export class Generator {
  readonly handle: GeneratorHandle;
  readonly device: Device;

  constructor({ seed, device = 'cpu' }: { seed?: number | bigint; device?: Device } = {}) {
    this.device = device === 'cpu' ? 'cpu' : checkDevice(device);
    this.handle = native.newGenerator(seed === undefined ? undefined : checkSeed(seed), this.device);
  }

  /** The generator torch uses when none is given. */
  static default(): Generator {
    const g = Object.create(Generator.prototype) as { handle: GeneratorHandle; device: Device };
    g.handle = native.defaultGenerator();
    g.device = 'cpu';
    return g as Generator;
  }

  manualSeed(seed: number | bigint): this {
    native.generatorManualSeed(this.handle, checkSeed(seed));
    return this;
  }

  initialSeed(): bigint {
    return native.generatorSeed(this.handle);
  }

  /** The full state as a uint8 tensor (save it to resume a random stream exactly). */
  getState(): Tensor {
    return new Tensor(native.generatorGetState(this.handle));
  }

  setState(state: Tensor): void {
    try {
      native.generatorSetState(this.handle, state.handle);
    } catch (e) {
      throw torchError(e);
    }
  }
}
