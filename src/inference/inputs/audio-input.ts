/**
 * Audio inputs: `input_values` (a list, a [1, T] nested list or a Float32Array) with an optional
 * `sampling_rate`, or a WAV file (path or bytes). Audio at another rate is resampled to the model's
 * rate. Without `sampling_rate`, raw samples are taken to be at the model's rate (the seed's own
 * example passes none); a rate that is not a positive integer in [1 kHz, 384 kHz] is refused, and so is
 * audio longer than MAX_AUDIO_SECONDS (2 h), before it is resampled or a WAV file's samples are decoded.
 */
import { ValidationError } from '../../errors.js'
import { readLocalFile } from './local-file.js'
import { decodeWav } from '../audio/wav.js'
import { resample } from '../audio/resample.js'
import { MAX_AUDIO_SECONDS } from '../audio/chunks.js'
import { describe } from './token-ids.js'

/**
 * Largest WAV file read from a path. Two hours (MAX_AUDIO_SECONDS, the most a request takes) of 48 kHz
 * stereo 24-bit PCM, the usual ceiling of recorded audio, is 2.07 GB; 2 GiB leaves room for the header
 * and metadata chunks, and is what readFile could read before (2^31 - 1), so no file read then is
 * refused now. A smaller file holding more than 2 h is still refused by its duration, from its header.
 */
export const MAX_AUDIO_FILE_BYTES = 2 * 1024 ** 3

export const MIN_SAMPLING_RATE = 1_000
export const MAX_SAMPLING_RATE = 384_000

export function checkSamplingRate (value: unknown, field = 'sampling_rate'): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < MIN_SAMPLING_RATE || value > MAX_SAMPLING_RATE) {
    throw ValidationError.field(field, `expected an integer rate in Hz between ${MIN_SAMPLING_RATE} and ${MAX_SAMPLING_RATE}, got ${describe(value)}`)
  }
  return value
}

function toSamples (value: unknown, field: string): Float32Array {
  let samples: Float32Array
  if (value instanceof Float32Array) samples = value
  else if (value instanceof BigInt64Array || value instanceof BigUint64Array) {
    // Float32Array.from would throw a TypeError on BigInts deep in conversion.
    throw ValidationError.field(field, `expected float samples (a list of numbers or a Float32Array), got ${value.constructor.name}`)
  } else if (ArrayBuffer.isView(value) && !(value instanceof DataView)) samples = Float32Array.from(value as unknown as ArrayLike<number>)
  else if (Array.isArray(value)) {
    const rows = Array.isArray(value[0]) || ArrayBuffer.isView(value[0]) ? value : [value]
    if (rows.length !== 1) throw ValidationError.field(field, `expected one audio sequence per request, got ${rows.length}`)
    const row = rows[0] as ArrayLike<unknown>
    samples = new Float32Array(row.length)
    for (let i = 0; i < row.length; i++) {
      const v = row[i]
      if (typeof v !== 'number') throw ValidationError.field(`${field}[${i}]`, `expected a number, got ${describe(v)}`)
      samples[i] = v
    }
  } else {
    throw ValidationError.field(field, `expected an array of samples or a Float32Array, got ${describe(value)}`)
  }
  if (samples.length === 0) throw ValidationError.field(field, 'is empty')
  const bad = samples.findIndex(v => !Number.isFinite(v))
  if (bad >= 0) throw ValidationError.field(`${field}[${bad}]`, `is ${samples[bad]}; samples must be finite`)
  return samples
}

/** Mono samples as given, at their own rate, and the input field they came from. */
export interface RawAudio {
  samples: Float32Array
  rate: number
  field: 'input_values' | 'audio'
}

/**
 * Mono samples at the rate they were given at (`sampling_rate`, the WAV header, else `defaultRate`),
 * at most MAX_AUDIO_SECONDS of them. Resampling is left to `atRate`, so that a caller can refuse other
 * input first.
 */
export async function readRawAudio (obj: Record<string, unknown>, defaultRate: number): Promise<RawAudio> {
  if (obj.input_values !== undefined) {
    // Either one could be what the caller meant: refuse rather than silently drop the other.
    if (obj.audio !== undefined) throw ValidationError.field('audio', 'give either input_values or audio, not both')
    const samples = toSamples(obj.input_values, 'input_values')
    const rate = obj.sampling_rate === undefined ? defaultRate : checkSamplingRate(obj.sampling_rate)
    const seconds = samples.length / rate
    if (seconds > MAX_AUDIO_SECONDS) {
      throw ValidationError.field('input_values', `holds ${seconds.toFixed(1)} s of audio; at most ${MAX_AUDIO_SECONDS} s are transcribed per request`, { seconds, limit: MAX_AUDIO_SECONDS })
    }
    return { samples, rate, field: 'input_values' }
  }
  if (obj.audio !== undefined) {
    let bytes: Uint8Array
    if (typeof obj.audio === 'string') {
      const tooLarge = (size: number): Error => new Error(`the file has more than ${MAX_AUDIO_FILE_BYTES} bytes (${size} at least)`)
      try {
        bytes = await readLocalFile(obj.audio, MAX_AUDIO_FILE_BYTES, tooLarge)
      } catch (cause) {
        const message = (cause as Error).message
        throw new ValidationError(`audio: cannot read ${obj.audio} (${message})`, [{ path: 'audio', message }], { cause, context: { file: obj.audio } })
      }
    } else if (obj.audio instanceof Uint8Array) bytes = obj.audio
    else throw ValidationError.field('audio', `expected a WAV file path or its bytes, got ${describe(obj.audio)}`)
    const wav = decodeWav(bytes, { maxSeconds: MAX_AUDIO_SECONDS })
    checkSamplingRate(wav.sampleRate, 'audio.sampling_rate')
    // The header says the rate; a different `sampling_rate` beside it is a mistake, not an override.
    if (obj.sampling_rate !== undefined && checkSamplingRate(obj.sampling_rate) !== wav.sampleRate) {
      throw ValidationError.field('sampling_rate', `is ${String(obj.sampling_rate)} Hz but the WAV file is at ${wav.sampleRate} Hz`)
    }
    if (wav.samples.length === 0) throw ValidationError.field('audio', 'holds no samples')
    return { samples: wav.samples, rate: wav.sampleRate, field: 'audio' }
  }
  throw ValidationError.field('input_values', 'is missing (or pass audio)')
}

/** The samples at `targetRate`, resampled when they are at another one. */
export function atRate (audio: RawAudio, targetRate: number): Float32Array {
  return audio.rate === targetRate ? audio.samples : resample(audio.samples, audio.rate, targetRate)
}
