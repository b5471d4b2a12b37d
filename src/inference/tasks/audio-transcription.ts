/**
 * `audio_transcription`: audio in, `{ text, confidence }` out, for encoder-decoder models (Whisper)
 * and CTC models (Wav2Vec2).
 * - Whisper: generated with the KV cache; confidence is the geometric mean of the probabilities the
 *   model gave each generated token (re-scored in one teacher-forced pass over the final sequence).
 * - CTC: greedy decoding; confidence is the mean, over frames that emit a token, of the frame's top
 *   probability (all frames when none emit).
 * Whisper reads at most 30 s per request; longer audio is refused rather than silently cut. CTC models
 * refuse audio too short for their convolutional feature encoder to make one frame, and the
 * Whisper-only settings (`language`, `max_new_tokens`).
 */
import { AutoModelForSpeechSeq2Seq, AutoModelForCTC, AutoProcessor, AutoTokenizer, Tensor } from '@huggingface/transformers'
import { ValidationError } from '../../errors.js'
import { asObject, optionalInt, rejectUnknownKeys } from '../inputs/options.js'
import { describe } from '../inputs/token-ids.js'
import { readRawAudio, atRate, lengthAtRate } from '../inputs/audio-input.js'
import { whisperLanguageCode } from '../inputs/whisper-languages.js'
import { softmax, argmax } from '../inputs/softmax.js'
import { loadParts, type TaskHandler, type LoadedModel } from './task-handler.js'

interface AudioRequest {
  samples: Float32Array
  maxNewTokens?: number
  /**
   * Whisper: the spoken language as a code (`en`), from a code, name or token the request gave; for
   * multilingual models English when missing (transformers.js does not detect it), undefined for
   * English-only ones.
   */
  language?: string
}

const KEYS = ['input_values', 'sampling_rate', 'audio', 'max_new_tokens', 'language'] as const

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
      const samples = atRate(raw, rate)
      const min = minCtcSamples(m.config)
      if (min !== undefined && samples.length < min) {
        throw ValidationError.field(raw.field, `holds ${samples.length} samples; ${m.id} needs at least ${min} samples (${min / rate} s at ${rate} Hz)`)
      }
      return { value: { samples }, rows: 1 }
    }
    // Checked before resampling, which would take about a second per minute of audio to be refused.
    const limit = (m.processor?.feature_extractor?.config?.chunk_length ?? 30) * rate
    if (lengthAtRate(raw, rate) > limit) {
      throw ValidationError.field(raw.field, `holds ${(raw.samples.length / raw.rate).toFixed(1)} s of audio; ${m.id} reads at most ${limit / rate} s per request`)
    }
    const value = { maxNewTokens: optionalInt(obj.max_new_tokens, 'max_new_tokens', 1, 448), language: whisperLanguage(obj.language, m) }
    return { value: { samples: atRate(raw, rate), ...value }, rows: 1 }
  }

  async run (m: LoadedModel, items: AudioRequest[]): Promise<Array<Record<string, unknown>>> {
    const out: Array<Record<string, unknown>> = []
    for (const item of items) out.push(isSeq2Seq(m.config) ? await this.seq2seq(m, item) : await this.ctc(m, item))
    return out
  }

  private async seq2seq (m: LoadedModel, item: AudioRequest): Promise<Record<string, unknown>> {
    const features = (await m.processor(item.samples)).input_features as Tensor
    const maxTarget = m.config.max_target_positions ?? 448
    const sequences = await m.model.generate({
      input_features: features,
      max_new_tokens: Math.min(item.maxNewTokens ?? 128, maxTarget - 4),
      ...(item.language !== undefined ? { language: item.language, task: 'transcribe' } : {})
    }) as Tensor
    const ids = Array.from(sequences.data as BigInt64Array, Number)
    const text = m.tokenizer.decode(ids, { skip_special_tokens: true }).trim()
    // Teacher-forced pass over the final sequence: logits[t] scores ids[t + 1].
    const scored = await m.model({ input_features: features, decoder_input_ids: sequences })
    const logits = scored.logits as Tensor
    const vocab = logits.dims[2]
    const data = logits.data as Float32Array
    const special = new Set<number>(m.tokenizer.all_special_ids ?? [])
    let logSum = 0
    let count = 0
    for (let t = 0; t + 1 < ids.length; t++) {
      const next = ids[t + 1]
      if (special.has(next)) continue
      const p = softmax(data.subarray(t * vocab, (t + 1) * vocab))[next]
      logSum += Math.log(Math.max(p, 1e-12))
      count++
    }
    return { text, confidence: count === 0 ? 0 : Math.exp(logSum / count), tokens: count }
  }

  private async ctc (m: LoadedModel, item: AudioRequest): Promise<Record<string, unknown>> {
    const inputs = await m.processor(item.samples)
    const out = await m.model(inputs)
    const logits = out.logits as Tensor
    const [, frames, vocab] = logits.dims
    const data = logits.data as Float32Array
    const blank = m.config.pad_token_id ?? 0
    const ids: number[] = []
    let previous = -1
    let emittedSum = 0
    let emitted = 0
    let allSum = 0
    for (let f = 0; f < frames; f++) {
      const probs = softmax(data.subarray(f * vocab, (f + 1) * vocab))
      const best = argmax(probs)
      allSum += probs[best]
      if (best !== blank) {
        emittedSum += probs[best]
        emitted++
        if (best !== previous) ids.push(best)
      }
      previous = best
    }
    const text = ids.length === 0 ? '' : String(m.tokenizer.decode(ids, { skip_special_tokens: true })).trim()
    return { text, confidence: emitted > 0 ? emittedSum / emitted : allSum / frames }
  }

  warmupInput (m: LoadedModel): unknown {
    if (isSeq2Seq(m.config)) return { input_values: new Float32Array(1600), max_new_tokens: 1 }
    return { input_values: new Float32Array(Math.max(1600, minCtcSamples(m.config) ?? 0)) }
  }
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
