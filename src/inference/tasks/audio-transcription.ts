/**
 * `audio_transcription`: audio in, `{ text, confidence }` out, for encoder-decoder models (Whisper)
 * and CTC models (Wav2Vec2).
 * - Whisper: generated with the KV cache; confidence is the geometric mean of the probabilities the
 *   model gave each generated token (re-scored in one teacher-forced pass over the final sequence).
 * - CTC: greedy decoding; confidence is the mean, over frames that emit a token, of the frame's top
 *   probability (all frames when none emit).
 * Whisper reads at most 30 s per request; longer audio is refused rather than silently cut.
 */
import { AutoModelForSpeechSeq2Seq, AutoModelForCTC, AutoProcessor, AutoTokenizer, Tensor } from '@huggingface/transformers'
import { ValidationError } from '../../errors.js'
import { asObject, optionalInt, rejectUnknownKeys } from '../inputs/options.js'
import { readAudioInput } from '../inputs/audio-input.js'
import { softmax, argmax } from '../inputs/softmax.js'
import type { TaskHandler, LoadedModel } from './task-handler.js'

interface AudioRequest {
  samples: Float32Array
  maxNewTokens?: number
  /** Whisper: the spoken language (`en`, `english`, ...); detected by the model when missing. */
  language?: string
}

const KEYS = ['input_values', 'sampling_rate', 'audio', 'max_new_tokens', 'language'] as const

function isSeq2Seq (config: Record<string, unknown>): boolean {
  return config.is_encoder_decoder === true || config.model_type === 'whisper'
}

export class AudioTranscriptionTask implements TaskHandler<AudioRequest> {
  readonly task = 'audio_transcription' as const
  readonly batchable = false

  async load (ctx: Parameters<TaskHandler['load']>[0]): ReturnType<TaskHandler['load']> {
    const Model = isSeq2Seq(ctx.config) ? AutoModelForSpeechSeq2Seq : AutoModelForCTC
    const [model, processor, tokenizer] = await Promise.all([
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
    const samples = await readAudioInput(obj, rate)
    if (isSeq2Seq(m.config)) {
      const limit = (m.processor?.feature_extractor?.config?.chunk_length ?? 30) * rate
      if (samples.length > limit) {
        throw ValidationError.field('input_values', `holds ${(samples.length / rate).toFixed(1)} s of audio; ${m.id} reads at most ${limit / rate} s per request`)
      }
    }
    if (obj.language !== undefined && (typeof obj.language !== 'string' || obj.language.length === 0)) {
      throw ValidationError.field('language', 'expected a language code or name such as "en"')
    }
    return { value: { samples, maxNewTokens: optionalInt(obj.max_new_tokens, 'max_new_tokens', 1, 448), language: obj.language as string | undefined }, rows: 1 }
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
      ...(item.language !== undefined && m.config.is_multilingual !== false ? { language: item.language, task: 'transcribe' } : {})
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

  warmupInput (): unknown {
    return { input_values: new Float32Array(1600), max_new_tokens: 1 }
  }
}
