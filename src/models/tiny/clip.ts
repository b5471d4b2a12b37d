/**
 * A tiny random-weight CLIPModel for the zero-shot-image-classification pipeline, both towers in one
 * `onnx/model.onnx`: `input_ids`, `attention_mask`, `pixel_values` in; `logits_per_image`,
 * `logits_per_text`, `text_embeds`, `image_embeds` out. The text tower is causal and masks padding,
 * and pools at the end token (`argmax(input_ids)`, which works because the end token has the highest
 * id); the vision tower is a pre-layernorm ViT pooled at the class token. Both project to
 * `projection_dim` (= hiddenSize) and are L2-normalised before the scaled cosine similarity.
 *
 * Images are 224 x 224 in 32 x 32 patches: the size the seed's examples use, and only 50 tokens.
 * `maxPositions` is the text length (77 in real CLIP).
 */
import { GraphBuilder } from './onnx-graph.js'
import type { TinyModelInfo, TinyModelOptions } from './options.js'
import { CLIP_DEFAULTS } from './tiny-defaults.js'
import { resolveTinyOptions } from './tiny-options.js'
import { causalBias, dimOf, layerNorm, linear, paddingBias, preNormBlock, rangeTo } from './transformer-layers.js'
import { classToken, patchEmbedding } from './vision-embeddings.js'
import { MAX_CLIP_VOCAB, MIN_CLIP_VOCAB, buildClipVocabulary, clipTokenizerConfig, clipTokenizerJson } from './clip-tokenizer.js'
import { writeModelFiles } from './write-model-files.js'

export { CLIP_DEFAULTS } from './tiny-defaults.js'

export const CLIP_IMAGE_SIZE = 224
export const CLIP_PATCH_SIZE = 32
/** `exp(logit_scale)` with CLIP's initial `logit_scale = ln(1 / 0.07)`. */
export const CLIP_LOGIT_SCALE = 1 / 0.07
const LAYER_NORM_EPS = 1e-5
const IMAGE_MEAN = [0.48145466, 0.4578275, 0.40821073]
const IMAGE_STD = [0.26862954, 0.26130258, 0.27577711]

function textTower (g: GraphBuilder, o: Required<TinyModelOptions>): string {
  const H = o.hiddenSize
  const inputIds = g.input('input_ids', 'int64', ['text_batch_size', 'sequence_length'])
  const attentionMask = g.input('attention_mask', 'int64', ['text_batch_size', 'sequence_length'])
  const length = dimOf(g, inputIds, 1)
  const tokens = g.op('Gather', [g.weight('text_model.embeddings.token_embedding.weight', [o.vocabSize, H]), inputIds])
  const positions = g.op('Gather', [g.weight('text_model.embeddings.position_embedding.weight', [o.maxPositions, H]), rangeTo(g, length)])
  let hidden = g.op('Add', [tokens, positions])
  const bias = g.op('Add', [causalBias(g, length, length), paddingBias(g, attentionMask)])
  for (let i = 0; i < o.numLayers; i++) {
    hidden = preNormBlock(g, hidden, { hidden: H, numHeads: o.numHeads, innerDim: 4 * H, name: `text_model.encoder.layers.${i}`, bias, epsilon: LAYER_NORM_EPS }).hidden
  }
  hidden = layerNorm(g, hidden, H, 'text_model.final_layer_norm', LAYER_NORM_EPS)
  // ArgMax has no int64 kernel in every runtime; ids are far below 2^24, so float is exact.
  const endIndex = g.op('ArgMax', [g.op('Cast', [inputIds], { to: 1 })], { axis: -1, keepdims: 1 })
  const pooled = g.op('GatherND', [hidden, endIndex], { batch_dims: 1 })
  return linear(g, pooled, H, H, 'text_projection', { bias: false })
}

function visionTower (g: GraphBuilder, o: Required<TinyModelOptions>): string {
  const H = o.hiddenSize
  const pixels = g.input('pixel_values', 'float32', ['image_batch_size', 3, CLIP_IMAGE_SIZE, CLIP_IMAGE_SIZE])
  let hidden = patchEmbedding(g, pixels, { imageSize: CLIP_IMAGE_SIZE, patchSize: CLIP_PATCH_SIZE, hidden: H, name: 'vision_model.embeddings', convBias: false })
  hidden = layerNorm(g, hidden, H, 'vision_model.pre_layrnorm', LAYER_NORM_EPS)
  for (let i = 0; i < o.numLayers; i++) {
    hidden = preNormBlock(g, hidden, { hidden: H, numHeads: o.numHeads, innerDim: 4 * H, name: `vision_model.encoder.layers.${i}`, epsilon: LAYER_NORM_EPS }).hidden
  }
  const pooled = layerNorm(g, classToken(g, hidden), H, 'vision_model.post_layernorm', LAYER_NORM_EPS)
  return linear(g, pooled, H, H, 'visual_projection', { bias: false })
}

function l2Normalize (g: GraphBuilder, x: string, output: string): string {
  return g.op('Div', [x, g.op('ReduceL2', [x], { axes: [-1], keepdims: 1 })], {}, output)
}

/** The ONNX graph of both towers and the similarity head. */
export function clipGraph (o: Required<TinyModelOptions>): Uint8Array {
  const g = new GraphBuilder('tiny-clip', o.seed)
  const textEmbeds = l2Normalize(g, textTower(g, o), 'text_embeds')
  const imageEmbeds = l2Normalize(g, visionTower(g, o), 'image_embeds')
  const similarity = g.op('MatMul', [textEmbeds, g.op('Transpose', [imageEmbeds], { perm: [1, 0] })])
  const perText = g.op('Mul', [similarity, g.scalar(CLIP_LOGIT_SCALE)], {}, 'logits_per_text')
  g.op('Transpose', [perText], { perm: [1, 0] }, 'logits_per_image')
  g.output('logits_per_image', 'float32', ['image_batch_size', 'text_batch_size'])
  g.output('logits_per_text', 'float32', ['text_batch_size', 'image_batch_size'])
  g.output('text_embeds', 'float32', ['text_batch_size', o.hiddenSize])
  g.output('image_embeds', 'float32', ['image_batch_size', o.hiddenSize])
  return g.toBytes()
}

/** `config.json` with `text_config` and `vision_config`. */
export function clipConfig (o: Required<TinyModelOptions>): object {
  const H = o.hiddenSize
  const tower = { hidden_size: H, intermediate_size: 4 * H, num_attention_heads: o.numHeads, num_hidden_layers: o.numLayers, hidden_act: 'gelu', layer_norm_eps: LAYER_NORM_EPS, projection_dim: H }
  return {
    architectures: ['CLIPModel'],
    model_type: 'clip',
    projection_dim: H,
    logit_scale_init_value: Math.log(CLIP_LOGIT_SCALE),
    text_config: {
      model_type: 'clip_text_model',
      ...tower,
      vocab_size: o.vocabSize,
      max_position_embeddings: o.maxPositions,
      bos_token_id: o.vocabSize - 2,
      eos_token_id: o.vocabSize - 1,
      pad_token_id: o.vocabSize - 1
    },
    vision_config: {
      model_type: 'clip_vision_model',
      ...tower,
      image_size: CLIP_IMAGE_SIZE,
      patch_size: CLIP_PATCH_SIZE,
      num_channels: 3
    },
    torch_dtype: 'float32',
    ipfs_accelerate_tiny: { family: 'clip', seed: o.seed }
  }
}

/** `preprocessor_config.json`: shortest edge to 224, centre crop 224, CLIP's mean/std. */
export function clipPreprocessorConfig (): object {
  return {
    image_processor_type: 'CLIPImageProcessor',
    feature_extractor_type: 'CLIPFeatureExtractor',
    do_resize: true,
    size: { shortest_edge: CLIP_IMAGE_SIZE },
    resample: 3,
    do_center_crop: true,
    crop_size: { height: CLIP_IMAGE_SIZE, width: CLIP_IMAGE_SIZE },
    do_rescale: true,
    rescale_factor: 1 / 255,
    do_normalize: true,
    image_mean: IMAGE_MEAN,
    image_std: IMAGE_STD,
    do_convert_rgb: true
  }
}

/**
 * Writes a tiny CLIP (zero-shot-image-classification) into `dir`.
 * @throws ValidationError when an option is out of range.
 */
export async function buildClip (dir: string, options?: TinyModelOptions): Promise<TinyModelInfo> {
  const o = resolveTinyOptions(options, CLIP_DEFAULTS, { minVocabSize: MIN_CLIP_VOCAB, maxVocabSize: MAX_CLIP_VOCAB, minPositions: 3 })
  const bpe = buildClipVocabulary(o.vocabSize)
  const files = await writeModelFiles(dir, {
    'config.json': clipConfig(o),
    'preprocessor_config.json': clipPreprocessorConfig(),
    'tokenizer.json': clipTokenizerJson(bpe),
    'tokenizer_config.json': clipTokenizerConfig(o.maxPositions),
    'onnx/model.onnx': clipGraph(o)
  })
  return { family: 'clip', dir, files, task: 'zero-shot-image-classification', options: o }
}
