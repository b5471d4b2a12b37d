import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { IpfsAccelerate } from '../../src/accelerator.js'
import { ValidationError } from '../../src/errors.js'
import { encodeWav } from '../../src/inference/audio/wav.js'
import { resample } from '../../src/inference/audio/resample.js'
import { tinyModels, type TinyModels } from '../helpers/tiny-models.js'
import { minCtcSamples } from '../../src/inference/tasks/audio-transcription.js'
import { whisperLanguageCode } from '../../src/inference/inputs/whisper-languages.js'

function tone (seconds: number, rate: number, hz: number): Float32Array {
  return Float32Array.from({ length: Math.round(seconds * rate) }, (_, i) => 0.4 * Math.sin(2 * Math.PI * hz * i / rate) + 0.1 * Math.sin(2 * Math.PI * 3 * hz * i / rate))
}

describe('minCtcSamples and whisperLanguageCode', () => {
  it('finds the shortest input that gives one frame through the conv feature encoder', () => {
    // Wav2Vec2 base: 400 samples (25 ms at 16 kHz) make exactly one frame.
    assert.equal(minCtcSamples({ conv_kernel: [10, 3, 3, 3, 3, 2, 2], conv_stride: [5, 2, 2, 2, 2, 2, 2] }), 400)
    assert.equal(minCtcSamples({ conv_kernel: [4], conv_stride: [2] }), 4)
    assert.equal(minCtcSamples({ conv_kernel: [3, 3], conv_stride: [1, 1] }), 5)
    assert.equal(minCtcSamples({}), undefined)
    assert.equal(minCtcSamples({ conv_kernel: [10, 3], conv_stride: [5] }), undefined)
  })

  it('reads Whisper languages as transformers.js does: codes, names, aliases, tokens', () => {
    assert.equal(whisperLanguageCode('en'), 'en')
    assert.equal(whisperLanguageCode('English'), 'en')
    assert.equal(whisperLanguageCode('<|fr|>'), 'fr')
    assert.equal(whisperLanguageCode('castilian'), 'es')
    assert.equal(whisperLanguageCode('haw'), 'haw')
    assert.equal(whisperLanguageCode('haitian creole'), 'ht')
    assert.equal(whisperLanguageCode('klingon'), undefined)
    assert.equal(whisperLanguageCode('xx'), undefined)
    assert.equal(whisperLanguageCode(''), undefined)
  })
})

describe('audio_transcription', () => {
  let models: TinyModels
  let acc: IpfsAccelerate

  before(async () => {
    models = await tinyModels(['whisper', 'wav2vec2'])
    acc = new IpfsAccelerate({ logging: { level: 'SILENT' }, performance: { enable_caching: false } }, {}, { env: {} })
  })
  after(async () => {
    await acc.stop()
    models.cleanup()
  })

  for (const family of ['whisper', 'wav2vec2'] as const) {
    it(`${family}: transcribes input_values with a confidence in (0, 1]`, async () => {
      const dir = models.dir(family)
      const r = await acc.processAsync(dir, { input_values: tone(1, 16_000, 440), sampling_rate: 16_000 }, 'audio_transcription')
      assert.equal(typeof r.text, 'string')
      if (family === 'whisper') assert.ok((r.text as string).length > 0)
      assert.ok((r.confidence as number) > 0 && (r.confidence as number) <= 1, `confidence ${String(r.confidence)}`)
      const again = acc.process(dir, { input_values: [Array.from(tone(1, 16_000, 440))], sampling_rate: 16_000 }, 'audio_transcription')
      assert.equal(again.text, r.text)
      assert.ok(Math.abs((again.confidence as number) - (r.confidence as number)) < 1e-5)
    })

    it(`${family}: resamples other rates and reads WAV files`, async () => {
      const dir = models.dir(family)
      const at16k = await acc.processAsync(dir, { input_values: resample(tone(1, 44_100, 440), 44_100, 16_000), sampling_rate: 16_000 })
      const at44k = await acc.processAsync(dir, { input_values: tone(1, 44_100, 440), sampling_rate: 44_100 })
      assert.equal(at44k.text, at16k.text)
      const file = join(models.root, `${family}.wav`)
      writeFileSync(file, encodeWav(tone(1, 44_100, 440), 44_100))
      const fromFile = await acc.processAsync(dir, { audio: file })
      assert.equal(typeof fromFile.text, 'string')
    })
  }

  it('rejects audio without a usable sampling rate, empty audio, NaN and bad WAV bytes', async () => {
    const dir = models.dir('wav2vec2')
    const cases: Array<[unknown, string]> = [
      [{ input_values: tone(1, 16_000, 440), sampling_rate: 0 }, 'sampling_rate'],
      [{ input_values: tone(1, 16_000, 440), sampling_rate: 'fast' }, 'sampling_rate'],
      [{ input_values: [] }, 'input_values'],
      [{ input_values: [0.1, Number.NaN, 0.2] }, 'input_values[1]'],
      [{ audio: new Uint8Array([1, 2, 3, 4]) }, 'audio'],
      [{ input_values: [[0.1], [0.2]] }, 'input_values']
    ]
    for (const [input, field] of cases) {
      await assert.rejects(acc.processAsync(dir, input, 'audio_transcription'), (err: unknown) =>
        err instanceof ValidationError && err.context.field === field, JSON.stringify(input).slice(0, 60))
    }
  })

  it('rejects integer samples it cannot read as floats', async () => {
    for (const family of ['whisper', 'wav2vec2'] as const) {
      for (const [input, field] of [
        [{ input_values: new BigInt64Array(1600) }, 'input_values'],
        [{ input_values: [[0.1, 2n, 0.3]] }, 'input_values[1]']
      ] as Array<[unknown, string]>) {
        await assert.rejects(acc.processAsync(models.dir(family), input, 'audio_transcription'), (err: unknown) =>
          err instanceof ValidationError && err.context.field === field, `${family} ${field}`)
      }
    }
  })

  it('wav2vec2: refuses audio shorter than one frame of its conv encoder, naming the minimum', async () => {
    const dir = models.dir('wav2vec2')
    for (const length of [1, 10, 399]) {
      await assert.rejects(acc.processAsync(dir, { input_values: new Float32Array(length).fill(0.1) }, 'audio_transcription'), (err: unknown) => {
        assert.ok(err instanceof ValidationError, String(err))
        assert.equal(err.context.field, 'input_values')
        assert.match(err.message, /at least 400 samples \(0\.025 s at 16000 Hz\)/)
        return true
      })
    }
    // The minimum itself is one frame and transcribes.
    const r = await acc.processAsync(dir, { input_values: tone(400 / 16_000, 16_000, 440) }, 'audio_transcription')
    assert.equal(typeof r.text, 'string')
  })

  it('wav2vec2: refuses the Whisper-only settings instead of ignoring them', async () => {
    for (const [input, field] of [
      [{ input_values: tone(0.5, 16_000, 440), language: 'en' }, 'language'],
      [{ input_values: tone(0.5, 16_000, 440), max_new_tokens: 5 }, 'max_new_tokens']
    ] as Array<[unknown, string]>) {
      await assert.rejects(acc.processAsync(models.dir('wav2vec2'), input, 'audio_transcription'), (err: unknown) =>
        err instanceof ValidationError && err.context.field === field && /not supported by CTC models such as wav2vec2/.test(err.message), field)
    }
  })

  it('whisper: takes a language it knows (code, name or token) and refuses others', async () => {
    const dir = models.dir('whisper')
    const audio = tone(0.5, 16_000, 440)
    const plain = await acc.processAsync(dir, { input_values: audio }, 'audio_transcription')
    const english = await acc.processAsync(dir, { input_values: audio, language: 'English' }, 'audio_transcription')
    assert.equal(english.text, plain.text, 'English is the default')
    for (const language of ['de', 'french', '<|es|>']) {
      const r = await acc.processAsync(dir, { input_values: audio, language }, 'audio_transcription')
      assert.equal(typeof r.text, 'string')
    }
    for (const language of ['klingon', 'xx', '', 5]) {
      await assert.rejects(acc.processAsync(dir, { input_values: audio, language }, 'audio_transcription'), (err: unknown) =>
        err instanceof ValidationError && err.context.field === 'language', String(language))
    }
  })
})
