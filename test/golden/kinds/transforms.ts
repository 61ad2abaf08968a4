// kind "transforms": torchvision 0.14 functional transforms on tensors and scipy's median filter.
// Generic over io.safetensors: every entry but `x` is one call, named as case.json's `calls`
// describe (gaussian_blur_k{k}_s{s}, median_k{k}, rotate_{a}, hflip, vflip,
// resize_{down|up}{size}_{mode}[_aa]); an entry this runner cannot name fails the case.
import { join } from 'node:path';
import { loadSafetensors } from '../../../src/io/tensors.js';
import { gaussianBlur, medianBlur } from '../../../src/purify/filters.js';
import { hflip, resize, rotate, vflip, type ResizeMode } from '../../../src/purify/geometry.js';
import { noGrad, scope, type Tensor } from '../../../src/torch/index.js';
import { assertClose, toleranceFor } from '../compare.js';
import type { CaseRunner } from './types.js';

const NUM = String.raw`-?\d+(?:\.\d+)?`;

/** The call an entry name stands for, or null when the name is not one this runner knows. */
export function transformFor(name: string, expected: Tensor): ((x: Tensor) => Tensor) | null {
  let m = new RegExp(`^gaussian_blur_k(\\d+)(?:x(\\d+))?_s(${NUM})(?:x(${NUM}))?$`).exec(name);
  if (m) {
    const [kx, ky] = [Number(m[1]), Number(m[2] ?? m[1])];
    const [sx, sy] = [Number(m[3]), Number(m[4] ?? m[3])];
    return (x) => gaussianBlur(x, [sx, sy], { kernelSize: [kx, ky] });
  }
  m = /^median_k(\d+)$/.exec(name);
  if (m) return (x) => medianBlur(x, Number(m![1]));
  m = new RegExp(`^rotate_(${NUM})(_nearest)?$`).exec(name);
  if (m) return (x) => rotate(x, Number(m![1]), { interpolation: m![2] ? 'nearest' : 'bilinear', fill: 0 });
  if (name === 'hflip') return hflip;
  if (name === 'vflip') return vflip;
  m = /^resize_(?:down|up)?\d+(?:x\d+)?_(nearest|bilinear|bicubic|lanczos)(_aa)?$/.exec(name);
  if (m) {
    // The target size is the reference's own shape (TF.resize with [h, w]).
    const size: [number, number] = [expected.shape[2]!, expected.shape[3]!];
    return (x) => resize(x, size, { mode: m![1] as ResizeMode, antialias: m![2] !== undefined });
  }
  return null;
}

/** The tolerance of an entry: its own key, else the key of its family (`rotate`, `median`, …), else `default`. */
function tolFor(tolerances: Record<string, { atol?: number; rtol?: number }> | undefined, name: string) {
  const family = /^(gaussian_blur|median|rotate|resize|hflip|vflip)/.exec(name)?.[1] ?? name;
  const t = tolerances ?? {};
  const hit = t[name] ?? t[family] ?? t['default'];
  return toleranceFor(hit === undefined ? undefined : { [name]: hit }, name, { atol: 1e-5, rtol: 0 });
}

const run: CaseRunner = async ({ dir, spec }, t) => {
  const io = loadSafetensors(join(dir, 'io.safetensors'));
  try {
    const x = io.get('x');
    if (x === undefined) throw new Error("io.safetensors has no input 'x'");
    for (const [name, expected] of [...io.entries()]
      .filter(([k]) => k !== 'x')
      .sort(([a], [b]) => a.localeCompare(b))) {
      await t.test(name, () =>
        noGrad(() =>
          scope(() => {
            const fn = transformFor(name, expected);
            if (fn === null)
              throw new Error(
                `no transform known for entry '${name}' (case.json calls: ${Object.keys(spec.calls ?? {}).join(', ')})`,
              );
            const r = assertClose(fn(x), expected, tolFor(spec.tolerances, name), name);
            t.diagnostic(`${name}: max |diff| ${r.maxAbs.toExponential(2)}`);
          }),
        ),
      );
    }
  } finally {
    for (const v of io.values()) v.dispose();
  }
};
export default run;
