import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { AutoModelForCTC, AutoProcessor, AutoTokenizer, env, pipeline, type Tensor } from '@huggingface/transformers'
import { IpfsAccelerate } from '../../src/accelerator.js'
import { ValidationError } from '../../src/errors.js'
import { encodeWav } from '../../src/inference/audio/wav.js'
import { ctcWindows, keptFrames, roundHalfEven, whisperWindows, MAX_AUDIO_SECONDS } from '../../src/inference/audio/chunks.js'
import { tinyModels, type TinyModels } from '../helpers/tiny-models.js'

env.allowRemoteModels = false

const SESSION = { intraOpNumThreads: 1 }

/** Deterministic audio that changes every 1.7 s (pitch and noise), so that windows differ. */
function speechLike (seconds: number, rate = 16_000): Float32Array {
  let state = 12345
  const noise = (): number => {
    state = (state * 1103515245 + 12345) % 2147483648
    return state / 2147483648 - 0.5
  }
  return Float32Array.from({ length: Math.round(seconds * rate) }, (_, i) => {
    const segment = Math.floor(i / rate / 1.7)
    const hz = 150 + (segment * 97) % 600
    return 0.4 * Math.sin(2 * Math.PI * hz * i / rate) + 0.2 * Math.sin(2 * Math.PI * 2.5 * hz * i / rate) + 0.1 * noise()
  })
}

/** A 440 Hz tone over the given [from, to) spans in seconds, silence elsewhere: the tiny Whisper says
 * "lvn" to a tone and "aees" to silence, so windows over different spans give different text. */
function toneSpans (seconds: number, spans: Array<[number, number]>, rate = 16_000): Float32Array {
  return Float32Array.from({ length: Math.round(seconds * rate) }, (_, i) => {
    const t = i / rate
    return spans.some(([from, to]) => t >= from && t < to) ? 0.5 * Math.sin(2 * Math.PI * 440 * t) : 0
  })
}

function isValidation (field: string, pattern?: RegExp): (err: unknown) => boolean {
  return (err: unknown) => {
    assert.ok(err instanceof ValidationError, String(err))
    assert.equal(err.context.field, field, err.message)
    if (pattern !== undefined) assert.match(err.message, pattern)
    return true
  }
}

describe('long audio: window arithmetic', () => {
  it('cuts Whisper windows as transformers.js does: 30 s, 5 s overlaps, 20 s steps, strides in seconds', () => {
    const w = whisperWindows(70 * 16_000, 16_000, { chunkLengthS: 30, strideLengthS: 5 })
    assert.deepEqual(w.map(x => [x.start, x.end]), [[0, 480_000], [320_000, 800_000], [640_000, 1_120_000]])
    assert.deepEqual(w.map(x => x.stride), [[30, 0, 5], [30, 5, 5], [30, 5, 0]])
    assert.equal(whisperWindows(30 * 16_000, 16_000, { chunkLengthS: 30, strideLengthS: 5 }).length, 1)
  })

  it('cuts CTC windows as the Python pipeline does: aligned to frames, keeping the frames outside the overlaps', () => {
    const w = ctcWindows(70 * 16_000, 16_000, { chunkLengthS: 30, strideLengthS: 5 }, 320)
    assert.deepEqual(w.map(x => x.stride), [[480_000, 0, 80_000], [480_000, 80_000, 80_000], [480_000, 80_000, 0]])
    // 1500 frames by the ratio, 1499 made by the convolutions: the last one is simply absent.
    assert.deepEqual(w.map(x => keptFrames(x.stride, 1499, 320)), [[0, 1250], [250, 1250], [250, 1499]])
    assert.equal(roundHalfEven(2.5), 2)
    assert.equal(roundHalfEven(3.5), 4)
    assert.equal(roundHalfEven(50.4), 50)
  })
})

describe('audio_transcription on long audio', () => {
  let models: TinyModels
  let acc: IpfsAccelerate
  const audio70 = speechLike(70)

  before(async () => {
    models = await tinyModels(['whisper', 'wav2vec2'])
    acc = new IpfsAccelerate({ logging: { level: 'SILENT' }, performance: { enable_caching: false } }, {}, { env: {} })
  })
  after(async () => {
    await acc.stop()
    models.cleanup()
  })

  it('whisper: 70 s is transcribed in 30 s windows, the text of transformers.js\'s pipeline with the same settings', async () => {
    const dir = models.dir('whisper')
    const asr = await pipeline('automatic-speech-recognition', dir, { device: 'cpu', dtype: 'fp32', session_options: SESSION })
    try {
      const settings = { max_new_tokens: 8, language: 'en', task: 'transcribe' }
      // Windows at 0, 20 and 40 s read tone, silence, tone: three different texts, joined.
      const audio = toneSpans(70, [[0, 15], [50, 70]])
      // Defaults: 30 s windows and a sixth of that (5 s) on each side.
      const ours = await acc.processAsync(dir, { input_values: audio, max_new_tokens: 8 }, 'audio_transcription')
      const theirs = await asr(audio, { chunk_length_s: 30, stride_length_s: 5, ...settings }) as { text: string }
      assert.match(theirs.text, /lvn.*aees.*lvn/)
      assert.equal(ours.text, theirs.text.trim())
      assert.ok((ours.confidence as number) > 0 && (ours.confidence as number) <= 1, `confidence ${String(ours.confidence)}`)
      assert.equal(ours.tokens, 24, 'three windows of 8 tokens, none in common')

      // Given settings: two 8 s windows (at 0 and 6 s) over one tone read the same tokens, which the
      // merge lays over each other rather than repeating.
      const tone = toneSpans(11, [[0, 11]])
      const given = await acc.processAsync(dir, { input_values: tone, chunk_length_s: 8, stride_length_s: 1, max_new_tokens: 8 }, 'audio_transcription')
      const reference = await asr(tone, { chunk_length_s: 8, stride_length_s: 1, ...settings }) as { text: string }
      assert.equal(given.text, reference.text.trim())
      assert.ok((given.tokens as number) < 16, `${String(given.tokens)} tokens`)
    } finally {
      await asr.dispose()
    }
  })

  it('wav2vec2: 70 s is transcribed in windows, keeping the frames the Python pipeline keeps', async () => {
    const dir = models.dir('wav2vec2')
    const ours = await acc.processAsync(dir, { input_values: audio70 }, 'audio_transcription')
    assert.ok((ours.text as string).length > 0)
    assert.ok((ours.confidence as number) > 0 && (ours.confidence as number) <= 1, `confidence ${String(ours.confidence)}`)

    // Python's pipeline by hand: 30 s windows at 0, 20 and 40 s, each model call's argmax frames
    // without the 250 frames (5 s) of each inner overlap, joined, then one greedy CTC decode.
    const model = await AutoModelForCTC.from_pretrained(dir, { device: 'cpu', dtype: 'fp32', session_options: SESSION })
    const processor = await AutoProcessor.from_pretrained(dir, {})
    const tokenizer = await AutoTokenizer.from_pretrained(dir)
    try {
      const best: number[] = []
      for (const [start, left, right] of [[0, 0, 250], [320_000, 250, 250], [640_000, 250, 0]]) {
        const { logits } = await model(await processor(audio70.subarray(start, start + 480_000))) as { logits: Tensor }
        const [, frames, vocab] = logits.dims
        const data = logits.data as Float32Array
        for (let f = left; f < Math.min(frames, 1500 - right); f++) {
          let b = 0
          for (let v = 1; v < vocab; v++) if (data[f * vocab + v] > data[f * vocab + b]) b = v
          best.push(b)
        }
      }
      assert.equal(ours.text, tokenizer.decode(best, { skip_special_tokens: true }).trim())

      // Within one window nothing changes: the text of transformers.js's (unchunked) pipeline.
      const asr = await pipeline('automatic-speech-recognition', dir, { device: 'cpu', dtype: 'fp32', session_options: SESSION })
      try {
        const short = audio70.subarray(0, 20 * 16_000)
        const one = await acc.processAsync(dir, { input_values: short }, 'audio_transcription')
        assert.equal(one.text, (await asr(short) as { text: string }).text)
      } finally {
        await asr.dispose()
      }
    } finally {
      await model.dispose()
    }
  })

  it('refuses bad chunk settings, naming the field', async () => {
    const input = audio70.subarray(0, 16_000)
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ chunk_length_s: 0 }, 'chunk_length_s'],
      [{ chunk_length_s: 0.5 }, 'chunk_length_s'],
      [{ chunk_length_s: 31 }, 'chunk_length_s'],
      [{ chunk_length_s: '30' }, 'chunk_length_s'],
      [{ chunk_length_s: Number.NaN }, 'chunk_length_s'],
      [{ stride_length_s: -1 }, 'stride_length_s'],
      [{ stride_length_s: 15 }, 'stride_length_s'],
      [{ chunk_length_s: 10, stride_length_s: 4.6 }, 'stride_length_s'],
      [{ stride_length_s: [4, 2] }, 'stride_length_s']
    ]
    for (const family of ['whisper', 'wav2vec2'] as const) {
      for (const [options, field] of cases) {
        await assert.rejects(acc.processAsync(models.dir(family), { input_values: input, ...options }, 'audio_transcription'),
          isValidation(field), `${family} ${JSON.stringify(options)}`)
      }
    }
    // The largest overlap allowed leaves a second of new audio per window.
    const edge = await acc.processAsync(models.dir('wav2vec2'), { input_values: audio70.subarray(0, 12 * 16_000), chunk_length_s: 10, stride_length_s: 4.5 }, 'audio_transcription')
    assert.equal(typeof edge.text, 'string')
  })

  it(`refuses audio over ${MAX_AUDIO_SECONDS} s, naming the field and the limit, before resampling it`, async () => {
    // At 1 kHz, the lowest rate taken, to keep the test's own buffers small (7.2 M samples).
    const long = new Float32Array(1_000 * (MAX_AUDIO_SECONDS + 1))
    const tooLong = new RegExp(`holds ${MAX_AUDIO_SECONDS + 1}\\.0 s of audio; at most ${MAX_AUDIO_SECONDS} s`)
    const file = join(models.root, 'long.wav')
    writeFileSync(file, encodeWav(long, 1_000))
    for (const family of ['whisper', 'wav2vec2'] as const) {
      await assert.rejects(acc.processAsync(models.dir(family), { input_values: long, sampling_rate: 1_000 }, 'audio_transcription'), isValidation('input_values', tooLong))
      await assert.rejects(acc.processAsync(models.dir(family), { audio: file }, 'audio_transcription'), isValidation('audio', tooLong))
    }
  })
})
