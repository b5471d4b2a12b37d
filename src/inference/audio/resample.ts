/**
 * Sample-rate conversion for speech models, which want 16 kHz while recordings come at 44.1 or 48 kHz.
 * A plain interpolator would fold everything above the new Nyquist frequency back into the speech band,
 * so this is a band-limited (Kaiser-windowed sinc) resampler: it low-pass filters at the lower of the
 * two Nyquist frequencies while it interpolates.
 */
import { ValidationError } from '../../errors.js'

/** Zero crossings of the sinc on each side: the filter length, and with it the steepness of the cut. */
const ZERO_CROSSINGS = 32
/** Cutoff as a fraction of the lower Nyquist frequency; the transition band fits in the rest. */
const ROLLOFF = 0.9
/** Kaiser window shape: about 85 dB of stop-band attenuation. */
const KAISER_BETA = 8.6
/** Most filter phases kept in the table; ratios with more phases round to the nearest one. */
const MAX_PHASES = 4096
/** Bound on the filter table size (coefficients), so that odd ratios cannot take a lot of memory. */
const MAX_TABLE = 1 << 22
const MAX_RATE = 10_000_000

/**
 * Converts `samples` from `fromRate` to `toRate` (both in Hz). The output has
 * `ceil(samples.length * toRate / fromRate)` samples; a same-rate call returns a copy.
 * Content above the lower of the two Nyquist frequencies is filtered out instead of aliased.
 * @throws ValidationError for a rate that is not a positive integer or samples that are not a Float32Array.
 */
export function resample (samples: Float32Array, fromRate: number, toRate: number): Float32Array {
  if (!(samples instanceof Float32Array)) throw ValidationError.field('samples', 'expected a Float32Array')
  checkRate(fromRate, 'fromRate')
  checkRate(toRate, 'toRate')
  if (fromRate === toRate) return samples.slice()
  const g = gcd(fromRate, toRate)
  const up = toRate / g
  const down = fromRate / g
  const outLength = Math.ceil(samples.length * up / down)
  const out = new Float32Array(outLength)
  if (samples.length === 0) return out

  const filter = buildFilter(up, down)
  const { taps, half, phases, table } = filter
  const n = samples.length
  // Input position of output sample `o` is o * down / up = index + remainder / up, tracked exactly in integers.
  let index = 0
  let remainder = 0
  const step = Math.floor(down / up)
  const stepRemainder = down % up
  for (let o = 0; o < outLength; o++) {
    let base = index
    let phase = phases === up ? remainder : Math.round(remainder * phases / up)
    if (phase === phases) {
      phase = 0
      base++
    }
    const first = base - half + 1
    const coefficients = phase * taps
    let acc = 0
    if (first >= 0 && first + taps <= n) {
      for (let j = 0; j < taps; j++) acc += samples[first + j] * table[coefficients + j]
    } else {
      // Near the ends the signal is taken as zero outside the buffer.
      const from = Math.max(0, -first)
      const to = Math.min(taps, n - first)
      for (let j = from; j < to; j++) acc += samples[first + j] * table[coefficients + j]
    }
    out[o] = acc
    index += step
    remainder += stepRemainder
    if (remainder >= up) {
      remainder -= up
      index++
    }
  }
  return out
}

interface Filter {
  /** Coefficients per phase. */
  taps: number
  /** Taps on each side of the output position. */
  half: number
  /** Number of fractional positions the table covers. */
  phases: number
  /** `phases` rows of `taps` coefficients; row `p` serves outputs at fractional input offset `p / phases`. */
  table: Float32Array
}

function buildFilter (up: number, down: number): Filter {
  // Cutoff in cycles per input sample relative to the input Nyquist: below 1 when downsampling.
  const cutoff = Math.min(1, up / down) * ROLLOFF
  const reach = ZERO_CROSSINGS / cutoff
  const half = Math.ceil(reach)
  const taps = 2 * half
  const phases = Math.max(1, Math.min(up, MAX_PHASES, Math.floor(MAX_TABLE / taps)))
  const table = new Float32Array(phases * taps)
  const i0Beta = besselI0(KAISER_BETA)
  for (let p = 0; p < phases; p++) {
    const fraction = p / phases
    let sum = 0
    const row = p * taps
    for (let j = 0; j < taps; j++) {
      // Distance from the output position to input sample `first + j`.
      const d = half - 1 - j + fraction
      const x = d / reach
      const w = Math.abs(x) >= 1 ? 0 : besselI0(KAISER_BETA * Math.sqrt(1 - x * x)) / i0Beta
      const value = cutoff * sinc(cutoff * d) * w
      table[row + j] = value
      sum += value
    }
    // Unit gain at DC in every phase, so a constant signal stays exactly constant.
    for (let j = 0; j < taps; j++) table[row + j] /= sum
  }
  return { taps, half, phases, table }
}

function sinc (x: number): number {
  if (x === 0) return 1
  const px = Math.PI * x
  return Math.sin(px) / px
}

/** Modified Bessel function of the first kind, order 0 (power series; converges fast for the betas used). */
function besselI0 (x: number): number {
  let sum = 1
  let term = 1
  const quarter = (x * x) / 4
  for (let k = 1; k < 64; k++) {
    term *= quarter / (k * k)
    sum += term
    if (term < sum * 1e-12) break
  }
  return sum
}

function gcd (a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b]
  return a
}

function checkRate (rate: number, field: string): void {
  if (typeof rate !== 'number' || !Number.isInteger(rate) || rate < 1 || rate > MAX_RATE) {
    throw ValidationError.field(field, `must be an integer sample rate in [1, ${MAX_RATE}] Hz, got ${String(rate)}`)
  }
}
