import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { IpfsAccelerate } from '../../src/accelerator.js'
import { ValidationError } from '../../src/errors.js'
import { encodeWav } from '../../src/inference/audio/wav.js'
import { resample } from '../../src/inference/audio/resample.js'
import { tinyModels, type TinyModels } from '../helpers/tiny-models.js'

function tone (seconds: number, rate: number, hz: number): Float32Array {
  return Float32Array.from({ length: Math.round(seconds * rate) }, (_, i) => 0.4 * Math.sin(2 * Math.PI * hz * i / rate) + 0.1 * Math.sin(2 * Math.PI * 3 * hz * i / rate))
}

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
    await assert.rejects(acc.processAsync(models.dir('whisper'), { input_values: new Float32Array(16_000 * 31) }), (err: unknown) =>
      err instanceof ValidationError && err.context.field === 'input_values')
  })
})
