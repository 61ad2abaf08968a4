/**
 * Timestep embeddings of diffusers 0.14 (`embeddings.py`): the sinusoidal `Timesteps` projection
 * (no weights) and the `TimestepEmbedding` MLP (linear_1 → act → linear_2 [→ post_act]).
 */
import { ArgumentError, describe } from '../../errors.js';
import { Linear, activation } from '../../nn/layers.js';
import { Module } from '../../nn/module.js';
import { F, arange, cat, isTensor, scope, tensor, type Device, type Tensor } from '../../torch/index.js';

/**
 * get_timestep_embedding (DDPM's sinusoidal position embedding, diffusers 0.14):
 *   half = dim / 2; freqs = exp(−ln(max_period) · arange(half) / (half − shift))
 *   args = t.float()[:, None] · freqs[None]; emb = [sin(args), cos(args)]  ([cos, sin] when flipped)
 * The op sequence (float32 arange, two scalar ops, exp) is diffusers' own so the result is
 * bit-identical; an odd `dim` is zero-padded by one column.
 */
export function timestepEmbedding(
  timesteps: Tensor,
  dim: number,
  o: { flipSinToCos: boolean; downscaleFreqShift: number; scale?: number; maxPeriod?: number },
): Tensor {
  if (timesteps.ndim !== 1)
    throw new ArgumentError(
      `timestepEmbedding: timesteps should be 1-d but have shape [${timesteps.shape.join(', ')}]`,
    );
  const half = Math.floor(dim / 2);
  return scope(() => {
    const exponent = arange(0, half, 1, { dtype: 'float32', device: timesteps.device })
      .mul(-Math.log(o.maxPeriod ?? 10000))
      .div(half - o.downscaleFreqShift);
    let args = timesteps.unsqueeze(1).to('float32').mul(exponent.exp().unsqueeze(0));
    if ((o.scale ?? 1) !== 1) args = args.mul(o.scale!);
    const [sin, cos] = [args.sin(), args.cos()];
    const emb = o.flipSinToCos ? cat([cos, sin], -1) : cat([sin, cos], -1);
    return dim % 2 === 1 ? F.pad(emb, [0, 1, 0, 0]) : emb;
  });
}

/**
 * A UNet's `timestep` argument as a 1-d tensor of `batch` entries, as diffusers' forward does:
 * a number becomes [t] (int64 when integral, float64 otherwise — both end as float32 in the
 * embedding), a 0-d tensor gets a dim, and one value is broadcast to the batch.
 */
export function timestepsForBatch(timestep: number | Tensor, batch: number, device: Device): Tensor {
  if (!isTensor(timestep)) {
    if (typeof timestep !== 'number' || !Number.isFinite(timestep))
      throw new ArgumentError(
        `UNet2DConditionModel: timestep should be a finite number or a tensor but received ${describe(timestep)}`,
      );
    return scope(() =>
      tensor(new Float64Array([timestep]), [1], {
        dtype: Number.isInteger(timestep) ? 'int64' : 'float64',
        device,
      }).expand(batch),
    );
  }
  const n = timestep.ndim === 0 ? 1 : timestep.ndim === 1 ? timestep.shape[0]! : -1;
  if (n !== 1 && n !== batch) {
    throw new ArgumentError(
      `UNet2DConditionModel: timestep tensor should be 0-d or have 1 or ${batch} (batch) entries but has shape [${timestep.shape.join(', ')}]`,
    );
  }
  return scope(() => {
    const t = timestep.ndim === 0 ? timestep.unsqueeze(0) : timestep;
    return (t.device === device ? t : t.to(device)).expand(batch);
  });
}

/** diffusers' `Timesteps` module: the sinusoidal projection, no parameters. */
export class Timesteps extends Module {
  constructor(
    readonly numChannels: number,
    readonly flipSinToCos: boolean,
    readonly downscaleFreqShift: number,
  ) {
    super();
  }
  forward(timesteps: Tensor): Tensor {
    return timestepEmbedding(timesteps, this.numChannels, {
      flipSinToCos: this.flipSinToCos,
      downscaleFreqShift: this.downscaleFreqShift,
    });
  }
}

/** diffusers' `TimestepEmbedding`: linear_1 → act → linear_2, then the optional post-activation. */
export class TimestepEmbedding extends Module {
  readonly linear1: Linear;
  readonly linear2: Linear;
  readonly #act: (x: Tensor) => Tensor;
  readonly #postAct: ((x: Tensor) => Tensor) | null;
  constructor(inChannels: number, timeEmbedDim: number, o: { act?: string; postAct?: string | null } = {}) {
    super();
    this.linear1 = this.child('linear_1', new Linear(inChannels, timeEmbedDim));
    this.linear2 = this.child('linear_2', new Linear(timeEmbedDim, timeEmbedDim));
    this.#act = activation(o.act ?? 'silu');
    this.#postAct = o.postAct ? activation(o.postAct) : null;
  }
  forward(sample: Tensor): Tensor {
    return scope(() => {
      const h = this.linear2.forward(this.#act(this.linear1.forward(sample)));
      return this.#postAct ? this.#postAct(h) : h;
    });
  }
}
