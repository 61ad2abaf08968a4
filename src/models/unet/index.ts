/** Stable Diffusion's UNet2DConditionModel (diffusers 0.14). See docs/models.md, "UNet". */
export { UNet2DConditionModel, type UNetForwardOptions } from './unet-2d-condition.js';
export {
  parseUNet2DConditionConfig,
  type UNet2DConditionConfig,
  type DownBlockType,
  type UpBlockType,
} from './config.js';
export { loadUNet, type LoadUNetOptions } from './load.js';
export { Timesteps, TimestepEmbedding, timestepEmbedding, timestepsForBatch } from './embeddings.js';
export { CrossAttention, BasicTransformerBlock, Transformer2DModel, FeedForward, attention } from './attention.js';
export {
  DownBlock2D,
  CrossAttnDownBlock2D,
  UpBlock2D,
  CrossAttnUpBlock2D,
  UNetMidBlock2DCrossAttn,
  UNetDownBlock,
  UNetUpBlock,
} from './blocks.js';
