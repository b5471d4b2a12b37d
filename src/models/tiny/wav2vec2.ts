/**
 * A tiny random-weight Wav2Vec2ForCTC for the automatic-speech-recognition pipeline, laid out like
 * facebook/wav2vec2-base-960h at a fraction of the width: a 7-layer convolutional feature encoder with
 * wav2vec2's kernels and strides (320 samples, 20 ms at 16 kHz, per frame), a grouped convolutional
 * position embedding, post-norm transformer layers and a CTC head over 32 characters.
 * `input_values` [batch_size, samples] -> `logits` [batch_size, frames, 32]; inputs shorter than 400
 * samples (25 ms) leave no frame and fail in the convolutions.
 */
import { CTC_BLANK_ID, CTC_VOCAB, ctcTokenizerConfig, ctcTokenizerJson, ctcVocabJson } from './ctc-tokenizer.js'
import { GraphBuilder } from './onnx-graph.js'
import type { TinyModelInfo, TinyModelOptions } from './options.js'
import { TINY_DEFAULTS } from './tiny-defaults.js'
import { resolveTinyOptions } from './tiny-options.js'
import { gelu, layerNorm, linear, postNormBlock } from './transformer-layers.js'
import { writeModelFiles } from './write-model-files.js'

/** Defaults; `vocabSize` is fixed at 32 and `maxPositions` is unused (positions come from a convolution). */
export const WAV2VEC2_DEFAULTS: Readonly<Required<TinyModelOptions>> = TINY_DEFAULTS.wav2vec2

/** Kernel widths of the feature encoder's convolutions (wav2vec2-base's). */
export const WAV2VEC2_CONV_KERNELS: readonly number[] = Object.freeze([10, 3, 3, 3, 3, 2, 2])
/** Their strides: 320 samples per output frame in all. */
export const WAV2VEC2_CONV_STRIDES: readonly number[] = Object.freeze([5, 2, 2, 2, 2, 2, 2])
/** Kernel width of the position convolution (128 in the base model; even, like it). */
const POSITION_KERNEL = 16
const LAYER_NORM_EPS = 1e-5
const SAMPLING_RATE = 16000

/** Frames the feature encoder makes of `samples` input samples (0 when the input is too short). */
export function wav2vec2FrameCount (samples: number): number {
  let length = samples
  for (let i = 0; i < WAV2VEC2_CONV_KERNELS.length; i++) {
    if (length < WAV2VEC2_CONV_KERNELS[i]) return 0
    length = Math.floor((length - WAV2VEC2_CONV_KERNELS[i]) / WAV2VEC2_CONV_STRIDES[i]) + 1
  }
  return length
}

/** The ONNX graph. Channels of the feature encoder equal `hiddenSize`. */
export function wav2vec2Graph (o: Required<TinyModelOptions>): Uint8Array {
  const H = o.hiddenSize
  const g = new GraphBuilder('tiny-wav2vec2', o.seed)
  const input = g.input('input_values', 'float32', ['batch_size', 'sequence_length'])
  let x = g.op('Unsqueeze', [input, g.ints([1])])
  let channels = 1
  for (let i = 0; i < WAV2VEC2_CONV_KERNELS.length; i++) {
    const kernel = WAV2VEC2_CONV_KERNELS[i]
    const name = `feature_extractor.conv_layers.${i}`
    // Fan-in scaling keeps the signal at unit scale through seven random convolutions.
    const weight = g.weight(`${name}.conv.weight`, [H, channels, kernel], 1 / Math.sqrt(channels * kernel))
    x = g.op('Conv', [x, weight], { kernel_shape: [kernel], strides: [WAV2VEC2_CONV_STRIDES[i]] })
    if (i === 0) {
      // wav2vec2-base's GroupNorm with one group per channel: normalisation over time, per channel.
      x = g.op('InstanceNormalization', [x, g.fill(`${name}.layer_norm.weight`, [H], 1), g.fill(`${name}.layer_norm.bias`, [H], 0)], { epsilon: { f: LAYER_NORM_EPS } })
    }
    x = gelu(g, x)
    channels = H
  }
  const frames = g.op('Transpose', [x], { perm: [0, 2, 1] })
  let hidden = linear(g, layerNorm(g, frames, H, 'feature_projection.layer_norm', LAYER_NORM_EPS), H, H, 'feature_projection.projection')

  // Convolutional relative positions: an even kernel padded by half on both sides gives one frame
  // too many, and the last one is dropped (wav2vec2's SamePad).
  const positionConv = g.op('Conv', [
    g.op('Transpose', [hidden], { perm: [0, 2, 1] }),
    g.weight('encoder.pos_conv_embed.conv.weight', [H, H / o.numHeads, POSITION_KERNEL], 1 / Math.sqrt(H / o.numHeads * POSITION_KERNEL)),
    g.weight('encoder.pos_conv_embed.conv.bias', [H])
  ], { kernel_shape: [POSITION_KERNEL], pads: [POSITION_KERNEL / 2, POSITION_KERNEL / 2], group: o.numHeads })
  const trimmed = g.op('Slice', [positionConv, g.ints([0]), g.ints([-1]), g.ints([2])])
  const positions = g.op('Transpose', [gelu(g, trimmed)], { perm: [0, 2, 1] })
  hidden = layerNorm(g, g.op('Add', [hidden, positions]), H, 'encoder.layer_norm', LAYER_NORM_EPS)

  for (let i = 0; i < o.numLayers; i++) {
    hidden = postNormBlock(g, hidden, { hidden: H, numHeads: o.numHeads, innerDim: 4 * H, name: `encoder.layers.${i}`, epsilon: LAYER_NORM_EPS })
  }
  g.op('Identity', [linear(g, hidden, H, CTC_VOCAB.length, 'lm_head')], {}, 'logits')
  g.output('logits', 'float32', ['batch_size', 'frames', CTC_VOCAB.length])
  return g.toBytes()
}

/** `config.json`. */
export function wav2vec2Config (o: Required<TinyModelOptions>): object {
  const layers = WAV2VEC2_CONV_KERNELS.length
  return {
    architectures: ['Wav2Vec2ForCTC'],
    model_type: 'wav2vec2',
    hidden_size: o.hiddenSize,
    num_hidden_layers: o.numLayers,
    num_attention_heads: o.numHeads,
    intermediate_size: 4 * o.hiddenSize,
    hidden_act: 'gelu',
    layer_norm_eps: LAYER_NORM_EPS,
    num_feat_extract_layers: layers,
    conv_dim: new Array(layers).fill(o.hiddenSize),
    conv_kernel: [...WAV2VEC2_CONV_KERNELS],
    conv_stride: [...WAV2VEC2_CONV_STRIDES],
    conv_bias: false,
    feat_extract_norm: 'group',
    feat_extract_activation: 'gelu',
    num_conv_pos_embeddings: POSITION_KERNEL,
    num_conv_pos_embedding_groups: o.numHeads,
    do_stable_layer_norm: false,
    inputs_to_logits_ratio: WAV2VEC2_CONV_STRIDES.reduce((a, b) => a * b, 1),
    vocab_size: CTC_VOCAB.length,
    pad_token_id: CTC_BLANK_ID,
    bos_token_id: 1,
    eos_token_id: 2,
    ctc_loss_reduction: 'sum',
    torch_dtype: 'float32',
    ipfs_accelerate_tiny: { family: 'wav2vec2', seed: o.seed }
  }
}

/** `preprocessor_config.json`: raw 16 kHz samples, normalised to zero mean and unit variance. */
export function wav2vec2PreprocessorConfig (): object {
  return {
    processor_class: 'Wav2Vec2Processor',
    feature_extractor_type: 'Wav2Vec2FeatureExtractor',
    feature_size: 1,
    sampling_rate: SAMPLING_RATE,
    do_normalize: true,
    padding_side: 'right',
    padding_value: 0,
    return_attention_mask: false
  }
}

/**
 * Writes a tiny Wav2Vec2 (automatic-speech-recognition, CTC) into `dir`: `config.json`,
 * `preprocessor_config.json`, `tokenizer.json`, `tokenizer_config.json`, `vocab.json` and `onnx/model.onnx`.
 * @throws ValidationError for out-of-range options (`vocabSize` other than 32).
 */
export async function buildWav2Vec2 (dir: string, options: TinyModelOptions = {}): Promise<TinyModelInfo> {
  const o = resolveTinyOptions(options, WAV2VEC2_DEFAULTS, { minVocabSize: CTC_VOCAB.length, maxVocabSize: CTC_VOCAB.length })
  const files = await writeModelFiles(dir, {
    'config.json': wav2vec2Config(o),
    'preprocessor_config.json': wav2vec2PreprocessorConfig(),
    'tokenizer.json': ctcTokenizerJson(),
    'tokenizer_config.json': ctcTokenizerConfig(),
    'vocab.json': ctcVocabJson(),
    'onnx/model.onnx': wav2vec2Graph(o)
  })
  return { family: 'wav2vec2', dir, files, task: 'automatic-speech-recognition', options: o }
}
