/**
 * ONNX graphs of the tiny Whisper, shaped like Optimum's export that transformers.js drives:
 * - `encoder_model.onnx`: `input_features` [batch_size, 80, 3000] -> `last_hidden_state` [batch_size, 1500, d_model]
 *   (two Conv1d with GELU, the second of stride 2, sinusoidal positions, pre-norm blocks).
 * - `decoder_model_merged.onnx`: `input_ids`, `encoder_hidden_states` and `past_key_values.{i}.decoder|encoder.key|value`
 *   -> `logits` and `present.{i}.decoder|encoder.key|value`, used both for the first step (empty caches) and
 *   for cached steps.
 */
import { GraphBuilder } from './onnx-graph.js'
import type { TinyModelOptions } from './options.js'
import { causalBias, dimOf, feedForward, gelu, intScalar, layerNorm, linear, multiHeadAttention, splitHeads } from './transformer-layers.js'
import type { WhisperTokenIds } from './whisper-tokenizer.js'

/** Log-mel bins per frame of the encoder input. */
export const WHISPER_MEL_BINS = 80
/** Mel frames of a 30 s window; the stride-2 convolution halves them to `WHISPER_SOURCE_POSITIONS`. */
export const WHISPER_FRAMES = 3000
/** Encoder output frames (`max_source_positions`), 20 ms each. */
export const WHISPER_SOURCE_POSITIONS = 1500
/** Tokens transformers.js puts before the transcript of a multilingual model (start, language, task, no-timestamps). */
export const WHISPER_PROMPT_LENGTH = 4
/** Text tokens the random decoder writes after the prompt before it ends the transcript. */
export const WHISPER_TRANSCRIPT_TOKENS = 12
/** Slope of the end-of-text bias per position: large next to any random logit. */
const EOS_BIAS_SLOPE = 100

/**
 * Position whose logits predict `<|endoftext|>`: a random decoder has no reason to end a transcript, so
 * its end-of-text logit gets `(position - eosPosition + 0.5) * slope` added, which keeps it from
 * ending before this position (the transcript is never empty) and makes it end right here.
 */
export function whisperEosPosition (maxPositions: number): number {
  return Math.min(WHISPER_PROMPT_LENGTH - 1 + WHISPER_TRANSCRIPT_TOKENS, maxPositions - 2)
}

/** Whisper's fixed sinusoidal encoder positions, `[length, channels]`: sines in the first half, cosines in the second. */
export function whisperSinusoids (length: number, channels: number): Float32Array {
  const half = channels / 2
  const increment = Math.log(10000) / (half - 1)
  const out = new Float32Array(length * channels)
  for (let t = 0; t < length; t++) {
    for (let c = 0; c < half; c++) {
      const angle = t * Math.exp(-increment * c)
      out[t * channels + c] = Math.sin(angle)
      out[t * channels + half + c] = Math.cos(angle)
    }
  }
  return out
}

function conv1d (g: GraphBuilder, x: string, inChannels: number, outChannels: number, stride: number, name: string): string {
  // Scaled by fan-in (not the 0.02 of projections) so that the audio reaches the encoder output at
  // the strength of the unit-amplitude sinusoidal positions instead of drowning under them.
  const weight = g.weight(`${name}.weight`, [outChannels, inChannels, 3], 1 / Math.sqrt(inChannels * 3))
  const bias = g.weight(`${name}.bias`, [outChannels])
  return g.op('Conv', [x, weight, bias], { kernel_shape: [3], pads: [1, 1], strides: [stride] })
}

/** The audio encoder. */
export function whisperEncoderGraph (o: Required<TinyModelOptions>): Uint8Array {
  const H = o.hiddenSize
  const g = new GraphBuilder('tiny-whisper-encoder', o.seed)
  const features = g.input('input_features', 'float32', ['batch_size', WHISPER_MEL_BINS, WHISPER_FRAMES])
  const conv1 = gelu(g, conv1d(g, features, WHISPER_MEL_BINS, H, 1, 'encoder.conv1'))
  const conv2 = gelu(g, conv1d(g, conv1, H, H, 2, 'encoder.conv2'))
  const frames = g.op('Transpose', [conv2], { perm: [0, 2, 1] })
  const positions = g.init('encoder.embed_positions.weight', 'float32', [WHISPER_SOURCE_POSITIONS, H], whisperSinusoids(WHISPER_SOURCE_POSITIONS, H))
  let hidden = g.op('Add', [frames, positions])
  for (let i = 0; i < o.numLayers; i++) {
    const name = `encoder.layers.${i}`
    const attention = multiHeadAttention(g, { query: layerNorm(g, hidden, H, `${name}.self_attn_layer_norm`), hidden: H, numHeads: o.numHeads, name: `${name}.self_attn` })
    hidden = g.op('Add', [hidden, attention.output])
    hidden = g.op('Add', [hidden, feedForward(g, layerNorm(g, hidden, H, `${name}.final_layer_norm`), H, 4 * H, name)])
  }
  g.op('Identity', [layerNorm(g, hidden, H, 'encoder.layer_norm')], {}, 'last_hidden_state')
  g.output('last_hidden_state', 'float32', ['batch_size', WHISPER_SOURCE_POSITIONS, H])
  return g.toBytes()
}

/** The text decoder with self- and cross-attention caches. */
export function whisperDecoderGraph (o: Required<TinyModelOptions>, ids: WhisperTokenIds): Uint8Array {
  const H = o.hiddenSize
  const headDim = H / o.numHeads
  const g = new GraphBuilder('tiny-whisper-decoder', o.seed + 1)
  const inputIds = g.input('input_ids', 'int64', ['batch_size', 'decoder_sequence_length'])
  const encoder = g.input('encoder_hidden_states', 'float32', ['batch_size', 'encoder_sequence_length', H])
  // Only `batch_size` is filled in by transformers.js for the empty first-step caches; the head
  // count and head size must be fixed numbers, every other symbolic axis becomes 0.
  const pastDims = (length: string): Array<number | string> => ['batch_size', o.numHeads, length, headDim]
  // transformers.js sizes the empty first-step caches for batch 1 whatever the batch is (it takes the
  // batch from inputs the decoder does not get), so each cache is broadcast to the batch of input_ids:
  // a no-op for a filled cache, and [1, h, 0, d] -> [B, h, 0, d] for an empty one.
  const batchShape = g.op('Concat', [g.op('Slice', [g.op('Shape', [inputIds]), g.ints([0]), g.ints([1])]), g.ints([1, 1, 1])], { axis: 0 })
  const cacheInput = (name: string, length: string): string =>
    g.op('Expand', [g.input(name, 'float32', pastDims(length)), batchShape])
  const past = Array.from({ length: o.numLayers }, (_, i) => ({
    selfKey: cacheInput(`past_key_values.${i}.decoder.key`, 'past_decoder_sequence_length'),
    selfValue: cacheInput(`past_key_values.${i}.decoder.value`, 'past_decoder_sequence_length'),
    crossKey: cacheInput(`past_key_values.${i}.encoder.key`, 'encoder_sequence_length_out'),
    crossValue: cacheInput(`past_key_values.${i}.encoder.value`, 'encoder_sequence_length_out')
  }))

  const queryLength = dimOf(g, inputIds, 1)
  const pastLength = dimOf(g, past[0].selfKey, 2)
  const totalLength = g.op('Add', [pastLength, queryLength])
  const positionIds = g.op('Range', [pastLength, totalLength, intScalar(g, 1)])
  const embedTokens = g.weight('decoder.embed_tokens.weight', [o.vocabSize, H])
  const tokens = g.op('Gather', [embedTokens, inputIds])
  const positions = g.op('Gather', [g.weight('decoder.embed_positions.weight', [o.maxPositions, H]), positionIds])
  let hidden = g.op('Add', [tokens, positions])
  const causal = causalBias(g, queryLength, totalLength)
  const encoderLength = g.op('Unsqueeze', [dimOf(g, encoder, 1), g.ints([0])])

  for (let i = 0; i < o.numLayers; i++) {
    const name = `decoder.layers.${i}`
    const selfAttention = multiHeadAttention(g, {
      query: layerNorm(g, hidden, H, `${name}.self_attn_layer_norm`),
      hidden: H,
      numHeads: o.numHeads,
      name: `${name}.self_attn`,
      bias: causal,
      past: { key: past[i].selfKey, value: past[i].selfValue }
    })
    hidden = g.op('Add', [hidden, selfAttention.output])
    g.op('Identity', [selfAttention.key], {}, `present.${i}.decoder.key`)
    g.op('Identity', [selfAttention.value], {}, `present.${i}.decoder.value`)

    // Cross-attention keys/values depend only on the encoder output. On the first step the cache is
    // empty and they are projected here; afterwards the cache holds them and the concatenation's
    // first `encoder_sequence_length` rows are the cached ones, so no If node is needed.
    const cached = (pastTensor: string, part: 'k_proj' | 'v_proj'): string => {
      const fresh = splitHeads(g, linear(g, encoder, H, H, `${name}.encoder_attn.${part}`, { bias: part === 'v_proj' }), o.numHeads, headDim)
      const both = g.op('Concat', [pastTensor, fresh], { axis: 2 })
      return g.op('Slice', [both, g.ints([0]), encoderLength, g.ints([2])])
    }
    const crossKey = cached(past[i].crossKey, 'k_proj')
    const crossValue = cached(past[i].crossValue, 'v_proj')
    const cross = multiHeadAttention(g, {
      query: layerNorm(g, hidden, H, `${name}.encoder_attn_layer_norm`),
      hidden: H,
      numHeads: o.numHeads,
      name: `${name}.encoder_attn`,
      precomputed: { key: crossKey, value: crossValue }
    })
    hidden = g.op('Add', [hidden, cross.output])
    g.op('Identity', [crossKey], {}, `present.${i}.encoder.key`)
    g.op('Identity', [crossValue], {}, `present.${i}.encoder.value`)

    hidden = g.op('Add', [hidden, feedForward(g, layerNorm(g, hidden, H, `${name}.final_layer_norm`), H, 4 * H, name)])
  }

  // The output projection is tied to the token embedding, as in Whisper.
  const normed = layerNorm(g, hidden, H, 'decoder.layer_norm')
  const logits = g.op('MatMul', [normed, g.op('Transpose', [embedTokens], { perm: [1, 0] })])
  g.op('Add', [logits, eosBias(g, positionIds, o, ids.endOfText)], {}, 'logits')

  g.output('logits', 'float32', ['batch_size', 'decoder_sequence_length', o.vocabSize])
  for (let i = 0; i < o.numLayers; i++) {
    for (const part of ['key', 'value']) {
      g.output(`present.${i}.decoder.${part}`, 'float32', pastDims('present_decoder_sequence_length'))
      g.output(`present.${i}.encoder.${part}`, 'float32', pastDims('encoder_sequence_length_out'))
    }
  }
  return g.toBytes()
}

/** `[S, vocab]` bias: zero except the end-of-text column, see {@link whisperEosPosition}. */
function eosBias (g: GraphBuilder, positionIds: string, o: Required<TinyModelOptions>, endOfText: number): string {
  const position = g.op('Cast', [positionIds], { to: 1 })
  const offset = g.op('Sub', [position, g.scalar(whisperEosPosition(o.maxPositions) - 0.5)])
  const column = g.op('Unsqueeze', [g.op('Mul', [offset, g.scalar(EOS_BIAS_SLOPE)]), g.ints([1])])
  const oneHot = new Float32Array(o.vocabSize)
  oneHot[endOfText] = 1
  return g.op('Mul', [column, g.init('decoder.eos_bias_direction', 'float32', [o.vocabSize], oneHot)])
}
