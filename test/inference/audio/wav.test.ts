import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { decodeWav, encodeWav } from '../../../src/inference/audio/wav.js'
import { ValidationError } from '../../../src/errors.js'

interface Chunk { id: string, body: Uint8Array }

/** A RIFF/WAVE file from chunks, with the pad byte after odd-sized chunks. */
function riff (chunks: Chunk[], type = 'WAVE'): Uint8Array {
  const size = chunks.reduce((n, c) => n + 8 + c.body.length + (c.body.length % 2), 4)
  const out = new Uint8Array(8 + size)
  const view = new DataView(out.buffer)
  const ascii = (o: number, s: string): void => { for (let i = 0; i < 4; i++) out[o + i] = s.charCodeAt(i) }
  ascii(0, 'RIFF')
  view.setUint32(4, size, true)
  ascii(8, type)
  let o = 12
  for (const c of chunks) {
    ascii(o, c.id)
    view.setUint32(o + 4, c.body.length, true)
    out.set(c.body, o + 8)
    o += 8 + c.body.length + (c.body.length % 2)
  }
  return out
}

function fmt (format: number, channels: number, rate: number, bits: number, extensible?: number): Chunk {
  const body = new Uint8Array(extensible === undefined ? 16 : 40)
  const v = new DataView(body.buffer)
  const blockAlign = channels * bits / 8
  v.setUint16(0, extensible === undefined ? format : 0xfffe, true)
  v.setUint16(2, channels, true)
  v.setUint32(4, rate, true)
  v.setUint32(8, rate * blockAlign, true)
  v.setUint16(12, blockAlign, true)
  v.setUint16(14, bits, true)
  if (extensible !== undefined) {
    v.setUint16(16, 22, true)
    v.setUint16(18, bits, true)
    v.setUint32(20, channels === 2 ? 3 : 4, true)
    v.setUint16(24, extensible, true)
  }
  return { id: 'fmt ', body }
}

function data (bytes: number[] | Uint8Array): Chunk {
  return { id: 'data', body: Uint8Array.from(bytes) }
}

function bytesOf (view: ArrayBufferView): number[] {
  return Array.from(new Uint8Array(view.buffer, view.byteOffset, view.byteLength))
}

function expectInvalid (bytes: Uint8Array, pattern: RegExp): void {
  assert.throws(() => decodeWav(bytes), (err: unknown) => {
    assert.ok(err instanceof ValidationError, String(err))
    assert.equal(err.context.field, 'audio')
    assert.match(err.message, pattern)
    return true
  })
}

describe('encodeWav / decodeWav', () => {
  it('round-trips 16-bit mono within half a quantisation step', () => {
    const samples = new Float32Array(1600)
    for (let i = 0; i < samples.length; i++) samples[i] = 0.8 * Math.sin(2 * Math.PI * 440 * i / 16000)
    const wav = encodeWav(samples, 16000)
    assert.equal(wav.byteLength, 44 + 2 * samples.length)
    const decoded = decodeWav(wav)
    assert.equal(decoded.sampleRate, 16000)
    assert.equal(decoded.channels, 1)
    assert.equal(decoded.samples.length, samples.length)
    for (let i = 0; i < samples.length; i++) assert.ok(Math.abs(decoded.samples[i] - samples[i]) <= 0.5 / 32768 + 1e-9, `sample ${i}`)
  })

  it('clips out-of-range samples to full scale', () => {
    const decoded = decodeWav(encodeWav(Float32Array.of(2, -3, 1, -1), 8000)).samples
    assert.deepEqual(Array.from(decoded), [32767 / 32768, -1, 32767 / 32768, -1])
  })

  it('decodes a Buffer that is a view into a larger allocation', () => {
    const wav = encodeWav(Float32Array.of(0.5, -0.25), 22050)
    const padded = Buffer.alloc(wav.byteLength + 10)
    padded.set(wav, 5)
    const decoded = decodeWav(padded.subarray(5, 5 + wav.byteLength))
    assert.equal(decoded.sampleRate, 22050)
    assert.deepEqual(Array.from(decoded.samples), [0.5, -0.25])
  })

  it('rejects a bad sample rate and non-finite samples', () => {
    for (const rate of [0, -1, 1.5, Number.NaN]) {
      assert.throws(() => encodeWav(new Float32Array(2), rate), (e: unknown) => e instanceof ValidationError && e.context.field === 'sampleRate')
    }
    assert.throws(() => encodeWav(Float32Array.of(0, Number.NaN), 16000), (e: unknown) => e instanceof ValidationError && e.context.field === 'samples[1]')
  })
})

describe('decodeWav formats', () => {
  it('reads 8-bit unsigned stereo and mixes it to mono', () => {
    // Frames: (L 255, R 1) and (L 128, R 192).
    const decoded = decodeWav(riff([fmt(1, 2, 8000, 8), data([255, 1, 128, 192])]))
    assert.equal(decoded.channels, 2)
    assert.equal(decoded.sampleRate, 8000)
    assert.deepEqual(Array.from(decoded.samples), [((127 / 128) + (-127 / 128)) / 2, (0 + 0.5) / 2])
  })

  it('reads 24-bit PCM with sign extension', () => {
    const decoded = decodeWav(riff([fmt(1, 1, 48000, 24), data([0x00, 0x00, 0x40, 0x00, 0x00, 0xc0, 0xff, 0xff, 0x7f])]))
    assert.deepEqual(Array.from(decoded.samples), [0.5, -0.5, 8388607 / 8388608].map(Math.fround))
  })

  it('reads 32-bit integer PCM', () => {
    const decoded = decodeWav(riff([fmt(1, 1, 16000, 32), data(bytesOf(Int32Array.of(1 << 30, -(2 ** 31))))]))
    assert.deepEqual(Array.from(decoded.samples), [0.5, -1])
  })

  it('reads 32- and 64-bit float, plain and WAVE_FORMAT_EXTENSIBLE', () => {
    const f32 = decodeWav(riff([fmt(3, 2, 44100, 32), data(bytesOf(Float32Array.of(0.25, 0.75, -1, 1)))]))
    assert.deepEqual(Array.from(f32.samples), [0.5, 0])
    const f64 = decodeWav(riff([fmt(0, 1, 44100, 64, 3), data(bytesOf(Float64Array.of(0.125, -0.375)))]))
    assert.deepEqual(Array.from(f64.samples), [0.125, -0.375])
    const pcm = decodeWav(riff([fmt(0, 2, 16000, 16, 1), data(bytesOf(Int16Array.of(16384, 0)))]))
    assert.deepEqual(Array.from(pcm.samples), [0.25])
  })

  it('skips unknown chunks (odd-sized ones with their pad byte) and drops a partial last frame', () => {
    const list = { id: 'LIST', body: Uint8Array.of(1, 2, 3) }
    const decoded = decodeWav(riff([list, fmt(1, 1, 16000, 16), list, data([0x00, 0x40, 0x00])]))
    assert.deepEqual(Array.from(decoded.samples), [0.5])
  })

  it('takes the rest of the file when a streaming writer left the data size unknown', () => {
    const wav = riff([fmt(1, 1, 16000, 16), data(bytesOf(Int16Array.of(8192, -8192)))])
    new DataView(wav.buffer).setUint32(wav.byteLength - 8, 0xffffffff, true)
    assert.deepEqual(Array.from(decodeWav(wav).samples), [0.25, -0.25])
  })

  it('accepts an empty data chunk', () => {
    assert.equal(decodeWav(riff([fmt(1, 1, 16000, 16), data([])])).samples.length, 0)
  })
})

describe('decodeWav rejects', () => {
  const pcm16 = fmt(1, 1, 16000, 16)
  it('short, non-RIFF and non-WAVE input', () => {
    expectInvalid(new Uint8Array(4), /too short/)
    expectInvalid(new TextEncoder().encode('OggS0000WAVEfmt '), /missing RIFF header/)
    expectInvalid(riff([pcm16, data([0, 0])], 'AVI '), /not WAVE/)
    const rf64 = riff([pcm16, data([0, 0])])
    rf64.set([0x52, 0x46, 0x36, 0x34])
    expectInvalid(rf64, /RF64/)
    assert.throws(() => decodeWav([1, 2, 3] as unknown as Uint8Array), ValidationError)
  })

  it('files without fmt or data, or with data first', () => {
    expectInvalid(riff([data([0, 0])]), /before the fmt chunk/)
    expectInvalid(riff([pcm16]), /no data chunk/)
    expectInvalid(riff([{ id: 'LIST', body: new Uint8Array(2) }]), /no fmt chunk/)
  })

  it('truncated chunks', () => {
    const wav = riff([pcm16, data(new Uint8Array(100))])
    expectInvalid(wav.subarray(0, wav.byteLength - 10), /data chunk declares 100 bytes but only 90 follow/)
    expectInvalid(riff([pcm16]).subarray(0, 30), /chunk "fmt " declares 16 bytes/)
  })

  it('unsupported encodings and inconsistent headers', () => {
    expectInvalid(riff([fmt(6, 1, 8000, 8), data([0])]), /unsupported sample format 0x0006/)
    expectInvalid(riff([fmt(0, 1, 8000, 8, 2), data([0])]), /unsupported sample format 0x0002/)
    expectInvalid(riff([fmt(1, 1, 8000, 12), data([0, 0])]), /12-bit PCM is not supported/)
    expectInvalid(riff([fmt(3, 1, 8000, 16), data([0, 0])]), /16-bit float is not supported/)
    expectInvalid(riff([fmt(1, 0, 8000, 16), data([0, 0])]), /channel count 0/)
    expectInvalid(riff([fmt(1, 1, 0, 16), data([0, 0])]), /sample rate is 0/)
    const misaligned = fmt(1, 2, 8000, 16)
    new DataView(misaligned.body.buffer).setUint16(12, 3, true)
    expectInvalid(riff([misaligned, data([0, 0, 0, 0])]), /block align 3/)
    expectInvalid(riff([{ id: 'fmt ', body: new Uint8Array(14) }, data([0])]), /fmt chunk is 14 bytes/)
  })
})
