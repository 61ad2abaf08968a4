/**
 * CLIP image–prompt similarity: the cosine between CLIP's projected image and text embeddings
 * (Radford et al. 2021), as openai/CLIP computes it (`encode_image`, `encode_text`, each
 * L2-normalised, then a dot product). The photoguard paper uses it to measure how well an edit
 * follows its prompt. `clipScore` is Hessel et al.'s CLIPScore, 100·max(cos, 0) (arXiv:2104.08718).
 *
 *   const scorer = await CLIPScorer.load();                          // openai/clip-vit-large-patch14
 *   const cos = noGrad(() => scorer.similarity(images, ['a cat']));  // [N images, 1 prompt]
 *   scorer.dispose();
 */
import { ArgumentError, ImmunizeError, describe } from '../errors.js';
import {
  CLIPModel,
  DEFAULT_CLIP_MODEL,
  loadCLIPModelFromPath,
  resolveCLIPFolder,
  type LoadCLIPOptions,
} from '../models/clip/clip-model.js';
import { clipPreprocess, type CLIPPreprocessOptions } from '../models/clip/image-processor.js';
import { CLIPTokenizer } from '../models/clip/tokenizer.js';
import { isTensor, noGrad, scope, type Tensor } from '../torch/index.js';

/** Cosine similarity of every row of a [N, D] with every row of b [M, D]: [N, M]. */
export function cosineSimilarityMatrix(a: Tensor, b: Tensor): Tensor {
  for (const [name, t] of [
    ['a', a],
    ['b', b],
  ] as const) {
    if (!isTensor(t))
      throw new ArgumentError(
        `cosineSimilarityMatrix: expected ${name} to be a Tensor [N, D] but received ${describe(t)}`,
      );
    if (t.ndim !== 2)
      throw new ImmunizeError(
        'E_SHAPE',
        `cosineSimilarityMatrix: expected ${name} of shape [N, D] but received [${t.shape.join(', ')}]`,
      );
  }
  if (a.shape[1] !== b.shape[1])
    throw new ImmunizeError(
      'E_SHAPE',
      `cosineSimilarityMatrix: embedding sizes differ (${a.shape[1]} and ${b.shape[1]})`,
    );
  return scope(() => a.div(a.norm(2, 1, true)).matmul(b.div(b.norm(2, 1, true)).transpose(0, 1)));
}

export interface CLIPScorerOptions {
  preprocess?: CLIPPreprocessOptions;
}

/** A CLIP model with its tokenizer and preprocessing, for image–prompt similarities. */
export class CLIPScorer implements Disposable {
  constructor(
    readonly model: CLIPModel,
    readonly tokenizer: CLIPTokenizer,
    readonly options: CLIPScorerOptions = {},
  ) {}

  /** Loads model and tokenizer from a folder or a hub repo id (default openai/clip-vit-large-patch14). */
  static async load(
    spec: string = DEFAULT_CLIP_MODEL,
    o: LoadCLIPOptions & CLIPScorerOptions = {},
  ): Promise<CLIPScorer> {
    const folder = await resolveCLIPFolder(spec, o.hub ?? {});
    const tokenizer = CLIPTokenizer.fromFolder(folder);
    const model = loadCLIPModelFromPath(folder, o);
    return new CLIPScorer(model, tokenizer, { preprocess: o.preprocess });
  }

  /** Projected image embeddings [N, P] (not normalised) of images [N, 3, H, W] in [0, 1]. */
  imageEmbeddings(images: Tensor): Tensor {
    return scope(() => {
      const w = this.model.visualProjection.weight.t;
      return this.model.getImageFeatures(
        clipPreprocess(images, this.options.preprocess).to({ dtype: w.dtype, device: w.device }),
      );
    });
  }

  /** Projected text embeddings [M, P] (not normalised) of prompts (truncated to the context length). */
  textEmbeddings(prompts: readonly string[]): Tensor {
    if (!Array.isArray(prompts) || prompts.length === 0)
      throw new ArgumentError(`CLIPScorer: expected a non-empty array of prompts but received ${describe(prompts)}`);
    return scope(() => {
      const max = this.model.config.textConfig.max_position_embeddings;
      const ids = this.tokenizer.inputIdsTensor(prompts, {
        maxLength: max,
        padding: 'max_length',
        truncation: true,
        device: this.model.logitScale.t.device,
      });
      return this.model.getTextFeatures(ids);
    });
  }

  /** Cosine similarity [N images, M prompts]. */
  similarity(images: Tensor, prompts: readonly string[]): Tensor {
    return noGrad(() =>
      scope(() => cosineSimilarityMatrix(this.imageEmbeddings(images), this.textEmbeddings(prompts))),
    );
  }

  /** CLIPScore 100·max(cos, 0) [N, M] (Hessel et al. 2021 with w = 100). */
  clipScore(images: Tensor, prompts: readonly string[]): Tensor {
    return scope(() => this.similarity(images, prompts).clampMin(0).mul(100));
  }

  dispose(): void {
    this.model.dispose();
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
}
