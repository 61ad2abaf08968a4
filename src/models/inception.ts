/**
 * The Inception-v3 that FID is defined with: pytorch-fid 0.3.0's `InceptionV3` built on
 * `fid_inception_v3()` — torchvision's Inception3 with the TensorFlow-port patches
 * (FIDInceptionA/C: average pools that ignore the zero padding; FIDInceptionE_1 likewise;
 * FIDInceptionE_2: a max pool) — and the weights of TF's 2015-12-05 graph that pytorch-fid ships
 * as `pt_inception-2015-12-05-6726825d.pth`.
 *
 * Module paths are that checkpoint's keys (`Conv2d_1a_3x3.conv.weight`, `Mixed_5b.branch1x1.bn.running_mean`,
 * …), so its safetensors conversion loads as is (docs/metrics.md has the one-line conversion);
 * a state dict saved from pytorch-fid's wrapper (`blocks.0.0.conv.weight`, …) is renamed on load.
 * `fc.*` (the 1008-way classifier) and `num_batches_tracked` are not needed and are ignored.
 *
 *   const net = loadFIDInception('pt_inception-2015-12-05.safetensors');
 *   const feats = noGrad(() => net.features(images));   // [N, 2048] pool3, images [N, 3, H, W] in [0, 1]
 */
import { existsSync, statSync } from 'node:fs';
import { basename, extname } from 'node:path';
import { ArgumentError, ImmunizeError, describe } from '../errors.js';
import { Module, type ParamRef } from '../nn/module.js';
import { F, cat, isTensor, scope, type DType, type Device, type Tensor } from '../torch/index.js';
import { SafetensorsSource, refusePickle } from './load.js';

type Pair = [number, number];
const pair = (v: number | Pair): Pair => (typeof v === 'number' ? [v, v] : v);

/** nn.BatchNorm2d in eval mode (running statistics). */
class BatchNorm2d extends Module {
  readonly weight: ParamRef;
  readonly bias: ParamRef;
  readonly runningMean: ParamRef;
  readonly runningVar: ParamRef;
  constructor(
    readonly channels: number,
    readonly eps: number,
  ) {
    super();
    this.weight = this.param('weight', [channels]);
    this.bias = this.param('bias', [channels]);
    this.runningMean = this.buffer('running_mean', [channels]);
    this.runningVar = this.buffer('running_var', [channels]);
  }
  forward(x: Tensor): Tensor {
    return F.batchNorm(x, this.runningMean.t, this.runningVar.t, {
      weight: this.weight.t,
      bias: this.bias.t,
      training: false,
      eps: this.eps,
    });
  }
}

/** Bias-free convolution with rectangular kernels and padding (nn.Conv2d(bias=False)). */
class ConvNoBias extends Module {
  readonly weight: ParamRef;
  constructor(
    inCh: number,
    outCh: number,
    readonly kernel: Pair,
    readonly stride: Pair,
    readonly padding: Pair,
  ) {
    super();
    this.weight = this.param('weight', [outCh, inCh, kernel[0], kernel[1]]);
  }
  forward(x: Tensor): Tensor {
    return F.conv2d(x, this.weight.t, null, { stride: this.stride, padding: this.padding });
  }
}

/** torchvision BasicConv2d: conv (no bias) → BatchNorm(eps 0.001) → ReLU. */
class BasicConv2d extends Module {
  readonly conv: ConvNoBias;
  readonly bn: BatchNorm2d;
  constructor(
    inCh: number,
    outCh: number,
    kernel: number | Pair,
    o: { stride?: number | Pair; padding?: number | Pair } = {},
  ) {
    super();
    this.conv = this.child(
      'conv',
      new ConvNoBias(inCh, outCh, pair(kernel), pair(o.stride ?? 1), pair(o.padding ?? 0)),
    );
    this.bn = this.child('bn', new BatchNorm2d(outCh, 0.001));
  }
  forward(x: Tensor): Tensor {
    return scope(() => this.bn.forward(this.conv.forward(x)).relu());
  }
}

/** Average pool that, like TensorFlow's, leaves the zero padding out of the mean (the FID patch). */
const tfAvgPool = (x: Tensor) => F.avgPool2d(x, 3, { stride: 1, padding: 1, countIncludePad: false });

/** FIDInceptionA (torchvision InceptionA with the TF average pool). */
class InceptionA extends Module {
  readonly b1: BasicConv2d;
  readonly b5a: BasicConv2d;
  readonly b5b: BasicConv2d;
  readonly b3a: BasicConv2d;
  readonly b3b: BasicConv2d;
  readonly b3c: BasicConv2d;
  readonly pool: BasicConv2d;
  constructor(inCh: number, poolFeatures: number) {
    super();
    this.b1 = this.child('branch1x1', new BasicConv2d(inCh, 64, 1));
    this.b5a = this.child('branch5x5_1', new BasicConv2d(inCh, 48, 1));
    this.b5b = this.child('branch5x5_2', new BasicConv2d(48, 64, 5, { padding: 2 }));
    this.b3a = this.child('branch3x3dbl_1', new BasicConv2d(inCh, 64, 1));
    this.b3b = this.child('branch3x3dbl_2', new BasicConv2d(64, 96, 3, { padding: 1 }));
    this.b3c = this.child('branch3x3dbl_3', new BasicConv2d(96, 96, 3, { padding: 1 }));
    this.pool = this.child('branch_pool', new BasicConv2d(inCh, poolFeatures, 1));
  }
  forward(x: Tensor): Tensor {
    return scope(() =>
      cat(
        [
          this.b1.forward(x),
          this.b5b.forward(this.b5a.forward(x)),
          this.b3c.forward(this.b3b.forward(this.b3a.forward(x))),
          this.pool.forward(tfAvgPool(x)),
        ],
        1,
      ),
    );
  }
}

/** torchvision InceptionB (grid reduction 35 → 17). */
class InceptionB extends Module {
  readonly b3: BasicConv2d;
  readonly d1: BasicConv2d;
  readonly d2: BasicConv2d;
  readonly d3: BasicConv2d;
  constructor(inCh: number) {
    super();
    this.b3 = this.child('branch3x3', new BasicConv2d(inCh, 384, 3, { stride: 2 }));
    this.d1 = this.child('branch3x3dbl_1', new BasicConv2d(inCh, 64, 1));
    this.d2 = this.child('branch3x3dbl_2', new BasicConv2d(64, 96, 3, { padding: 1 }));
    this.d3 = this.child('branch3x3dbl_3', new BasicConv2d(96, 96, 3, { stride: 2 }));
  }
  forward(x: Tensor): Tensor {
    return scope(() =>
      cat(
        [this.b3.forward(x), this.d3.forward(this.d2.forward(this.d1.forward(x))), F.maxPool2d(x, 3, { stride: 2 })],
        1,
      ),
    );
  }
}

/** FIDInceptionC (torchvision InceptionC with the TF average pool). */
class InceptionC extends Module {
  readonly b1: BasicConv2d;
  readonly s: BasicConv2d[];
  readonly d: BasicConv2d[];
  readonly pool: BasicConv2d;
  constructor(inCh: number, c7: number) {
    super();
    this.b1 = this.child('branch1x1', new BasicConv2d(inCh, 192, 1));
    this.s = [
      this.child('branch7x7_1', new BasicConv2d(inCh, c7, 1)),
      this.child('branch7x7_2', new BasicConv2d(c7, c7, [1, 7], { padding: [0, 3] })),
      this.child('branch7x7_3', new BasicConv2d(c7, 192, [7, 1], { padding: [3, 0] })),
    ];
    this.d = [
      this.child('branch7x7dbl_1', new BasicConv2d(inCh, c7, 1)),
      this.child('branch7x7dbl_2', new BasicConv2d(c7, c7, [7, 1], { padding: [3, 0] })),
      this.child('branch7x7dbl_3', new BasicConv2d(c7, c7, [1, 7], { padding: [0, 3] })),
      this.child('branch7x7dbl_4', new BasicConv2d(c7, c7, [7, 1], { padding: [3, 0] })),
      this.child('branch7x7dbl_5', new BasicConv2d(c7, 192, [1, 7], { padding: [0, 3] })),
    ];
    this.pool = this.child('branch_pool', new BasicConv2d(inCh, 192, 1));
  }
  forward(x: Tensor): Tensor {
    return scope(() =>
      cat(
        [
          this.b1.forward(x),
          this.s.reduce((h, m) => m.forward(h), x),
          this.d.reduce((h, m) => m.forward(h), x),
          this.pool.forward(tfAvgPool(x)),
        ],
        1,
      ),
    );
  }
}

/** torchvision InceptionD (grid reduction 17 → 8). */
class InceptionD extends Module {
  readonly a: BasicConv2d[];
  readonly b: BasicConv2d[];
  constructor(inCh: number) {
    super();
    this.a = [
      this.child('branch3x3_1', new BasicConv2d(inCh, 192, 1)),
      this.child('branch3x3_2', new BasicConv2d(192, 320, 3, { stride: 2 })),
    ];
    this.b = [
      this.child('branch7x7x3_1', new BasicConv2d(inCh, 192, 1)),
      this.child('branch7x7x3_2', new BasicConv2d(192, 192, [1, 7], { padding: [0, 3] })),
      this.child('branch7x7x3_3', new BasicConv2d(192, 192, [7, 1], { padding: [3, 0] })),
      this.child('branch7x7x3_4', new BasicConv2d(192, 192, 3, { stride: 2 })),
    ];
  }
  forward(x: Tensor): Tensor {
    return scope(() =>
      cat(
        [
          this.a.reduce((h, m) => m.forward(h), x),
          this.b.reduce((h, m) => m.forward(h), x),
          F.maxPool2d(x, 3, { stride: 2 }),
        ],
        1,
      ),
    );
  }
}

/** FIDInceptionE_1 (TF average pool) and FIDInceptionE_2 (max pool, as the TF graph has it). */
class InceptionE extends Module {
  readonly b1: BasicConv2d;
  readonly s1: BasicConv2d;
  readonly s2a: BasicConv2d;
  readonly s2b: BasicConv2d;
  readonly d1: BasicConv2d;
  readonly d2: BasicConv2d;
  readonly d3a: BasicConv2d;
  readonly d3b: BasicConv2d;
  readonly pool: BasicConv2d;
  constructor(
    inCh: number,
    readonly poolKind: 'avg' | 'max',
  ) {
    super();
    this.b1 = this.child('branch1x1', new BasicConv2d(inCh, 320, 1));
    this.s1 = this.child('branch3x3_1', new BasicConv2d(inCh, 384, 1));
    this.s2a = this.child('branch3x3_2a', new BasicConv2d(384, 384, [1, 3], { padding: [0, 1] }));
    this.s2b = this.child('branch3x3_2b', new BasicConv2d(384, 384, [3, 1], { padding: [1, 0] }));
    this.d1 = this.child('branch3x3dbl_1', new BasicConv2d(inCh, 448, 1));
    this.d2 = this.child('branch3x3dbl_2', new BasicConv2d(448, 384, 3, { padding: 1 }));
    this.d3a = this.child('branch3x3dbl_3a', new BasicConv2d(384, 384, [1, 3], { padding: [0, 1] }));
    this.d3b = this.child('branch3x3dbl_3b', new BasicConv2d(384, 384, [3, 1], { padding: [1, 0] }));
    this.pool = this.child('branch_pool', new BasicConv2d(inCh, 192, 1));
  }
  forward(x: Tensor): Tensor {
    return scope(() => {
      const s = this.s1.forward(x);
      const d = this.d2.forward(this.d1.forward(x));
      const pooled = this.poolKind === 'avg' ? tfAvgPool(x) : F.maxPool2d(x, 3, { stride: 1, padding: 1 });
      return cat(
        [
          this.b1.forward(x),
          cat([this.s2a.forward(s), this.s2b.forward(s)], 1),
          cat([this.d3a.forward(d), this.d3b.forward(d)], 1),
          this.pool.forward(pooled),
        ],
        1,
      );
    });
  }
}

/** Feature dimension → pytorch-fid block index (InceptionV3.BLOCK_INDEX_BY_DIM). */
export const BLOCK_INDEX_BY_DIM: Readonly<Record<number, number>> = { 64: 0, 192: 1, 768: 2, 2048: 3 };

export interface InceptionForwardOptions {
  /** Blocks to return (0: first max pool, 64 ch; 1: second max pool, 192; 2: pre-aux, 768; 3: pool3, 2048). Default [3]. */
  outputBlocks?: readonly number[];
  /** Bilinearly resize to 299×299 first (align_corners false). Default true. */
  resizeInput?: boolean;
  /** Map [0, 1] to [−1, 1] first. Default true. */
  normalizeInput?: boolean;
}

/** pytorch-fid's InceptionV3 over the FID Inception weights. */
export class FIDInceptionV3 extends Module {
  readonly Conv2d_1a_3x3 = this.child('Conv2d_1a_3x3', new BasicConv2d(3, 32, 3, { stride: 2 }));
  readonly Conv2d_2a_3x3 = this.child('Conv2d_2a_3x3', new BasicConv2d(32, 32, 3));
  readonly Conv2d_2b_3x3 = this.child('Conv2d_2b_3x3', new BasicConv2d(32, 64, 3, { padding: 1 }));
  readonly Conv2d_3b_1x1 = this.child('Conv2d_3b_1x1', new BasicConv2d(64, 80, 1));
  readonly Conv2d_4a_3x3 = this.child('Conv2d_4a_3x3', new BasicConv2d(80, 192, 3));
  readonly Mixed_5b = this.child('Mixed_5b', new InceptionA(192, 32));
  readonly Mixed_5c = this.child('Mixed_5c', new InceptionA(256, 64));
  readonly Mixed_5d = this.child('Mixed_5d', new InceptionA(288, 64));
  readonly Mixed_6a = this.child('Mixed_6a', new InceptionB(288));
  readonly Mixed_6b = this.child('Mixed_6b', new InceptionC(768, 128));
  readonly Mixed_6c = this.child('Mixed_6c', new InceptionC(768, 160));
  readonly Mixed_6d = this.child('Mixed_6d', new InceptionC(768, 160));
  readonly Mixed_6e = this.child('Mixed_6e', new InceptionC(768, 192));
  readonly Mixed_7a = this.child('Mixed_7a', new InceptionD(768));
  readonly Mixed_7b = this.child('Mixed_7b', new InceptionE(1280, 'avg'));
  readonly Mixed_7c = this.child('Mixed_7c', new InceptionE(2048, 'max'));

  /** The four blocks of pytorch-fid's InceptionV3, in order. */
  #blocks(): ((x: Tensor) => Tensor)[] {
    const seq =
      (...fs: ((x: Tensor) => Tensor)[]) =>
      (x: Tensor) =>
        scope(() => fs.reduce((h, f) => f(h), x));
    const maxPool = (x: Tensor) => F.maxPool2d(x, 3, { stride: 2 });
    return [
      seq(
        (x) => this.Conv2d_1a_3x3.forward(x),
        (x) => this.Conv2d_2a_3x3.forward(x),
        (x) => this.Conv2d_2b_3x3.forward(x),
        maxPool,
      ),
      seq(
        (x) => this.Conv2d_3b_1x1.forward(x),
        (x) => this.Conv2d_4a_3x3.forward(x),
        maxPool,
      ),
      seq(
        ...[
          this.Mixed_5b,
          this.Mixed_5c,
          this.Mixed_5d,
          this.Mixed_6a,
          this.Mixed_6b,
          this.Mixed_6c,
          this.Mixed_6d,
          this.Mixed_6e,
        ].map((m) => (x: Tensor) => m.forward(x)),
      ),
      seq(
        (x) => this.Mixed_7a.forward(x),
        (x) => this.Mixed_7b.forward(x),
        (x) => this.Mixed_7c.forward(x),
        (x) => F.adaptiveAvgPool2d(x, 1),
      ),
    ];
  }

  /** Images [N, 3, H, W] in [0, 1] → the requested blocks' feature maps, in ascending block order (pytorch-fid InceptionV3.forward). */
  forward(images: Tensor, o: InceptionForwardOptions = {}): Tensor[] {
    if (!isTensor(images))
      throw new ArgumentError(
        `FIDInceptionV3: expected images to be a Tensor [N, 3, H, W] but received ${describe(images)}`,
      );
    if (images.ndim !== 4 || images.shape[1] !== 3)
      throw new ImmunizeError(
        'E_SHAPE',
        `FIDInceptionV3: expected RGB images [N, 3, H, W] but received [${images.shape.join(', ')}]`,
      );
    const blocks = [...new Set(o.outputBlocks ?? [3])].sort((a, b) => a - b);
    if (blocks.length === 0 || blocks.some((b) => !Number.isInteger(b) || b < 0 || b > 3)) {
      throw new ArgumentError(
        `FIDInceptionV3: outputBlocks must be block indices 0–3 but received [${(o.outputBlocks ?? []).join(', ')}]`,
      );
    }
    const last = blocks[blocks.length - 1]!;
    return scope(() => {
      let x = images;
      if (o.resizeInput ?? true) x = F.interpolate(x, { size: [299, 299], mode: 'bilinear', alignCorners: false });
      if (o.normalizeInput ?? true) x = x.mul(2).sub(1);
      const out: Tensor[] = [];
      const fns = this.#blocks();
      for (let i = 0; i <= last; i++) {
        x = fns[i]!(x);
        if (blocks.includes(i)) out.push(x);
      }
      return out;
    });
  }

  /**
   * Pool3 features [N, 2048] (or another block's, globally average-pooled, by `dims` 64/192/768),
   * as pytorch-fid get_activations computes them per batch.
   */
  features(images: Tensor, dims = 2048): Tensor {
    const block = BLOCK_INDEX_BY_DIM[dims];
    if (block === undefined)
      throw new ArgumentError(`FIDInceptionV3: dims must be one of 64, 192, 768, 2048 but is ${describe(dims)}`);
    return scope(() => {
      let pred = this.forward(images, { outputBlocks: [block] })[0]!;
      if (pred.shape[2] !== 1 || pred.shape[3] !== 1) pred = F.adaptiveAvgPool2d(pred, 1);
      return pred.squeeze(3).squeeze(2);
    });
  }
}

/** Block and position in pytorch-fid's wrapper (`blocks.B.P`) → the Inception3 attribute name. */
const WRAPPER_NAMES: Readonly<Record<string, string>> = {
  '0.0': 'Conv2d_1a_3x3',
  '0.1': 'Conv2d_2a_3x3',
  '0.2': 'Conv2d_2b_3x3',
  '1.0': 'Conv2d_3b_1x1',
  '1.1': 'Conv2d_4a_3x3',
  '2.0': 'Mixed_5b',
  '2.1': 'Mixed_5c',
  '2.2': 'Mixed_5d',
  '2.3': 'Mixed_6a',
  '2.4': 'Mixed_6b',
  '2.5': 'Mixed_6c',
  '2.6': 'Mixed_6d',
  '2.7': 'Mixed_6e',
  '3.0': 'Mixed_7a',
  '3.1': 'Mixed_7b',
  '3.2': 'Mixed_7c',
};

/** Checkpoint key → module key: drops fc / num_batches_tracked / aux heads, renames pytorch-fid wrapper keys. */
export function inceptionKeyRename(key: string): string | null {
  if (key.endsWith('.num_batches_tracked') || key.startsWith('fc.') || key.startsWith('AuxLogits.')) return null;
  const m = /^blocks\.(\d+)\.(\d+)\.(.*)$/.exec(key);
  if (m !== null) {
    const name = WRAPPER_NAMES[`${m[1]}.${m[2]}`];
    return name === undefined ? key : `${name}.${m[3]}`;
  }
  return key;
}

export interface LoadInceptionOptions {
  dtype?: DType;
  device?: Device;
}

/**
 * Loads the FID Inception from a .safetensors conversion of pytorch-fid's
 * pt_inception-2015-12-05-6726825d.pth (see docs/metrics.md). Pickle files are refused with the
 * conversion command.
 */
export function loadFIDInception(path: string, o: LoadInceptionOptions = {}): FIDInceptionV3 {
  if (!existsSync(path)) {
    throw new ImmunizeError(
      'E_MODEL_FILE',
      `${path} does not exist. FID needs pytorch-fid's Inception weights converted to safetensors; see docs/metrics.md ("Inception weights")`,
    );
  }
  if (statSync(path).isDirectory())
    throw new ImmunizeError('E_MODEL_FILE', `${path}: expected the Inception .safetensors file, not a folder`);
  refusePickle(path);
  if (extname(path) !== '.safetensors')
    throw new ImmunizeError('E_MODEL_FILE', `${path}: expected a .safetensors file`);
  const model = new FIDInceptionV3();
  try {
    using source = new SafetensorsSource([{ path, rename: inceptionKeyRename }]);
    model.loadStateDict(source, { dtype: o.dtype ?? 'float32', device: o.device, label: basename(path) });
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}
