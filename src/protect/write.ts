/**
 * Writing a protect result: the image (PNG with its XMP label), its sidecar and, when measured,
 * the check — all or nothing (io/atomic.ts), the sidecar last since its presence marks the photo
 * done for resumable batches.
 */
import { writeAllOrNothing } from '../io/atomic.js';
import type { ProtectionCheck } from '../robustness/check.js';
import type { ProtectResult } from './protect-image.js';
import type { ProtectSidecar } from './sidecar.js';

/** photo.immunized.png → photo.immunized.json */
export function sidecarPathFor(output: string): string {
  return output.replace(/\.[^./\\]+$/, '') + '.json';
}

/** photo.immunized.png → photo.immunized.check.json */
export function checkPathFor(output: string): string {
  return output.replace(/\.[^./\\]+$/, '') + '.check.json';
}

const json = (v: unknown): string => JSON.stringify(v, null, 2) + '\n';

/** Writes `result` to `output` (+ sidecar, + check); returns the sidecar as written. */
export function writeProtected(
  result: ProtectResult,
  output: string,
  paths: { sidecar?: string; check?: string } = {},
): ProtectSidecar {
  const sidecarPath = paths.sidecar ?? sidecarPathFor(output);
  const sidecar: ProtectSidecar = {
    ...result.sidecar,
    output: { ...result.sidecar.output, path: output, sidecar: sidecarPath },
  };
  writeAllOrNothing([
    { path: output, data: result.bytes },
    { path: sidecarPath, data: json(sidecar) },
    ...(result.check === null ? [] : [{ path: paths.check ?? checkPathFor(output), data: json(result.check) }]),
  ]);
  return sidecar;
}

/** Writes a check of an already written result (resumed batches that add --check). */
export function writeCheck(check: ProtectionCheck, output: string): void {
  writeAllOrNothing([{ path: checkPathFor(output), data: json(check) }]);
}
