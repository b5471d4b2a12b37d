/**
 * Reading and writing RIFF/WAVE audio. transformers.js has no audio decoding under Node, so speech
 * models are fed from here: any common PCM or float WAV becomes mono float samples in [-1, 1].
 */
import { ValidationError } from '../../errors.js'

/** Decoded audio: mono samples and the rate they were recorded at. */
export interface DecodedWav {
  /** Mono samples in [-1, 1] (channels averaged). */
  samples: Float32Array
  /** Samples per second. */
  sampleRate: number
  /** Channels in the file before they were mixed down. */
  channels: number
}

const FORMAT_PCM = 0x0001
const FORMAT_FLOAT = 0x0003
const FORMAT_EXTENSIBLE = 0xfffe
/** Streaming writers (ffmpeg to a pipe) put this in the data size when they cannot seek back. */
const UNKNOWN_SIZE = 0xffffffff
const MAX_CHANNELS = 64

interface WavFormat {
  format: number
  channels: number
  sampleRate: number
  blockAlign: number
  bitsPerSample: number
}

function bad (message: string, context: Record<string, unknown> = {}): ValidationError {
  return ValidationError.field('audio', `invalid WAV: ${message}`, context)
}

function fourcc (view: DataView, offset: number): string {
  return String.fromCharCode(view.getUint8(offset), view.getUint8(offset + 1), view.getUint8(offset + 2), view.getUint8(offset + 3))
}

/**
 * Decodes a WAV file: integer PCM of 8, 16, 24 or 32 bits and IEEE float of 32 or 64 bits, plain or
 * WAVE_FORMAT_EXTENSIBLE, any number of channels (averaged to mono).
 * @throws ValidationError (field `audio`) naming what is wrong with a malformed or unsupported file, or
 * when it holds more than `maxSeconds` of audio.
 */
export function decodeWav (bytes: Uint8Array, { maxSeconds }: { maxSeconds?: number } = {}): DecodedWav {
  if (!(bytes instanceof Uint8Array)) throw ValidationError.field('audio', 'expected the bytes of a WAV file (Uint8Array)')
  if (bytes.byteLength < 12) throw bad(`${bytes.byteLength} bytes is too short for a RIFF header`)
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const riff = fourcc(view, 0)
  if (riff === 'RF64') throw bad('RF64 (64-bit WAV) is not supported')
  if (riff !== 'RIFF') throw bad(`missing RIFF header (starts with ${JSON.stringify(riff)})`)
  if (fourcc(view, 8) !== 'WAVE') throw bad(`RIFF type is ${JSON.stringify(fourcc(view, 8))}, not WAVE`)

  let format: WavFormat | undefined
  let data: Uint8Array | undefined
  let offset = 12
  while (offset + 8 <= bytes.byteLength && data === undefined) {
    const id = fourcc(view, offset)
    const size = view.getUint32(offset + 4, true)
    const start = offset + 8
    const remaining = bytes.byteLength - start
    if (id === 'data') {
      if (format === undefined) throw bad('data chunk comes before the fmt chunk')
      if (size === UNKNOWN_SIZE) {
        data = bytes.subarray(start)
      } else if (size > remaining) {
        throw bad(`data chunk declares ${size} bytes but only ${remaining} follow (truncated file?)`)
      } else {
        data = bytes.subarray(start, start + size)
      }
    } else {
      if (size > remaining) throw bad(`chunk ${JSON.stringify(id)} declares ${size} bytes but only ${remaining} follow`)
      if (id === 'fmt ') format = readFormat(view, start, size)
    }
    // Chunks are word-aligned: an odd-sized chunk is followed by one pad byte.
    offset = start + size + (size % 2)
  }
  if (format === undefined) throw bad('no fmt chunk')
  if (data === undefined) throw bad('no data chunk')
  // Checked from the header, before decoding makes a float copy of the samples: that copy is what the limit bounds.
  const seconds = Math.floor(data.byteLength / format.blockAlign) / format.sampleRate
  if (maxSeconds !== undefined && seconds > maxSeconds) {
    throw ValidationError.field('audio', `holds ${seconds.toFixed(1)} s of audio; at most ${maxSeconds} s are transcribed per request`, { seconds, limit: maxSeconds })
  }
  return { samples: toMono(data, format), sampleRate: format.sampleRate, channels: format.channels }
}

function readFormat (view: DataView, start: number, size: number): WavFormat {
  if (size < 16) throw bad(`fmt chunk is ${size} bytes, expected at least 16`)
  let format = view.getUint16(start, true)
  const channels = view.getUint16(start + 2, true)
  const sampleRate = view.getUint32(start + 4, true)
  const blockAlign = view.getUint16(start + 12, true)
  const bitsPerSample = view.getUint16(start + 14, true)
  if (format === FORMAT_EXTENSIBLE) {
    if (size < 40) throw bad(`WAVE_FORMAT_EXTENSIBLE fmt chunk is ${size} bytes, expected 40`)
    // The real format code is the first two bytes of the sub-format GUID.
    format = view.getUint16(start + 24, true)
  }
  if (format !== FORMAT_PCM && format !== FORMAT_FLOAT) {
    throw bad(`unsupported sample format 0x${format.toString(16).padStart(4, '0')} (only PCM and IEEE float are decoded)`, { format })
  }
  if (channels < 1 || channels > MAX_CHANNELS) throw bad(`channel count ${channels} is outside [1, ${MAX_CHANNELS}]`)
  if (sampleRate < 1) throw bad('sample rate is 0')
  const supported = format === FORMAT_PCM ? [8, 16, 24, 32] : [32, 64]
  if (!supported.includes(bitsPerSample)) {
    throw bad(`${bitsPerSample}-bit ${format === FORMAT_PCM ? 'PCM' : 'float'} is not supported (expected ${supported.join(', ')} bits)`, { bitsPerSample })
  }
  if (blockAlign !== channels * bitsPerSample / 8) {
    throw bad(`block align ${blockAlign} does not match ${channels} channel(s) of ${bitsPerSample} bits`)
  }
  return { format, channels, sampleRate, blockAlign, bitsPerSample }
}

function toMono (data: Uint8Array, fmt: WavFormat): Float32Array {
  // A trailing partial frame (a writer cut off mid-sample) carries no complete sample: drop it.
  const frames = Math.floor(data.byteLength / fmt.blockAlign)
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength)
  const read = sampleReader(view, fmt)
  const bytesPerSample = fmt.bitsPerSample / 8
  const out = new Float32Array(frames)
  for (let f = 0; f < frames; f++) {
    let sum = 0
    const base = f * fmt.blockAlign
    for (let c = 0; c < fmt.channels; c++) sum += read(base + c * bytesPerSample)
    out[f] = sum / fmt.channels
  }
  return out
}

function sampleReader (view: DataView, fmt: WavFormat): (offset: number) => number {
  if (fmt.format === FORMAT_FLOAT) {
    return fmt.bitsPerSample === 32 ? o => view.getFloat32(o, true) : o => view.getFloat64(o, true)
  }
  switch (fmt.bitsPerSample) {
    // 8-bit WAV is the one unsigned format: silence is 128.
    case 8: return o => (view.getUint8(o) - 128) / 128
    case 16: return o => view.getInt16(o, true) / 32768
    case 24: return o => {
      const unsigned = view.getUint8(o) | (view.getUint8(o + 1) << 8) | (view.getUint8(o + 2) << 16)
      return ((unsigned << 8) >> 8) / 8388608
    }
    default: return o => view.getInt32(o, true) / 2147483648
  }
}

/**
 * Encodes mono samples as a 16-bit PCM WAV file. Samples outside [-1, 1] are clipped.
 * @throws ValidationError for a bad sample rate or a sample that is not a finite number.
 */
export function encodeWav (samples: Float32Array, sampleRate: number): Uint8Array {
  if (!(samples instanceof Float32Array)) throw ValidationError.field('samples', 'expected a Float32Array')
  if (!Number.isInteger(sampleRate) || sampleRate < 1 || sampleRate > 0xffffffff / 2) {
    throw ValidationError.field('sampleRate', `must be a positive integer, got ${String(sampleRate)}`)
  }
  const dataSize = samples.length * 2
  if (dataSize + 36 > 0xffffffff) throw ValidationError.field('samples', `${samples.length} samples do not fit in a 4 GiB WAV file`)
  const bytes = new Uint8Array(44 + dataSize)
  const view = new DataView(bytes.buffer)
  const ascii = (offset: number, text: string): void => {
    for (let i = 0; i < text.length; i++) view.setUint8(offset + i, text.charCodeAt(i))
  }
  ascii(0, 'RIFF')
  view.setUint32(4, 36 + dataSize, true)
  ascii(8, 'WAVE')
  ascii(12, 'fmt ')
  view.setUint32(16, 16, true)
  view.setUint16(20, FORMAT_PCM, true)
  view.setUint16(22, 1, true)
  view.setUint32(24, sampleRate, true)
  view.setUint32(28, sampleRate * 2, true)
  view.setUint16(32, 2, true)
  view.setUint16(34, 16, true)
  ascii(36, 'data')
  view.setUint32(40, dataSize, true)
  for (let i = 0; i < samples.length; i++) {
    const s = samples[i]
    if (!Number.isFinite(s)) throw ValidationError.field(`samples[${i}]`, `must be a finite number, got ${s}`)
    // The same scale decodeWav divides by, so a round trip is off by at most half a step; +1 clips to 32767.
    view.setInt16(44 + i * 2, Math.max(-32768, Math.min(32767, Math.round(s * 32768))), true)
  }
  return bytes
}
