import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { resample } from '../../../src/inference/audio/resample.js'
import { ValidationError } from '../../../src/errors.js'

function sine (frequency: number, rate: number, seconds: number, amplitude = 1): Float32Array {
  const out = new Float32Array(Math.round(rate * seconds))
  for (let i = 0; i < out.length; i++) out[i] = amplitude * Math.sin(2 * Math.PI * frequency * i / rate)
  return out
}

/** The middle half, away from the edges where the filter sees zeros outside the buffer. */
function middle (x: Float32Array): Float32Array {
  return x.subarray(Math.floor(x.length / 4), Math.floor(3 * x.length / 4))
}

function rms (x: Float32Array): number {
  let sum = 0
  for (const v of x) sum += v * v
  return Math.sqrt(sum / x.length)
}

/** Frequency from the first and last upward zero crossings (linearly interpolated) and the cycles between. */
function frequencyOf (x: Float32Array, rate: number): number {
  const crossings: number[] = []
  for (let i = 1; i < x.length; i++) {
    if (x[i - 1] < 0 && x[i] >= 0) crossings.push(i - 1 + x[i - 1] / (x[i - 1] - x[i]))
  }
  assert.ok(crossings.length > 2, 'signal has too few zero crossings')
  return (crossings.length - 1) * rate / (crossings.at(-1)! - crossings[0])
}

describe('resample', () => {
  it('keeps a 1 kHz sine at 1 kHz and full amplitude from 44.1 kHz to 16 kHz', () => {
    const out = resample(sine(1000, 44100, 1), 44100, 16000)
    assert.equal(out.length, 16000)
    const f = frequencyOf(middle(out), 16000)
    assert.ok(Math.abs(f - 1000) < 0.1, `frequency ${f}`)
    assert.ok(Math.abs(rms(middle(out)) - Math.SQRT1_2) < 0.005, `rms ${rms(middle(out))}`)
  })

  it('matches the exact sine sample by sample away from the edges', () => {
    const out = resample(sine(440, 48000, 0.5), 48000, 16000)
    const expected = sine(440, 16000, 0.5)
    let worst = 0
    for (let i = 2000; i < 6000; i++) worst = Math.max(worst, Math.abs(out[i] - expected[i]))
    assert.ok(worst < 1e-3, `largest error ${worst}`)
  })

  it('filters out a tone above the new Nyquist frequency instead of aliasing it', () => {
    // 10 kHz would fold to 6 kHz at 16 kHz; a resampler without a low-pass keeps it at full level.
    const out = resample(sine(10000, 44100, 0.5), 44100, 16000)
    assert.ok(rms(middle(out)) < 1e-3, `alias level ${rms(middle(out))}`)
  })

  it('upsamples 16 kHz to 48 kHz keeping frequency and level', () => {
    const out = resample(sine(1500, 16000, 0.5), 16000, 48000)
    assert.equal(out.length, 24000)
    assert.ok(Math.abs(frequencyOf(middle(out), 48000) - 1500) < 0.1)
    assert.ok(Math.abs(rms(middle(out)) - Math.SQRT1_2) < 0.005)
  })

  it('handles ratios with many phases (44.1 kHz to 16.001 kHz)', () => {
    const out = resample(sine(700, 44100, 0.5), 44100, 16001)
    assert.equal(out.length, Math.ceil(22050 * 16001 / 44100))
    assert.ok(Math.abs(frequencyOf(middle(out), 16001) - 700) < 0.1)
  })

  it('keeps a constant signal constant', () => {
    const out = resample(new Float32Array(4410).fill(0.25), 44100, 16000)
    for (const v of middle(out)) assert.ok(Math.abs(v - 0.25) < 1e-6)
  })

  it('returns a copy at the same rate and an empty array for empty input', () => {
    const input = Float32Array.of(1, 2, 3)
    const out = resample(input, 16000, 16000)
    assert.notEqual(out, input)
    assert.deepEqual(out, input)
    assert.equal(resample(new Float32Array(0), 44100, 16000).length, 0)
  })

  it('rejects rates that are not positive integers and samples that are not a Float32Array', () => {
    for (const [from, to, field] of [[0, 16000, 'fromRate'], [-44100, 16000, 'fromRate'], [44100.5, 16000, 'fromRate'],
      [44100, Number.NaN, 'toRate'], [44100, Infinity, 'toRate'], [44100, 1e12, 'toRate']] as const) {
      assert.throws(() => resample(new Float32Array(4), from, to), (e: unknown) => e instanceof ValidationError && e.context.field === field)
    }
    assert.throws(() => resample([1, 2] as unknown as Float32Array, 44100, 16000), (e: unknown) => e instanceof ValidationError && e.context.field === 'samples')
  })
})
