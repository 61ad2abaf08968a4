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

/** A two-level UNet2DConditionModel (8/16 channels, one cross-attention level, 12-wide context). */
export const tinyUNet = {
  _class_name: 'UNet2DConditionModel',
  block_out_channels: [8, 16],
  down_block_types: ['CrossAttnDownBlock2D', 'DownBlock2D'],
  up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D'],
  layers_per_block: 1,
  norm_num_groups: 4,
  attention_head_dim: 2,
  cross_attention_dim: 12,
  in_channels: 4,
  out_channels: 4,
  sample_size: 8,
};

/** A two-layer CLIPTextModel (width 8, 2 heads, 6 positions, a 20-token vocabulary). */
export const tinyCLIP = {
  architectures: ['CLIPTextModel'],
  vocab_size: 20,
  hidden_size: 8,
  intermediate_size: 12,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  max_position_embeddings: 6,
  hidden_act: 'quick_gelu',
  layer_norm_eps: 1e-5,
};
