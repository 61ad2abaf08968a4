// A TAESD-shaped autoencoder with 8 channels and seeded random weights: the real architecture, tiny.
import { AutoencoderTiny } from '../../src/models/autoencoder-tiny.js';
import { Generator, noGrad, randn, scope, type Tensor } from '../../src/torch/index.js';

/** Weights randn(seed) × `scale` (a smaller scale keeps deeper stacks from saturating). */
export function tinyTaesd(seed: number, scale = 0.3): AutoencoderTiny {
  const m = new AutoencoderTiny({
    latent_channels: 4,
    encoder_block_out_channels: [8, 8, 8, 8],
    decoder_block_out_channels: [8, 8, 8, 8],
    num_encoder_blocks: [1, 1, 1, 1],
    num_decoder_blocks: [1, 1, 1, 1],
  });
  const g = new Generator({ seed });
  const w = new Map<string, Tensor>(
    [...m.stateShapes()].map(([k, s]) => [k, noGrad(() => scope(() => randn(s, { generator: g }).mul(scale)))]),
  );
  m.loadStateDict(w);
  for (const t of w.values()) t.dispose();
  return m;
}
