/** Devices: 'cpu', 'cuda' and 'cuda:N', validated against what this libtorch build has. */
import { ArgumentError, ImmunizeError, describe } from '../errors.js';
import { native } from './native.js';

export type Device = 'cpu' | 'cuda' | `cuda:${number}`;

export function cudaDeviceCount(): number {
  return native.cudaDeviceCount();
}

export function isCudaAvailable(): boolean {
  return cudaDeviceCount() > 0;
}

/** Checks a device string and that this libtorch can use it; returns it normalised. */
export function checkDevice(device: unknown): Device {
  if (device === 'cpu') return 'cpu';
  if (typeof device !== 'string' || !/^cuda(:\d+)?$/.test(device)) {
    throw new ArgumentError(`Expected device to be 'cpu', 'cuda' or 'cuda:N' but received ${describe(device)}`);
  }
  const count = cudaDeviceCount();
  if (count === 0) {
    throw new ImmunizeError(
      'E_NO_CUDA',
      `device '${device}' was requested but this libtorch build has no CUDA support ` +
        `(libtorch ${native.info().torchVersion}). Build against a CUDA libtorch (set LIBTORCH, see docs/engine.md) or use --device cpu.`,
    );
  }
  const index = device.includes(':') ? Number(device.slice(5)) : 0;
  if (index >= count)
    throw new ArgumentError(`device '${device}' does not exist: this machine has ${count} CUDA device(s)`);
  return device as Device;
}
