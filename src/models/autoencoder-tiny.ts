/**
 * AutoencoderTiny: the TAESD family (taesd, taesdxl, taesd3, taef1, taef2) by Ollin Boer Bohan
 * (madebyollin/taesd, MIT). Module paths follow diffusers' AutoencoderTiny
 * (`encoder.layers.N`, `decoder.layers.M`), which is also the Hugging Face repos' layout; the
 * original taesd files (`N.conv.0.weight`, one file per half) are renamed on load.
 * Images are in [0, 1] (taesd's convention, not [-1, 1]).
 */
import { ImmunizeError } from '../errors.js';
import { F, scope, type Tensor } from '../torch/index.js';
import { Conv2d, GroupNorm } from '../nn/layers.js';
import { Module } from '../nn/module.js';

export interface AutoencoderTinyConfig {
  in_channels: number;
  out_channels: number;
  latent_channels: number;
  encoder_block_out_channels: number[];
  decoder_block_out_channels: number[];
  num_encoder_blocks: number[];
  num_decoder_blocks: number[];
  upsampling_scaling_factor: number;
  /** taef2's extra GroupNorm branch in the encoder's last and the decoder's first stage. */
  use_midblock_gn: boolean;
  scaling_factor: number;
  latent_magnitude: number;
  latent_shift: number;
}

// diffusers' AutoencoderTiny defaults (= taesd for SD 1.x).
export const TINY_DEFAULTS: AutoencoderTinyConfig = {
  in_channels: 3,
  out_channels: 3,
  latent_channels: 4,
  encoder_block_out_channels: [64, 64, 64, 64],
  decoder_block_out_channels: [64, 64, 64, 64],
  num_encoder_blocks: [1, 3, 3, 3],
  num_decoder_blocks: [3, 3, 3, 1],
  upsampling_scaling_factor: 2,
  use_midblock_gn: false,
  scaling_factor: 1,
  latent_magnitude: 3,
  latent_shift: 0.5,
};

export function parseAutoencoderTinyConfig(raw: Record<string, unknown>, label = 'config.json'): AutoencoderTinyConfig {
  if (raw['_class_name'] !== undefined && raw['_class_name'] !== 'AutoencoderTiny') {
    throw new ImmunizeError(
      'E_CONFIG',
      `${label}: _class_name is '${String(raw['_class_name'])}', expected AutoencoderTiny`,
    );
  }
  const cfg = { ...TINY_DEFAULTS };
  for (const k of Object.keys(TINY_DEFAULTS) as (keyof AutoencoderTinyConfig)[]) {
    if (raw[k] !== undefined && raw[k] !== null) (cfg as Record<string, unknown>)[k] = raw[k];
  }
  if (raw['act_fn'] !== undefined && raw['act_fn'] !== 'relu')
    throw new ImmunizeError(
      'E_CONFIG',
      `${label}: act_fn '${String(raw['act_fn'])}' is not supported (taesd uses relu)`,
    );
  if (raw['upsample_fn'] !== undefined && raw['upsample_fn'] !== 'nearest')
    throw new ImmunizeError(
      'E_CONFIG',
      `${label}: upsample_fn '${String(raw['upsample_fn'])}' is not supported (taesd uses nearest)`,
    );
  if (
    cfg.num_encoder_blocks.length !== cfg.encoder_block_out_channels.length ||
    cfg.num_decoder_blocks.length !== cfg.decoder_block_out_channels.length
  ) {
    throw new ImmunizeError('E_CONFIG', `${label}: num_*_blocks and *_block_out_channels must have equal lengths`);
  }
  return cfg;
}

/**
 * Applies `fns` in turn, freeing each intermediate as soon as the next one exists (`x` is the
 * caller's). At full size one 64-channel activation is 350 MB: kept to the end of the scope, a
 * decoder pass held gigabytes at once. Autograd keeps its own references to what backward needs.
 */
function pipe(x: Tensor, ...fns: ((t: Tensor) => Tensor)[]): Tensor {
  let h = x;
  for (const f of fns) {
    const next = f(h);
    if (h !== x && h !== next) h.dispose();
    h = next;
  }
  return h;
}

/** taesd's Block: relu(conv(x) + skip(x)), with taef2's `pool` branch added to x first. */
class TinyBlock extends Module {
  readonly conv: SparseList;
  readonly skip: Conv2d | null;
  readonly pool: SparseList | null;
  constructor(nIn: number, nOut: number, midblockGn: boolean) {
    super();
    // nn.Sequential(conv, ReLU, conv, ReLU, conv): parameters at indices 0, 2, 4.
    this.conv = this.child(
      'conv',
      new SparseList({
        0: new Conv2d(nIn, nOut, { padding: 1 }),
        2: new Conv2d(nOut, nOut, { padding: 1 }),
        4: new Conv2d(nOut, nOut, { padding: 1 }),
      }),
    );
    this.skip = nIn !== nOut ? this.child('skip', new Conv2d(nIn, nOut, { kernelSize: 1, bias: false })) : null;
    // nn.Sequential(conv1x1(n, 4n), GroupNorm(4, 4n), ReLU, conv1x1(4n, n)).
    this.pool = midblockGn
      ? this.child(
          'pool',
          new SparseList({
            0: new Conv2d(nIn, nIn * 4, { kernelSize: 1, bias: false }),
            1: new GroupNorm(4, nIn * 4),
            3: new Conv2d(nIn * 4, nIn, { kernelSize: 1, bias: false }),
          }),
        )
      : null;
  }
  forward(x: Tensor): Tensor {
    return scope(() => {
      const list = this.conv;
      let inp = x;
      if (this.pool) {
        const p = this.pool;
        const b = pipe(
          x,
          (t) => (p.get(0) as Conv2d).forward(t),
          (t) => (p.get(1) as GroupNorm).forward(t),
          (t) => t.relu(),
          (t) => (p.get(3) as Conv2d).forward(t),
        );
        inp = x.add(b);
        b.dispose();
      }
      const h = pipe(
        inp,
        (t) => (list.get(0) as Conv2d).forward(t),
        (t) => t.relu(),
        (t) => (list.get(2) as Conv2d).forward(t),
        (t) => t.relu(),
        (t) => (list.get(4) as Conv2d).forward(t),
        (t) => t.add(this.skip ? this.skip.forward(inp) : inp),
        (t) => t.relu(),
      );
      if (inp !== x) inp.dispose();
      return h;
    });
  }
}

/** An nn.Sequential whose parameter-free entries (ReLU, Upsample) leave gaps in the numbering. */
class SparseList extends Module {
  readonly #items = new Map<number, Module>();
  constructor(items: Record<number, Module>) {
    super();
    for (const [i, m] of Object.entries(items)) {
      this.#items.set(Number(i), m);
      this.child(i, m);
    }
  }
  get(i: number): Module {
    const m = this.#items.get(i);
    if (m === undefined) throw new ImmunizeError('E_INTERNAL', `no layer ${i}`);
    return m;
  }
}

type Layer =
  | { kind: 'conv'; m: Conv2d }
  | { kind: 'block'; m: TinyBlock }
  | { kind: 'relu' }
  | { kind: 'upsample'; factor: number };

class TinySequential extends Module {
  readonly #layers: Layer[];
  constructor(layers: Layer[]) {
    super();
    this.#layers = layers;
    layers.forEach((l, i) => {
      if (l.kind === 'conv' || l.kind === 'block') this.child(String(i), l.m);
    });
  }
  forward(x: Tensor): Tensor {
    return scope(() =>
      pipe(
        x,
        ...this.#layers.map((l) => (h: Tensor) => {
          if (l.kind === 'relu') return h.relu();
          if (l.kind === 'upsample') return F.interpolate(h, { scaleFactor: l.factor, mode: 'nearest' });
          return l.m.forward(h);
        }),
      ),
    );
  }
}

class Half extends Module {
  readonly layers: TinySequential;
  constructor(layers: Layer[]) {
    super();
    this.layers = this.child('layers', new TinySequential(layers));
  }
}

function encoderLayers(c: AutoencoderTinyConfig): Layer[] {
  const out: Layer[] = [];
  const last = c.num_encoder_blocks.length - 1;
  c.num_encoder_blocks.forEach((n, i) => {
    const ch = c.encoder_block_out_channels[i]!;
    out.push({
      kind: 'conv',
      m:
        i === 0
          ? new Conv2d(c.in_channels, ch, { padding: 1 })
          : new Conv2d(c.encoder_block_out_channels[i - 1]!, ch, { padding: 1, stride: 2, bias: false }),
    });
    for (let j = 0; j < n; j++) out.push({ kind: 'block', m: new TinyBlock(ch, ch, c.use_midblock_gn && i === last) });
  });
  out.push({ kind: 'conv', m: new Conv2d(c.encoder_block_out_channels[last]!, c.latent_channels, { padding: 1 }) });
  return out;
}

function decoderLayers(c: AutoencoderTinyConfig): Layer[] {
  const out: Layer[] = [
    { kind: 'conv', m: new Conv2d(c.latent_channels, c.decoder_block_out_channels[0]!, { padding: 1 }) },
    { kind: 'relu' },
  ];
  const last = c.num_decoder_blocks.length - 1;
  c.num_decoder_blocks.forEach((n, i) => {
    const ch = c.decoder_block_out_channels[i]!;
    for (let j = 0; j < n; j++) out.push({ kind: 'block', m: new TinyBlock(ch, ch, c.use_midblock_gn && i === 0) });
    if (i !== last) out.push({ kind: 'upsample', factor: c.upsampling_scaling_factor });
    out.push({ kind: 'conv', m: new Conv2d(ch, i === last ? c.out_channels : ch, { padding: 1, bias: i === last }) });
  });
  return out;
}

export class AutoencoderTiny extends Module {
  readonly config: AutoencoderTinyConfig;
  readonly encoder: Half;
  readonly decoder: Half;
  constructor(config: Partial<AutoencoderTinyConfig> | Record<string, unknown> = {}) {
    super();
    this.config = parseAutoencoderTinyConfig(config as Record<string, unknown>);
    this.encoder = this.child('encoder', new Half(encoderLayers(this.config)));
    this.decoder = this.child('decoder', new Half(decoderLayers(this.config)));
  }

  get downscale(): number {
    return 2 ** (this.config.num_encoder_blocks.length - 1);
  }

  /** x in [0, 1] → latent. */
  encode(x: Tensor): Tensor {
    return this.encoder.layers.forward(x);
  }

  /** latent → image, clamped to [0, 1] as taesd's decoder output is used. */
  decode(z: Tensor, { clamp = true }: { clamp?: boolean } = {}): Tensor {
    return scope(() => {
      // taesd's Clamp layer: tanh(z / 3) * 3.
      const zc = z.div(3).tanh().mul(3);
      const y = this.decoder.layers.forward(zc);
      return clamp ? y.clamp(0, 1) : y;
    });
  }

  forward(x: Tensor): Tensor {
    using z = this.encode(x);
    return this.decode(z);
  }
}

/** Renames keys of the original taesd files (`N.…` per half) to this module's layout. */
export function taesdOriginalRename(half: 'encoder' | 'decoder'): (key: string) => string | null {
  return (key) => {
    const m = /^(\d+)\.(.*)$/.exec(key);
    if (m === null) return key;
    const n = Number(m[1]);
    // The decoder's index 0 is the parameter-free Clamp, which diffusers keeps outside `layers`.
    return `${half}.layers.${half === 'decoder' ? n - 1 : n}.${m[2]}`;
  };
}

/** Recognises a TAESD-family checkpoint from its keys and shapes (no config.json needed). */
export function inferTinyConfig(shapes: ReadonlyMap<string, number[]>): AutoencoderTinyConfig {
  const enc = [...shapes.keys()].filter((k) => k.startsWith('encoder.layers.'));
  const dec = [...shapes.keys()].filter((k) => k.startsWith('decoder.layers.'));
  if (enc.length === 0 && dec.length === 0)
    throw new ImmunizeError('E_CONFIG', 'not a TAESD-family checkpoint: no encoder.layers.* or decoder.layers.* keys');
  const c = { ...TINY_DEFAULTS };
  const maxIdx = (keys: string[], prefix: string) =>
    Math.max(...keys.map((k) => Number(k.slice(prefix.length).split('.')[0])));
  if (enc.length) {
    const last = maxIdx(enc, 'encoder.layers.');
    const w = shapes.get(`encoder.layers.${last}.weight`);
    if (w === undefined)
      throw new ImmunizeError(
        'E_CONFIG',
        `TAESD checkpoint: encoder.layers.${last}.weight (the latent projection) is missing`,
      );
    c.latent_channels = w[0]!;
  }
  if (dec.length) {
    const w = shapes.get('decoder.layers.0.weight');
    if (w !== undefined) c.latent_channels = w[1]!;
  }
  const width = shapes.get('encoder.layers.0.weight')?.[0] ?? shapes.get('decoder.layers.0.weight')?.[0] ?? 64;
  c.encoder_block_out_channels = c.encoder_block_out_channels.map(() => width);
  c.decoder_block_out_channels = c.decoder_block_out_channels.map(() => width);
  c.use_midblock_gn = [...shapes.keys()].some((k) => k.includes('.pool.'));
  return c;
}

/** The well-known variants, for docs and `immunize models list`. */
export const TAESD_VARIANTS: Record<string, { latentChannels: number; midblockGn: boolean; for: string }> = {
  taesd: { latentChannels: 4, midblockGn: false, for: 'Stable Diffusion 1.x/2.x' },
  taesdxl: { latentChannels: 4, midblockGn: false, for: 'SDXL' },
  taesd3: { latentChannels: 16, midblockGn: false, for: 'Stable Diffusion 3' },
  taef1: { latentChannels: 16, midblockGn: false, for: 'FLUX.1' },
  taef2: { latentChannels: 32, midblockGn: true, for: 'FLUX.2' },
};
