/**
 * A tiny random-weight WhisperForConditionalGeneration for the automatic-speech-recognition pipeline:
 * the encoder/merged-decoder pair, Whisper's feature extractor settings, a byte-level BPE tokenizer
 * with Whisper's special tokens, and a generation config under which a random model writes a short
 * plain-text transcript (no timestamps, no special tokens, never empty).
 */
import { ValidationError } from '../../errors.js'
import type { TinyModelInfo, TinyModelOptions } from './options.js'
import { TINY_DEFAULTS } from './tiny-defaults.js'
import { resolveTinyOptions } from './tiny-options.js'
import {
  WHISPER_FRAMES, WHISPER_MEL_BINS, WHISPER_PROMPT_LENGTH, WHISPER_SOURCE_POSITIONS,
  whisperDecoderGraph, whisperEncoderGraph, whisperEosPosition
} from './whisper-graphs.js'
import {
  MIN_WHISPER_VOCAB, WHISPER_LANGUAGES, buildWhisperTextVocab, unprintableByteTokens,
  whisperTokenIds, whisperTokenizerConfig, whisperTokenizerJson, type WhisperTokenIds
} from './whisper-tokenizer.js'
import { writeModelFiles } from './write-model-files.js'

/** Defaults: 51865 tokens give every special token the id it has in openai/whisper-tiny. */
export const WHISPER_DEFAULTS: Readonly<Required<TinyModelOptions>> = TINY_DEFAULTS.whisper

const SAMPLING_RATE = 16000
const HOP_LENGTH = 160
const CHUNK_LENGTH_S = 30

/** `config.json`. */
export function whisperConfig (o: Required<TinyModelOptions>, ids: WhisperTokenIds): object {
  return {
    architectures: ['WhisperForConditionalGeneration'],
    model_type: 'whisper',
    is_encoder_decoder: true,
    d_model: o.hiddenSize,
    encoder_layers: o.numLayers,
    decoder_layers: o.numLayers,
    num_hidden_layers: o.numLayers,
    encoder_attention_heads: o.numHeads,
    decoder_attention_heads: o.numHeads,
    encoder_ffn_dim: 4 * o.hiddenSize,
    decoder_ffn_dim: 4 * o.hiddenSize,
    num_mel_bins: WHISPER_MEL_BINS,
    max_source_positions: WHISPER_SOURCE_POSITIONS,
    max_target_positions: o.maxPositions,
    vocab_size: o.vocabSize,
    activation_function: 'gelu',
    scale_embedding: false,
    tie_word_embeddings: true,
    use_cache: true,
    bos_token_id: ids.endOfText,
    eos_token_id: ids.endOfText,
    pad_token_id: ids.endOfText,
    decoder_start_token_id: ids.startOfTranscript,
    begin_suppress_tokens: [ids.space, ids.endOfText],
    torch_dtype: 'float32',
    ipfs_accelerate_tiny: { family: 'whisper', seed: o.seed, eos_position: whisperEosPosition(o.maxPositions) }
  }
}

/**
 * `generation_config.json`. Timestamps, control tokens and unprintable single bytes are suppressed:
 * a random model would otherwise pick them as readily as text (see {@link whisperEosPosition} for why
 * it still ends).
 */
export function whisperGenerationConfig (o: Required<TinyModelOptions>, ids: WhisperTokenIds): object {
  const controls = [ids.startOfTranscript, ...Object.values(ids.languages), ids.translate, ids.transcribe, ids.startOfLm, ids.startOfPrev, ids.noCaptions, ids.noTimestamps]
  const timestamps = Array.from({ length: o.vocabSize - ids.firstTimestamp }, (_, k) => ids.firstTimestamp + k)
  return {
    bos_token_id: ids.endOfText,
    decoder_start_token_id: ids.startOfTranscript,
    eos_token_id: ids.endOfText,
    pad_token_id: ids.endOfText,
    is_multilingual: true,
    lang_to_id: Object.fromEntries(WHISPER_LANGUAGES.map(code => [`<|${code}|>`, ids.languages[code]])),
    task_to_id: { translate: ids.translate, transcribe: ids.transcribe },
    no_timestamps_token_id: ids.noTimestamps,
    prev_sot_token_id: ids.startOfPrev,
    max_initial_timestamp_index: 50,
    return_timestamps: false,
    max_length: o.maxPositions,
    begin_suppress_tokens: [ids.space, ids.endOfText],
    suppress_tokens: [...unprintableByteTokens(), ...controls, ...timestamps]
  }
}

/** `preprocessor_config.json`: Whisper's log-mel front end (80 bins, 16 kHz, 25 ms windows every 10 ms, 30 s). */
export function whisperPreprocessorConfig (): object {
  return {
    processor_class: 'WhisperProcessor',
    feature_extractor_type: 'WhisperFeatureExtractor',
    feature_size: WHISPER_MEL_BINS,
    sampling_rate: SAMPLING_RATE,
    hop_length: HOP_LENGTH,
    n_fft: 400,
    chunk_length: CHUNK_LENGTH_S,
    n_samples: CHUNK_LENGTH_S * SAMPLING_RATE,
    nb_max_frames: WHISPER_FRAMES,
    padding_side: 'right',
    padding_value: 0,
    return_attention_mask: false
  }
}

/**
 * Writes a tiny Whisper (automatic-speech-recognition) into `dir`: `config.json`,
 * `generation_config.json`, `preprocessor_config.json`, `tokenizer.json`, `tokenizer_config.json`,
 * `onnx/encoder_model.onnx` and `onnx/decoder_model_merged.onnx`.
 * `vocabSize` counts every token (text and special); `maxPositions` is `max_target_positions`.
 * @throws ValidationError for out-of-range options (`vocabSize` below {@link MIN_WHISPER_VOCAB},
 * `maxPositions` below 8, odd head size).
 */
export async function buildWhisper (dir: string, options: TinyModelOptions = {}): Promise<TinyModelInfo> {
  const o = resolveTinyOptions(options, WHISPER_DEFAULTS, { minVocabSize: MIN_WHISPER_VOCAB, minPositions: WHISPER_PROMPT_LENGTH + 4 })
  if (o.hiddenSize % 2 !== 0) throw ValidationError.field('hiddenSize', `must be even (sinusoidal positions use sine/cosine pairs), got ${o.hiddenSize}`)
  if (o.hiddenSize < 4) throw ValidationError.field('hiddenSize', `must be at least 4, got ${o.hiddenSize}`)
  const ids = whisperTokenIds(o.vocabSize)
  const files = await writeModelFiles(dir, {
    'config.json': whisperConfig(o, ids),
    'generation_config.json': whisperGenerationConfig(o, ids),
    'preprocessor_config.json': whisperPreprocessorConfig(),
    'tokenizer.json': whisperTokenizerJson(buildWhisperTextVocab(o.vocabSize), o.vocabSize),
    'tokenizer_config.json': whisperTokenizerConfig(o.maxPositions),
    'onnx/encoder_model.onnx': whisperEncoderGraph(o),
    'onnx/decoder_model_merged.onnx': whisperDecoderGraph(o, ids)
  })
  return { family: 'whisper', dir, files, task: 'automatic-speech-recognition', options: o }
}
