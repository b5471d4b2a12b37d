import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { AutoTokenizer, env, pipeline } from '@huggingface/transformers'
import { InferenceSession, Tensor as OrtTensor } from 'onnxruntime-node'
import { buildWav2Vec2, WAV2VEC2_DEFAULTS, wav2vec2FrameCount } from '../../../src/models/tiny/wav2vec2.js'
import { CTC_VOCAB } from '../../../src/models/tiny/ctc-tokenizer.js'
import { TINY_DEFAULTS } from '../../../src/models/tiny/tiny-defaults.js'
import type { TinyModelOptions } from '../../../src/models/tiny/options.js'
import { ValidationError } from '../../../src/errors.js'

env.allowRemoteModels = false

const SESSION = { intraOpNumThreads: 1 }
const V = CTC_VOCAB.length

function chirp (seconds: number, from = 200, to = 3000): Float32Array {
  const n = Math.round(16000 * seconds)
  return Float32Array.from({ length: n }, (_, i) => {
    const t = i / 16000
    return 0.5 * Math.sin(2 * Math.PI * (from * t + (to - from) * t * t / (2 * seconds)))
  })
}

/** What Wav2Vec2FeatureExtractor does with `do_normalize`: zero mean, unit variance. */
function normalize (x: Float32Array): Float32Array {
  const mean = x.reduce((a, b) => a + b, 0) / x.length
  const variance = x.reduce((a, b) => a + (b - mean) ** 2, 0) / x.length
  return x.map(v => (v - mean) / Math.sqrt(variance + 1e-7))
}

/** Greedy CTC by hand: best id per frame, collapse repeats, drop blanks, `|` -> space. */
function greedyCtc (logits: Float32Array, frames: number): string {
  const best: number[] = []
  for (let f = 0; f < frames; f++) {
    let b = 0
    for (let v = 1; v < V; v++) if (logits[f * V + v] > logits[f * V + b]) b = v
    best.push(b)
  }
  // As transformers.js does: special tokens (<s>, </s>, <unk>, not the blank) go before repeats collapse.
  const kept = best.filter(id => id === 0 || !CTC_VOCAB[id].startsWith('<'))
  const collapsed = kept.filter((id, i) => i === 0 || id !== kept[i - 1]).filter(id => id !== 0)
  return collapsed.map(id => CTC_VOCAB[id]).join('').replaceAll('|', ' ').replace(/ +/g, ' ').trim()
}

describe('tiny Wav2Vec2', () => {
  let root: string
  let dir: string
  let session: InferenceSession

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'tiny-wav2vec2-'))
    dir = join(root, 'wav2vec2')
    await buildWav2Vec2(dir)
    session = await InferenceSession.create(join(dir, 'onnx', 'model.onnx'), SESSION)
  })

  after(async () => {
    await session?.release()
    await rm(root, { recursive: true, force: true })
  })

  it('writes config, processor and CTC tokenizer files', async () => {
    assert.deepEqual(WAV2VEC2_DEFAULTS, TINY_DEFAULTS.wav2vec2)
    const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'))
    assert.equal(config.model_type, 'wav2vec2')
    assert.deepEqual(config.architectures, ['Wav2Vec2ForCTC'])
    assert.equal(config.vocab_size, 32)
    assert.equal(config.pad_token_id, 0)
    assert.equal(config.inputs_to_logits_ratio, 320)
    const preprocessor = JSON.parse(await readFile(join(dir, 'preprocessor_config.json'), 'utf8'))
    assert.equal(preprocessor.feature_extractor_type, 'Wav2Vec2FeatureExtractor')
    assert.equal(preprocessor.sampling_rate, 16000)
    assert.deepEqual(JSON.parse(await readFile(join(dir, 'vocab.json'), 'utf8')), Object.fromEntries(CTC_VOCAB.map((t, i) => [t, i])))

    const tokenizer = await AutoTokenizer.from_pretrained(dir)
    assert.deepEqual(tokenizer.encode('HELLO WORLD'), [11, 5, 15, 15, 8, 4, 18, 8, 13, 15, 14])
    // A blank between two Ls keeps both; repeats without one collapse; `|` becomes a space.
    const frames = [0, 11, 11, 5, 15, 0, 15, 8, 8, 4, 4, 18, 8, 13, 15, 14, 0, 2]
    assert.equal(tokenizer.decode(frames, { skip_special_tokens: true }), 'HELLO WORLD')
  })

  it('transcribes through the pipeline: uppercase CTC text, the same every time, matching greedy CTC over the logits', async () => {
    const asr = await pipeline('automatic-speech-recognition', dir, { device: 'cpu', dtype: 'fp32', session_options: SESSION })
    try {
      const audio = chirp(1)
      const first = await asr(audio) as { text: string }
      const again = await asr(audio) as { text: string }
      assert.equal(typeof first.text, 'string')
      assert.match(first.text, /^[A-Z' ]+$/)
      assert.equal(again.text, first.text)

      const frames = wav2vec2FrameCount(audio.length)
      const { logits } = await session.run({ input_values: new OrtTensor('float32', normalize(audio), [1, audio.length]) })
      assert.equal(first.text, greedyCtc(logits.data as Float32Array, frames))
    } finally {
      await asr.dispose()
    }
  })

  it('gives one frame per 20 ms and a probability distribution per frame', async () => {
    for (const [samples, frames] of [[400, 1], [16000, 49], [16320, 50], [24000, 74]] as const) {
      assert.equal(wav2vec2FrameCount(samples), frames)
      const { logits } = await session.run({ input_values: new OrtTensor('float32', normalize(chirp(samples / 16000)), [1, samples]) })
      assert.deepEqual(logits.dims, [1, frames, V])
      const data = logits.data as Float32Array
      for (let f = 0; f < frames; f++) {
        const row = data.subarray(f * V, (f + 1) * V)
        assert.ok(row.every(Number.isFinite))
        const max = Math.max(...row)
        const exps = Array.from(row, x => Math.exp(x - max))
        const sum = exps.reduce((a, b) => a + b, 0)
        const probabilities = exps.map(e => e / sum)
        assert.ok(Math.abs(probabilities.reduce((a, b) => a + b, 0) - 1) < 1e-6)
        assert.ok(Math.max(...probabilities) < 0.999, 'logits are not saturated')
      }
    }
    assert.equal(wav2vec2FrameCount(399), 0)
  })

  it('treats batch rows independently and depends on the audio', async () => {
    const a = normalize(chirp(0.5, 200, 3000))
    const b = normalize(chirp(0.5, 3000, 200))
    const run = async (x: Float32Array, rows: number): Promise<Float32Array> =>
      (await session.run({ input_values: new OrtTensor('float32', x, [rows, x.length / rows]) })).logits.data as Float32Array
    const both = new Float32Array(a.length * 2)
    both.set(a)
    both.set(b, a.length)
    const batched = await run(both, 2)
    const alone = [await run(a, 1), await run(b, 1)]
    const perRow = alone[0].length
    let worst = 0
    for (let i = 0; i < perRow; i++) {
      worst = Math.max(worst, Math.abs(batched[i] - alone[0][i]), Math.abs(batched[perRow + i] - alone[1][i]))
    }
    assert.ok(worst < 1e-4, `batched and single rows differ by ${worst}`)
    let difference = 0
    for (let i = 0; i < perRow; i++) difference = Math.max(difference, Math.abs(alone[0][i] - alone[1][i]))
    assert.ok(difference > 1e-2, 'different audio gives different logits')
  })

  it('writes identical bytes for the same options and seed, different weights for another seed', async () => {
    const small: TinyModelOptions = { hiddenSize: 16, numLayers: 1, numHeads: 2, seed: 3 }
    const a = await buildWav2Vec2(join(root, 'a'), small)
    await buildWav2Vec2(join(root, 'b'), small)
    await buildWav2Vec2(join(root, 'c'), { ...small, seed: 4 })
    assert.equal(a.family, 'wav2vec2')
    assert.equal(a.task, 'automatic-speech-recognition')
    assert.equal(a.options.hiddenSize, 16)
    for (const file of a.files) {
      assert.ok((await readFile(join(root, 'a', file))).equals(await readFile(join(root, 'b', file))), file)
    }
    assert.ok(!(await readFile(join(root, 'a', 'onnx/model.onnx'))).equals(await readFile(join(root, 'c', 'onnx/model.onnx'))))
    const asr = await pipeline('automatic-speech-recognition', join(root, 'a'), { device: 'cpu', dtype: 'fp32', session_options: SESSION })
    try {
      assert.equal(typeof (await asr(chirp(0.3)) as { text: string }).text, 'string')
    } finally {
      await asr.dispose()
    }
  })

  it('rejects options it cannot build, before writing anything', async () => {
    const cases: Array<[TinyModelOptions, string]> = [
      [{ vocabSize: 33 }, 'vocabSize'],
      [{ vocabSize: 31 }, 'vocabSize'],
      [{ hiddenSize: 30, numHeads: 4 }, 'hiddenSize'],
      [{ numHeads: 0 }, 'numHeads'],
      [{ seed: 1.5 }, 'seed']
    ]
    for (const [options, field] of cases) {
      const target = join(root, `bad-${field}`)
      await assert.rejects(buildWav2Vec2(target, options), (e: unknown) => e instanceof ValidationError && e.context.field === field)
      assert.ok(!existsSync(target))
    }
  })
})
