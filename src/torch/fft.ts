/** Discrete Fourier transforms (torch.fft), as the frequency-domain metrics need them. */
import { checkInt, checkInts, checkOptInt } from './check.js';
import { op } from './ops.js';
import { Tensor, internal } from './tensor.js';

const { wrapResult } = internal;
export type FftNorm = 'backward' | 'forward' | 'ortho';
export interface FftOptions {
  s?: readonly number[];
  dim?: readonly number[];
  norm?: FftNorm;
}
interface Fft1Options {
  n?: number;
  dim?: number;
  norm?: FftNorm;
}

const O = {
  fft: op('aten::fft_fft'),
  ifft: op('aten::fft_ifft'),
  rfft: op('aten::fft_rfft'),
  irfft: op('aten::fft_irfft'),
  fft2: op('aten::fft_fft2'),
  ifft2: op('aten::fft_ifft2'),
  rfft2: op('aten::fft_rfft2'),
  irfft2: op('aten::fft_irfft2'),
  fftn: op('aten::fft_fftn'),
  ifftn: op('aten::fft_ifftn'),
  fftshift: op('aten::fft_fftshift'),
  ifftshift: op('aten::fft_ifftshift'),
};

const nd =
  (f: (...a: unknown[]) => unknown, def: number[] | null) =>
  (x: Tensor, o: FftOptions = {}): Tensor =>
    wrapResult(f(x.handle, o.s ? checkInts(o.s, 's') : null, o.dim ? checkInts(o.dim, 'dim') : def, o.norm ?? null));
const one =
  (f: (...a: unknown[]) => unknown) =>
  (x: Tensor, o: Fft1Options = {}): Tensor =>
    wrapResult(f(x.handle, checkOptInt(o.n, 'n', { min: 1 }), checkInt(o.dim ?? -1, 'dim'), o.norm ?? null));

export const fft = one(O.fft);
export const ifft = one(O.ifft);
export const rfft = one(O.rfft);
export const irfft = one(O.irfft);
export const fft2 = nd(O.fft2, [-2, -1]);
export const ifft2 = nd(O.ifft2, [-2, -1]);
export const rfft2 = nd(O.rfft2, [-2, -1]);
export const irfft2 = nd(O.irfft2, [-2, -1]);
export const fftn = nd(O.fftn, null);
export const ifftn = nd(O.ifftn, null);
export function fftshift(x: Tensor, dim?: readonly number[]): Tensor {
  return wrapResult(O.fftshift(x.handle, dim ? checkInts(dim, 'dim') : null));
}
export function ifftshift(x: Tensor, dim?: readonly number[]): Tensor {
  return wrapResult(O.ifftshift(x.handle, dim ? checkInts(dim, 'dim') : null));
}
