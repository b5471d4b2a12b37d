/**
 * Long audio for speech recognition: the overlapping windows Hugging Face's ASR pipelines cut it into,
 * and the bounds that keep one request's memory and work in proportion to what it asks for.
 * - Whisper: windows exactly as transformers.js's `automatic-speech-recognition` pipeline cuts them
 *   (its `_call_whisper`), so that its own merge (`WhisperTokenizer._decode_asr`) applies as it does there.
 * - CTC (Wav2Vec2 and kin): transformers.js's pipeline does not chunk these (it ignores
 *   `chunk_length_s`), so the windows and the frames kept of each follow the Python pipeline
 *   (`chunk_iter` and `rescale_stride` in transformers/pipelines/automatic_speech_recognition.py).
 */
import { ValidationError } from '../../errors.js'
import { describe } from '../inputs/token-ids.js'

/**
 * Longest audio one request may hold: 2 hours. Samples are held whole in memory (2 h at 16 kHz is
 * 460 MB of float32, more before resampling) and transcribed window after window, so both grow with it.
 */
export const MAX_AUDIO_SECONDS = 2 * 60 * 60
/** Window length used when none is given: Whisper's own 30 s, and the pipelines' documented usage. */
export const DEFAULT_CHUNK_LENGTH_S = 30
/** Shortest window, so that a request cannot ask for an unbounded number of model calls per second of audio. */
export const MIN_CHUNK_LENGTH_S = 1
/** Least new audio per window (`chunk_length_s - 2 * stride_length_s`), for the same reason. */
export const MIN_CHUNK_STEP_S = 1

export interface ChunkSettings {
  /** Window length in seconds. */
  chunkLengthS: number
  /** Overlap in seconds on each side of a window (left of all but the first, right of all but the last). */
  strideLengthS: number
}

/**
 * `chunk_length_s` and `stride_length_s` from a request, checked: windows of at least
 * MIN_CHUNK_LENGTH_S and at most `maxChunkS` seconds (Whisper's feature extractor cuts anything past
 * its 30 s, so a longer window would silently drop audio), overlaps that leave at least
 * MIN_CHUNK_STEP_S of new audio per window (with none, the pipelines' loop never advances).
 * Defaults: DEFAULT_CHUNK_LENGTH_S (at most `maxChunkS`) and a sixth of the window, as in the pipelines.
 */
export function readChunkSettings (obj: Record<string, unknown>, maxChunkS: number): ChunkSettings {
  const chunk = obj.chunk_length_s
  if (chunk !== undefined && chunk !== null && (typeof chunk !== 'number' || !Number.isFinite(chunk) || chunk < MIN_CHUNK_LENGTH_S || chunk > maxChunkS)) {
    throw ValidationError.field('chunk_length_s', `expected a window length in seconds in [${MIN_CHUNK_LENGTH_S}, ${maxChunkS}], got ${describe(chunk)}`)
  }
  const chunkLengthS = typeof chunk === 'number' ? chunk : Math.min(DEFAULT_CHUNK_LENGTH_S, maxChunkS)
  const stride = obj.stride_length_s
  if (stride === undefined || stride === null) return { chunkLengthS, strideLengthS: chunkLengthS / 6 }
  const most = (chunkLengthS - MIN_CHUNK_STEP_S) / 2
  if (typeof stride !== 'number' || !Number.isFinite(stride) || stride < 0 || stride > most) {
    throw ValidationError.field('stride_length_s', `expected an overlap in seconds in [0, ${most}] (chunk_length_s - 2 * stride_length_s must leave at least ${MIN_CHUNK_STEP_S} s of new audio per window, with chunk_length_s ${chunkLengthS}), got ${describe(stride)}`)
  }
  return { chunkLengthS, strideLengthS: stride }
}

/** One window: `samples.subarray(start, end)`, and its length and overlaps in seconds as the merges want them. */
export interface AudioWindow {
  start: number
  end: number
  /** [window length, left overlap, right overlap]: seconds for Whisper, samples for CTC. */
  stride: [number, number, number]
}

/**
 * Whisper's windows, computed as transformers.js's pipeline computes them (the same float arithmetic,
 * and `subarray`'s truncation of fractional bounds), so that the text matches its output. Strides
 * are in seconds, as `_decode_asr` takes them.
 */
export function whisperWindows (length: number, rate: number, { chunkLengthS, strideLengthS }: ChunkSettings): AudioWindow[] {
  const window = rate * chunkLengthS
  const stride = rate * strideLengthS
  const jump = window - 2 * stride
  const windows: AudioWindow[] = []
  let offset = 0
  while (true) {
    const offsetEnd = offset + window
    const start = Math.min(Math.trunc(offset), length)
    const end = Math.max(start, Math.min(Math.trunc(offsetEnd), length))
    const isFirst = offset === 0
    const isLast = offsetEnd >= length
    windows.push({ start, end, stride: [(end - start) / rate, isFirst ? 0 : stride / rate, isLast ? 0 : stride / rate] })
    if (isLast) return windows
    offset += jump
  }
}

/**
 * CTC windows as the Python pipeline's `chunk_iter` makes them: window and overlap rounded to whole
 * multiples of the model's samples per frame (`alignTo`), a window not taken when it holds nothing
 * beyond its left overlap. Strides are in samples.
 */
export function ctcWindows (length: number, rate: number, { chunkLengthS, strideLengthS }: ChunkSettings, alignTo: number): AudioWindow[] {
  const chunkLen = roundHalfEven(chunkLengthS * rate / alignTo) * alignTo
  const strideLen = roundHalfEven(strideLengthS * rate / alignTo) * alignTo
  const step = chunkLen - 2 * strideLen
  // readChunkSettings leaves at least a second per step; rounding to frames cannot take all of it.
  if (step <= 0) throw new Error(`CTC window step is ${step} samples`)
  const windows: AudioWindow[] = []
  for (let start = 0; start < length; start += step) {
    const end = Math.min(start + chunkLen, length)
    const left = start === 0 ? 0 : strideLen
    const isLast = start + chunkLen >= length
    if (end - start > left) windows.push({ start, end, stride: [end - start, left, isLast ? 0 : strideLen] })
    if (isLast) break
  }
  return windows
}

/**
 * The frames of a window's logits that the Python pipeline keeps (`rescale_stride`, then
 * `items[:, left:total - right]`): the overlaps scaled from samples to frames. `ratio` is samples per
 * frame (`inputs_to_logits_ratio`); when unknown, the frames the model made stand for the window.
 */
export function keptFrames (stride: [number, number, number], frames: number, ratio: number | undefined): [number, number] {
  const [samples, left, right] = stride
  // samples * (1 / ratio), not samples / ratio: Python's order of operations, for the same ties.
  const total = ratio === undefined ? frames : roundHalfEven(samples * (1 / ratio))
  const from = roundHalfEven(left / samples * total)
  const to = total - roundHalfEven(right / samples * total)
  return [Math.min(from, frames), Math.max(Math.min(to, frames), Math.min(from, frames))]
}

/** Python's `round` (half to even) of a number >= 0, for the window arithmetic to land on the same samples and frames. */
export function roundHalfEven (x: number): number {
  const r = Math.round(x)
  return Math.abs(x - Math.trunc(x)) === 0.5 && r % 2 !== 0 ? r - 1 : r
}
