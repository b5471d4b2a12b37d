/**
 * `audio_transcription`: audio in, `{ text, confidence }` out, for encoder-decoder models (Whisper)
 * and CTC models (Wav2Vec2).
 * - Whisper: generated with the KV cache; confidence is the geometric mean of the probabilities the
 *   model gave each token of the text (re-scored in one teacher-forced pass over each window's sequence).
 * - CTC: greedy decoding; confidence is the mean, over frames that emit a token, of the frame's top
 *   probability (all frames when none emit).
 * Audio longer than one window (`chunk_length_s`, 30 s by default) is cut into overlapping windows as
 * Hugging Face's pipelines cut it (audio/chunks.ts): Whisper reads at most 30 s at a time, and a CTC
 * model's attention takes memory and time growing with the square of the audio's length (5 min took
 * 10 GB in one pass). Whisper windows are merged by transformers.js's own `_decode_asr`; CTC windows
 * keep the frames outside their overlaps, as the Python pipeline does. Confidence is then the same
 * average over the tokens (frames) the merged text is made of. CTC models refuse audio too short for
 * their convolutional feature encoder to make one frame, and the Whisper-only settings (`language`,
 * `max_new_tokens`).
 */
import { AutoModelForSpeechSeq2Seq, AutoModelForCTC, AutoProcessor, AutoTokenizer, Tensor } from '@huggingface/transformers'
import { AbortError, ValidationError } from '../../errors.js'
import { asObject, optionalInt, rejectUnknownKeys } from '../inputs/options.js'
import { describe } from '../inputs/token-ids.js'
import { readRawAudio, atRate } from '../inputs/audio-input.js'
import { readChunkSettings, whisperWindows, ctcWindows, keptFrames, DEFAULT_CHUNK_LENGTH_S, type ChunkSettings } from '../audio/chunks.js'
import { whisperLanguageCode } from '../inputs/whisper-languages.js'
import { softmax, argmax } from '../inputs/softmax.js'
import { loadParts, type TaskHandler, type LoadedModel, type RunContext } from './task-handler.js'

interface AudioRequest {
  samples: Float32Array
  maxNewTokens?: number
  /**
   * Whisper: the spoken language as a code (`en`), from a code, name or token the request gave; for
   * multilingual models English when missing (transformers.js does not detect it), undefined for
   * English-only ones.
   */
  language?: string
  /** Windows to cut the audio into when it is longer than one. */
  chunks: ChunkSettings
}

const KEYS = ['input_values', 'sampling_rate', 'audio', 'max_new_tokens', 'language', 'chunk_length_s', 'stride_length_s'] as const

/** Whisper's timestamp tokens run from 0.00 to 30.00 s in 0.02 s steps (as in `_decode_asr`). */
const WHISPER_TIMESTAMP_TOKENS = 1500

function isSeq2Seq (config: Record<string, unknown>): boolean {
  return config.is_encoder_decoder === true || config.model_type === 'whisper'
}

/**
 * The fewest samples a CTC model's convolutional feature encoder (config `conv_kernel` and
 * `conv_stride`, unpadded 1-D convolutions as in Wav2Vec2, HuBERT, WavLM) turns into at least one
 * frame: working back from one output frame, each layer needs (frames - 1) x stride + kernel inputs.
 * 400 samples (25 ms at 16 kHz) for Wav2Vec2. Undefined when the config does not describe the layers.
 */
export function minCtcSamples (config: Record<string, unknown>): number | undefined {
  const { conv_kernel: kernels, conv_stride: strides } = config
  if (!Array.isArray(kernels) || !Array.isArray(strides) || kernels.length !== strides.length) return undefined
  if (![...kernels, ...strides].every(v => Number.isInteger(v) && v > 0)) return undefined
  let frames = 1
  for (let l = kernels.length - 1; l >= 0; l--) frames = (frames - 1) * strides[l] + kernels[l]
  return frames
}

export class AudioTranscriptionTask implements TaskHandler<AudioRequest> {
  readonly task = 'audio_transcription' as const
  readonly batchable = false

  async load (ctx: Parameters<TaskHandler['load']>[0]): ReturnType<TaskHandler['load']> {
    const Model = isSeq2Seq(ctx.config) ? AutoModelForSpeechSeq2Seq : AutoModelForCTC
    const [model, processor, tokenizer] = await loadParts([
      Model.from_pretrained(ctx.dir, ctx.pretrained),
      AutoProcessor.from_pretrained(ctx.dir, { local_files_only: true }),
      AutoTokenizer.from_pretrained(ctx.dir, { local_files_only: true })
    ])
    return { model, processor, tokenizer }
  }

  private samplingRate (m: LoadedModel): number {
    const fe = m.processor?.feature_extractor?.config ?? m.processor?.config ?? {}
    return fe.sampling_rate ?? 16_000
  }

  async prepare (input: unknown, m: LoadedModel): Promise<{ value: AudioRequest, rows: number }> {
    const obj = asObject(input, typeof input === 'string' || input instanceof Uint8Array ? 'audio' : 'input_values')
    rejectUnknownKeys(obj, KEYS)
    const rate = this.samplingRate(m)
    const raw = await readRawAudio(obj, rate)
    if (!isSeq2Seq(m.config)) {
      for (const key of ['language', 'max_new_tokens']) {
        if (obj[key] !== undefined) throw ValidationError.field(key, `is not supported by CTC models such as wav2vec2 (${m.id})`)
      }
      // Whisper's bound serves here too: attention over a longer window grows with its square.
      const chunks = readChunkSettings(obj, DEFAULT_CHUNK_LENGTH_S)
      const samples = atRate(raw, rate)
      const min = minCtcSamples(m.config)
      if (min !== undefined && samples.length < min) {
        throw ValidationError.field(raw.field, `holds ${samples.length} samples; ${m.id} needs at least ${min} samples (${min / rate} s at ${rate} Hz)`)
      }
      return { value: { samples, chunks }, rows: 1 }
    }
    // Whisper's feature extractor pads or cuts every input to its window (`chunk_length`, 30 s).
    const chunks = readChunkSettings(obj, m.processor?.feature_extractor?.config?.chunk_length ?? DEFAULT_CHUNK_LENGTH_S)
    const value = { maxNewTokens: optionalInt(obj.max_new_tokens, 'max_new_tokens', 1, 448), language: whisperLanguage(obj.language, m), chunks }
    return { value: { samples: atRate(raw, rate), ...value }, rows: 1 }
  }

  async run (m: LoadedModel, items: AudioRequest[], ctx: RunContext = {}): Promise<Array<Record<string, unknown>>> {
    const out: Array<Record<string, unknown>> = []
    for (const item of items) out.push(isSeq2Seq(m.config) ? await this.seq2seq(m, item, ctx) : await this.ctc(m, item, ctx))
    return out
  }

  private async seq2seq (m: LoadedModel, item: AudioRequest, ctx: RunContext): Promise<Record<string, unknown>> {
    const rate = this.samplingRate(m)
    const windows = whisperWindows(item.samples.length, rate, item.chunks)
    if (windows.length === 1) {
      const { ids, tokens } = await this.whisperWindow(m, item.samples, item)
      const text = m.tokenizer.decode(ids, { skip_special_tokens: true }).trim()
      return { text, confidence: geometricMean(tokens.map(t => t.p)), tokens: tokens.length }
    }
    if (typeof m.tokenizer._decode_asr !== 'function' || typeof m.tokenizer.findLongestCommonSequence !== 'function') {
      throw new Error(`${m.id}: the tokenizer (${String(m.tokenizer?.constructor?.name)}) has no _decode_asr to merge windows with; a WhisperTokenizer is needed`)
    }
    const timestampBegin = Number(m.tokenizer.timestamp_begin)
    const fe = m.processor.feature_extractor.config
    const chunks: Array<{ tokens: number[], stride: [number, number, number] }> = []
    const texts: number[][] = []
    const scores: Array<Array<[number, number]>> = []
    for (const w of windows) {
      if (ctx.signal?.aborted === true) throw new AbortError('the transcription was aborted')
      const { ids, tokens } = await this.whisperWindow(m, item.samples.subarray(w.start, w.end), item)
      chunks.push({ tokens: ids, stride: w.stride })
      // The tokens `_decode_asr` merges: neither special nor timestamps (those would split the text).
      const text = tokens.filter(t => t.id < timestampBegin || t.id > timestampBegin + WHISPER_TIMESTAMP_TOKENS)
      if (text.length === 0) continue
      texts.push(text.map(t => t.id))
      // [window, probability] rides along as the "timestamp" of each token: findLongestCommonSequence
      // then splits the probabilities exactly where it splits the tokens, and since a window's index
      // never goes back, its timestamp-order checks pass wherever the plain merge matches.
      scores.push(text.map(t => [texts.length - 1, t.p]))
    }
    // transformers.js's pipeline merge, as its automatic-speech-recognition pipeline calls it.
    const [merged] = m.tokenizer._decode_asr(chunks, {
      time_precision: fe.chunk_length / m.config.max_source_positions,
      return_timestamps: false,
      force_full_sequences: false
    }) as [string]
    const kept = texts.length === 0 ? [] : m.tokenizer.findLongestCommonSequence(texts, scores)[1] as Array<[number, number]>
    return { text: merged.trim(), confidence: geometricMean(kept.map(([, p]) => p)), tokens: kept.length }
  }

  /**
   * One Whisper window: the generated sequence, and each of its non-special tokens with the probability
   * the model gave it in a teacher-forced pass over the sequence (logits[t] scores ids[t + 1]).
   */
  private async whisperWindow (m: LoadedModel, samples: Float32Array, item: AudioRequest): Promise<{ ids: number[], tokens: Array<{ id: number, p: number }> }> {
    const features = (await m.processor(samples)).input_features as Tensor
    const maxTarget = m.config.max_target_positions ?? 448
    const sequences = await m.model.generate({
      input_features: features,
      max_new_tokens: Math.min(item.maxNewTokens ?? 128, maxTarget - 4),
      ...(item.language !== undefined ? { language: item.language, task: 'transcribe' } : {})
    }) as Tensor
    const ids = Array.from(sequences.data as BigInt64Array, Number)
    const scored = await m.model({ input_features: features, decoder_input_ids: sequences })
    const logits = scored.logits as Tensor
    const vocab = logits.dims[2]
    const data = logits.data as Float32Array
    const special = new Set<number>(m.tokenizer.all_special_ids ?? [])
    const tokens: Array<{ id: number, p: number }> = []
    for (let t = 0; t + 1 < ids.length; t++) {
      const next = ids[t + 1]
      if (special.has(next)) continue
      tokens.push({ id: next, p: softmax(data.subarray(t * vocab, (t + 1) * vocab))[next] })
    }
    return { ids, tokens }
  }

  private async ctc (m: LoadedModel, item: AudioRequest, ctx: RunContext): Promise<Record<string, unknown>> {
    // Audio within one window is one window holding all of it, whose frames are all kept.
    const rate = this.samplingRate(m)
    const ratio = samplesPerFrame(m.config)
    const min = minCtcSamples(m.config) ?? 1
    const kept: CtcFrames[] = []
    for (const w of ctcWindows(item.samples.length, rate, item.chunks, ratio ?? 1)) {
      if (ctx.signal?.aborted === true) throw new AbortError('the transcription was aborted')
      // Only a last window past its overlap can be this short (with a stride under min samples): it
      // makes no frame on its own, where the conv encoder would fail instead.
      if (w.end - w.start < min) continue
      const frames = await this.ctcFrames(m, item.samples.subarray(w.start, w.end))
      const [from, to] = keptFrames(w.stride, frames.best.length, ratio)
      kept.push({ best: frames.best.subarray(from, to), top: frames.top.subarray(from, to) })
    }
    return ctcText(m, kept)
  }

  /** Each frame's most likely token and its probability. */
  private async ctcFrames (m: LoadedModel, samples: Float32Array): Promise<CtcFrames> {
    const out = await m.model(await m.processor(samples))
    const logits = out.logits as Tensor
    const [, frames, vocab] = logits.dims
    const data = logits.data as Float32Array
    const best = new Int32Array(frames)
    const top = new Float32Array(frames)
    for (let f = 0; f < frames; f++) {
      const probs = softmax(data.subarray(f * vocab, (f + 1) * vocab))
      best[f] = argmax(probs)
      top[f] = probs[best[f]]
    }
    return { best, top }
  }

  warmupInput (m: LoadedModel): unknown {
    if (isSeq2Seq(m.config)) return { input_values: new Float32Array(1600), max_new_tokens: 1 }
    return { input_values: new Float32Array(Math.max(1600, minCtcSamples(m.config) ?? 0)) }
  }
}

interface CtcFrames {
  best: Int32Array
  top: Float32Array
}

/**
 * Greedy CTC decoding over the frames of all windows in order (a token repeated across a window
 * boundary is one token, as when the Python pipeline decodes the joined frames), and its confidence.
 */
function ctcText (m: LoadedModel, parts: CtcFrames[]): Record<string, unknown> {
  const blank = m.config.pad_token_id ?? 0
  const ids: number[] = []
  let previous = -1
  let emittedSum = 0
  let emitted = 0
  let allSum = 0
  let frames = 0
  for (const { best, top } of parts) {
    for (let f = 0; f < best.length; f++) {
      allSum += top[f]
      frames++
      if (best[f] !== blank) {
        emittedSum += top[f]
        emitted++
        if (best[f] !== previous) ids.push(best[f])
      }
      previous = best[f]
    }
  }
  const text = ids.length === 0 ? '' : String(m.tokenizer.decode(ids, { skip_special_tokens: true })).trim()
  return { text, confidence: emitted > 0 ? emittedSum / emitted : frames > 0 ? allSum / frames : 0 }
}

/**
 * Input samples per output frame (Python's `inputs_to_logits_ratio`: the product of the conv
 * strides, 320 for Wav2Vec2); undefined when the config does not say.
 */
function samplesPerFrame (config: Record<string, unknown>): number | undefined {
  if (Number.isInteger(config.inputs_to_logits_ratio) && (config.inputs_to_logits_ratio as number) > 0) return config.inputs_to_logits_ratio as number
  const strides = config.conv_stride
  if (!Array.isArray(strides) || strides.length === 0 || !strides.every(v => Number.isInteger(v) && v > 0)) return undefined
  return strides.reduce((a: number, b: number) => a * b, 1)
}

/** exp(mean log p): the geometric mean, 0 for no tokens; p is floored so one zero cannot take it to -Infinity. */
function geometricMean (probs: number[]): number {
  if (probs.length === 0) return 0
  let logSum = 0
  for (const p of probs) logSum += Math.log(Math.max(p, 1e-12))
  return Math.exp(logSum / probs.length)
}

/**
 * The language to pass to Whisper's generate: a code it knows and the model has a token for. English
 * when missing on a multilingual model (what transformers.js assumes, said here so it does not warn);
 * none for an English-only model, which takes no language token and refuses any other language.
 */
function whisperLanguage (value: unknown, m: LoadedModel): string | undefined {
  const generation = m.model.generation_config ?? {}
  let code: string | undefined
  if (value !== undefined && value !== null) {
    code = typeof value === 'string' ? whisperLanguageCode(value) : undefined
    if (code === undefined) throw ValidationError.field('language', `expected a language Whisper knows, as a code or name such as "en" or "english", got ${describe(value)}`)
  }
  if (generation.is_multilingual !== true) {
    if (code !== undefined && code !== 'en') throw ValidationError.field('language', `${m.id} is an English-only model`)
    return undefined
  }
  if (code === undefined) return 'en'
  if (typeof generation.lang_to_id === 'object' && generation.lang_to_id !== null && !(`<|${code}|>` in generation.lang_to_id)) {
    throw ValidationError.field('language', `${m.id} has no token for language "${code}"`)
  }
  return code
}
