/**
 * A tiny random-weight ViTForImageClassification for the image-classification pipeline: 224 x 224
 * images in 32 x 32 patches, pre-norm encoder, final layer norm and a linear classifier on the class
 * token over a handful of readable ImageNet-style labels.
 *
 * The image geometry is fixed (it is what the seed's `(1, 3, 224, 224)` examples feed), so ViT has no
 * use for `vocabSize` and `maxPositions`: they are reported as the label count and the patch count + 1.
 */
import { GraphBuilder } from './onnx-graph.js'
import type { TinyModelInfo, TinyModelOptions } from './options.js'
import { VIT_DEFAULTS } from './tiny-defaults.js'
import { resolveTinyOptions } from './tiny-options.js'
import { layerNorm, linear, preNormBlock } from './transformer-layers.js'
import { classToken, patchCount, patchEmbedding } from './vision-embeddings.js'
import { writeModelFiles } from './write-model-files.js'

export { VIT_DEFAULTS } from './tiny-defaults.js'

/** Input side in pixels. */
export const VIT_IMAGE_SIZE = 224
/** Patch side in pixels: 7 x 7 patches. */
export const VIT_PATCH_SIZE = 32
/** Class names, index = class id. */
export const VIT_LABELS: readonly string[] = Object.freeze([
  'tabby cat', 'Egyptian cat', 'tiger cat', 'golden retriever', 'goldfish',
  'sports car', 'airliner', 'banana', 'pizza', 'daisy'
])

const LAYER_NORM_EPS = 1e-12
/** Wider classifier weights so that class probabilities are visibly different from uniform. */
const CLASSIFIER_STD = 0.5

/** The ONNX graph: `pixel_values` `[B, 3, 224, 224]` -> `logits` `[B, labels]`. */
export function vitGraph (o: Required<TinyModelOptions>): Uint8Array {
  const H = o.hiddenSize
  const g = new GraphBuilder('tiny-vit', o.seed)
  const pixels = g.input('pixel_values', 'float32', ['batch_size', 3, VIT_IMAGE_SIZE, VIT_IMAGE_SIZE])
  let hidden = patchEmbedding(g, pixels, { imageSize: VIT_IMAGE_SIZE, patchSize: VIT_PATCH_SIZE, hidden: H, name: 'vit.embeddings', convBias: true })
  for (let i = 0; i < o.numLayers; i++) {
    hidden = preNormBlock(g, hidden, { hidden: H, numHeads: o.numHeads, innerDim: 4 * H, name: `vit.encoder.layer.${i}`, epsilon: LAYER_NORM_EPS }).hidden
  }
  const pooled = classToken(g, layerNorm(g, hidden, H, 'vit.layernorm', LAYER_NORM_EPS))
  g.op('Identity', [linear(g, pooled, H, VIT_LABELS.length, 'classifier', { std: CLASSIFIER_STD })], {}, 'logits')
  g.output('logits', 'float32', ['batch_size', VIT_LABELS.length])
  return g.toBytes()
}

/** `config.json` of the tiny ViT, with `id2label` / `label2id`. */
export function vitConfig (o: Required<TinyModelOptions>): object {
  return {
    architectures: ['ViTForImageClassification'],
    model_type: 'vit',
    hidden_size: o.hiddenSize,
    num_hidden_layers: o.numLayers,
    num_attention_heads: o.numHeads,
    intermediate_size: 4 * o.hiddenSize,
    hidden_act: 'gelu',
    image_size: VIT_IMAGE_SIZE,
    patch_size: VIT_PATCH_SIZE,
    num_channels: 3,
    qkv_bias: true,
    layer_norm_eps: LAYER_NORM_EPS,
    id2label: Object.fromEntries(VIT_LABELS.map((label, id) => [String(id), label])),
    label2id: Object.fromEntries(VIT_LABELS.map((label, id) => [label, id])),
    torch_dtype: 'float32',
    ipfs_accelerate_tiny: { family: 'vit', seed: o.seed }
  }
}

/** `preprocessor_config.json`: resize to 224 x 224, rescale by 1/255, normalise with mean = std = 0.5. */
export function vitPreprocessorConfig (): object {
  return {
    image_processor_type: 'ViTImageProcessor',
    do_resize: true,
    size: { height: VIT_IMAGE_SIZE, width: VIT_IMAGE_SIZE },
    resample: 2,
    do_rescale: true,
    rescale_factor: 1 / 255,
    do_normalize: true,
    image_mean: [0.5, 0.5, 0.5],
    image_std: [0.5, 0.5, 0.5]
  }
}

/**
 * Writes a tiny ViT (image-classification) into `dir`.
 * @throws ValidationError when an option is out of range.
 */
export async function buildVit (dir: string, options?: TinyModelOptions): Promise<TinyModelInfo> {
  const resolved = resolveTinyOptions(options, VIT_DEFAULTS)
  const o = { ...resolved, vocabSize: VIT_LABELS.length, maxPositions: patchCount(VIT_IMAGE_SIZE, VIT_PATCH_SIZE) + 1 }
  const files = await writeModelFiles(dir, {
    'config.json': vitConfig(o),
    'preprocessor_config.json': vitPreprocessorConfig(),
    'onnx/model.onnx': vitGraph(o)
  })
  return { family: 'vit', dir, files, task: 'image-classification', options: o }
}
