/**
 * The learned immunizer's network G (issue 16): image → raw perturbation, fully convolutional so
 * any size and aspect ratio runs. Space-to-depth by 8 (the TAE encoders' latent stride, and JPEG's
 * block), a stack of 3×3 residual blocks at 1/8 resolution, a 1×1 convolution to 3·8² channels and
 * depth-to-space back to 3×H×W. The caller turns G(x) into δ = ε·tanh(G(x)) and projects it
 * exactly as PGD's δ (src/attacks/learned.ts). Sides that are not multiples of 8 are padded by
 * reflection and cropped back, so the border is not a constant the network must learn to ignore.
 * Config is a diffusers-style config.json with `_class_name: 'LearnedImmunizer'`.
 */
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ArgumentError, ImmunizeError } from '../errors.js';
import { writeFileAtomic } from '../io/atomic.js';
import { saveSafetensors } from '../io/tensors.js';
import { F, scope, randn, ones, zeros, Generator, type DType, type Tensor } from '../torch/index.js';
import { Conv2d, GroupNorm, ModuleList } from '../nn/layers.js';
import { Module } from '../nn/module.js';
import { readJson, refusePickle, SafetensorsSource, weightsIn } from './load.js';

export const IMMUNIZER_CLASS = 'LearnedImmunizer';

export interface ImmunizerConfig {
  /** Space-to-depth factor (8). */
  stride: number;
  hidden_channels: number;
  num_blocks: number;
  /** GroupNorm groups inside each block; 0 = no normalisation. */
  norm_groups: number;
  /** The encoder G was trained against (e.g. 'taef2'): using G against another model is a transfer. */
  target_model: string;
  /** The L∞ budget G was trained for, on the [0, 1] scale. */
  eps: number;
}

export const IMMUNIZER_DEFAULTS: ImmunizerConfig = {
  stride: 8,
  hidden_channels: 128,
  num_blocks: 6,
  norm_groups: 0,
  target_model: 'taef2',
  eps: 16 / 255,
};

function positiveInt(raw: unknown, key: string, label: string, allowZero = false): number {
  if (typeof raw !== 'number' || !Number.isSafeInteger(raw) || raw < (allowZero ? 0 : 1))
    throw new ImmunizeError(
      'E_CONFIG',
      `${label}: ${key} must be a ${allowZero ? 'non-negative' : 'positive'} integer but is ${JSON.stringify(raw)}`,
    );
  return raw;
}

/** Validates a config.json dict (unknown keys such as `_diffusers_version` are ignored). */
export function parseImmunizerConfig(raw: Record<string, unknown>, label = 'config.json'): ImmunizerConfig {
  if (raw['_class_name'] !== undefined && raw['_class_name'] !== IMMUNIZER_CLASS)
    throw new ImmunizeError(
      'E_CONFIG',
      `${label}: _class_name is '${String(raw['_class_name'])}', expected ${IMMUNIZER_CLASS}`,
    );
  const c = { ...IMMUNIZER_DEFAULTS };
  for (const k of Object.keys(IMMUNIZER_DEFAULTS) as (keyof ImmunizerConfig)[])
    if (raw[k] !== undefined && raw[k] !== null) (c as Record<string, unknown>)[k] = raw[k];
  positiveInt(c.stride, 'stride', label);
  positiveInt(c.hidden_channels, 'hidden_channels', label);
  positiveInt(c.num_blocks, 'num_blocks', label, true);
  positiveInt(c.norm_groups, 'norm_groups', label, true);
  if (c.norm_groups > 0 && c.hidden_channels % c.norm_groups !== 0)
    throw new ImmunizeError(
      'E_CONFIG',
      `${label}: hidden_channels (${c.hidden_channels}) must be a multiple of norm_groups (${c.norm_groups})`,
    );
  if (typeof c.target_model !== 'string' || c.target_model === '')
    throw new ImmunizeError('E_CONFIG', `${label}: target_model must name the encoder G was trained against`);
  if (typeof c.eps !== 'number' || !(c.eps > 0 && c.eps <= 1))
    throw new ImmunizeError('E_CONFIG', `${label}: eps must be a number in (0, 1] but is ${JSON.stringify(c.eps)}`);
  return c;
}

/** relu(x + conv(relu(norm(conv(norm(x)))))): a pre-activation-free residual block. */
class ResBlock extends Module {
  readonly conv1: Conv2d;
  readonly conv2: Conv2d;
  readonly norm1: GroupNorm | null;
  constructor(ch: number, groups: number) {
    super();
    this.conv1 = this.child('conv1', new Conv2d(ch, ch, { padding: 1 }));
    this.conv2 = this.child('conv2', new Conv2d(ch, ch, { padding: 1 }));
    this.norm1 = groups > 0 ? this.child('norm1', new GroupNorm(groups, ch)) : null;
  }
  forward(x: Tensor): Tensor {
    return scope(() => {
      let h = this.conv1.forward(x);
      if (this.norm1) h = this.norm1.forward(h);
      return x.add(this.conv2.forward(h.relu())).relu();
    });
  }
}

export class ImmunizerNet extends Module {
  readonly config: ImmunizerConfig;
  readonly conv_in: Conv2d;
  readonly blocks: ModuleList<ResBlock>;
  readonly conv_out: Conv2d;

  constructor(config: Partial<ImmunizerConfig> | Record<string, unknown> = {}) {
    super();
    this.config = parseImmunizerConfig(config as Record<string, unknown>);
    const { stride: s, hidden_channels: ch } = this.config;
    this.conv_in = this.child('conv_in', new Conv2d(3 * s * s, ch, { padding: 1 }));
    this.blocks = this.child(
      'blocks',
      new ModuleList(Array.from({ length: this.config.num_blocks }, () => new ResBlock(ch, this.config.norm_groups))),
    );
    this.conv_out = this.child('conv_out', new Conv2d(ch, 3 * s * s, { kernelSize: 1 }));
  }

  /** G(x) for x (N×3×H×W in [0, 1], any H, W): the raw perturbation before tanh, same shape as x. */
  forward(x: Tensor): Tensor {
    if (x.ndim !== 4 || x.shape[1] !== 3)
      throw new ArgumentError(`the immunizer takes N×3×H×W images but received [${x.shape.join(', ')}]`);
    const s = this.config.stride;
    const [h, w] = [x.shape[2]!, x.shape[3]!];
    return scope(() => {
      const ph = (s - (h % s)) % s;
      const pw = (s - (w % s)) % s;
      // Reflection needs the pad smaller than the side; tiny images fall back to edge replication.
      const mode = ph < h && pw < w ? 'reflect' : 'replicate';
      const xp = ph === 0 && pw === 0 ? x : F.pad(x, [0, pw, 0, ph], mode);
      // Centred input: the network sees x − 0.5, so a zero-initialised bias is not a brightness prior.
      let hid = this.conv_in.forward(F.pixelUnshuffle(xp.sub(0.5), s)).relu();
      for (const b of this.blocks.items) hid = b.forward(hid);
      const out = F.pixelShuffle(this.conv_out.forward(hid), s);
      return ph === 0 && pw === 0 ? out : out.narrow(2, 0, h).narrow(3, 0, w).contiguous();
    });
  }

  /**
   * Fresh weights for training (He-normal convolutions, unit norms, zero biases; the output layer
   * scaled down so tanh starts far from saturation). Deterministic for a seed.
   */
  initRandom(seed: number): this {
    const generator = new Generator({ seed });
    const weights = new Map<string, Tensor>();
    try {
      for (const [key, shape] of this.stateShapes()) {
        let t: Tensor;
        if (key.endsWith('.bias')) t = zeros(shape);
        else if (shape.length === 1) t = ones(shape);
        else {
          const fanIn = shape[1]! * shape[2]! * shape[3]!;
          const gain = key.startsWith('conv_out.') ? 0.1 : key.endsWith('conv2.weight') ? 0.5 : 1;
          t = scope(() => randn(shape, { generator }).mul(gain * Math.sqrt(2 / fanIn)));
        }
        weights.set(key, t);
      }
      this.loadStateDict(weights);
    } finally {
      for (const t of weights.values()) t.dispose();
    }
    return this;
  }

  /** Multiply-accumulates per input pixel (the cost model in docs/learned.md). */
  macsPerPixel(): number {
    const { stride: s, hidden_channels: ch, num_blocks: n } = this.config;
    const lowRes = 9 * 3 * s * s * ch + n * 2 * 9 * ch * ch + ch * 3 * s * s;
    return lowRes / (s * s);
  }
}

/**
 * Loads G from a folder (config.json + one .safetensors, `model.safetensors` by convention) or
 * from a .safetensors file with config.json beside it. Missing files, a wrong `_class_name` and
 * weights that do not match the config are errors that name the file.
 */
export function loadImmunizer(path: string, o: { dtype?: DType } = {}): ImmunizerNet {
  if (!existsSync(path)) throw new ImmunizeError('E_MODEL_FILE', `learned immunizer not found: ${path} does not exist`);
  refusePickle(path);
  const folder = statSync(path).isDirectory() ? path : dirname(path);
  const configPath = join(folder, 'config.json');
  if (!existsSync(configPath))
    throw new ImmunizeError(
      'E_MODEL_FILE',
      `${folder}: no config.json (a learned immunizer needs its config: _class_name ${IMMUNIZER_CLASS})`,
    );
  const raw = readJson(configPath);
  if (raw['_class_name'] !== IMMUNIZER_CLASS)
    throw new ImmunizeError(
      'E_CONFIG',
      `${configPath}: _class_name is '${String(raw['_class_name'])}', expected ${IMMUNIZER_CLASS} (is this a learned immunizer?)`,
    );
  const net = new ImmunizerNet(parseImmunizerConfig(raw, configPath));
  const file = statSync(path).isDirectory() ? weightsIn(path) : path;
  try {
    using source = new SafetensorsSource([{ path: file }]);
    net.loadStateDict(source, { dtype: o.dtype ?? 'float32', label: file });
  } catch (e) {
    net.dispose();
    throw e;
  }
  return net;
}

/** Writes G as `dir/config.json` + `dir/model.safetensors` (weights in `dtype`, default fp32). */
export function saveImmunizer(
  dir: string,
  net: ImmunizerNet,
  o: { dtype?: DType; extra?: Record<string, unknown> } = {},
): void {
  mkdirSync(dir, { recursive: true });
  const weights = new Map<string, Tensor>();
  try {
    for (const [k, t] of net.stateDict())
      weights.set(
        k,
        t
          .detach()
          .to(o.dtype ?? 'float32')
          .contiguous(),
      );
    saveSafetensors(join(dir, 'model.safetensors'), weights);
  } finally {
    for (const t of weights.values()) t.dispose();
  }
  const config = { _class_name: IMMUNIZER_CLASS, ...net.config, ...o.extra };
  writeFileAtomic(join(dir, 'config.json'), JSON.stringify(config, null, 2) + '\n');
}
