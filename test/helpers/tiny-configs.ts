// Tiny diffusers configs shared by the model tests: small enough for a 2-core machine.

/** A one-level AutoencoderKL (8 channels, 4 latent channels, 4 norm groups). */
export const tinyKL = {
  _class_name: 'AutoencoderKL',
  block_out_channels: [8],
  down_block_types: ['DownEncoderBlock2D'],
  up_block_types: ['UpDecoderBlock2D'],
  layers_per_block: 1,
  latent_channels: 4,
  norm_num_groups: 4,
};

/** The same with two levels (8/16 channels), so that there is a downsampler and an upsampler. */
export const tinyKL2 = {
  ...tinyKL,
  block_out_channels: [8, 16],
  down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D'],
  up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D'],
};
