import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { AutoModelForSpeechSeq2Seq, AutoProcessor, AutoTokenizer, env, pipeline, type Tensor } from '@huggingface/transformers'
import { InferenceSession, Tensor as OrtTensor } from 'onnxruntime-node'
import { buildWhisper, WHISPER_DEFAULTS } from '../../../src/models/tiny/whisper.js'
import { WHISPER_TRANSCRIPT_TOKENS, whisperEosPosition } from '../../../src/models/tiny/whisper-graphs.js'
import { MIN_WHISPER_VOCAB, whisperTokenIds } from '../../../src/models/tiny/whisper-tokenizer.js'
import { TINY_DEFAULTS } from '../../../src/models/tiny/tiny-defaults.js'
import type { TinyModelOptions } from '../../../src/models/tiny/options.js'
import { ValidationError } from '../../../src/errors.js'

env.allowRemoteModels = false

/** Small enough that a second and third build stay cheap. */
const SMALL: TinyModelOptions = { hiddenSize: 16, numLayers: 1, numHeads: 2, vocabSize: MIN_WHISPER_VOCAB + 64, maxPositions: 32, seed: 7 }
const SESSION = { intraOpNumThreads: 1 }

function tone (frequency: number, seconds = 1): Float32Array {
  return Float32Array.from({ length: 16000 * seconds }, (_, i) => 0.5 * Math.sin(2 * Math.PI * frequency * i / 16000))
}

function int64 (ids: number[]): OrtTensor {
  return new OrtTensor('int64', BigInt64Array.from(ids.map(BigInt)), [1, ids.length])
}

function emptyCache (layers: number, heads: number, headDim: number): Record<string, OrtTensor> {
  const feeds: Record<string, OrtTensor> = {}
  for (let i = 0; i < layers; i++) {
    for (const name of ['decoder.key', 'decoder.value', 'encoder.key', 'encoder.value']) {
      feeds[`past_key_values.${i}.${name}`] = new OrtTensor('float32', new Float32Array(0), [1, heads, 0, headDim])
    }
  }
  return feeds
}

/** The `present.*` outputs of one step as the next step's `past_key_values.*`. */
function cacheFrom (out: InferenceSession.OnnxValueMapType): Record<string, OrtTensor> {
  const feeds: Record<string, OrtTensor> = {}
  for (const [name, value] of Object.entries(out)) {
    if (name.startsWith('present.')) feeds[name.replace('present.', 'past_key_values.')] = value as OrtTensor
  }
  return feeds
}

describe('tiny Whisper', () => {
  let root: string
  let dir: string
  const o = WHISPER_DEFAULTS
  const ids = whisperTokenIds(o.vocabSize)

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'tiny-whisper-'))
    dir = join(root, 'whisper')
    await buildWhisper(dir)
  })

  after(async () => {
    await rm(root, { recursive: true, force: true })
  })

  it('writes the files transformers.js reads, with the special token ids of openai/whisper-tiny', async () => {
    assert.deepEqual(WHISPER_DEFAULTS, TINY_DEFAULTS.whisper)
    const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'))
    assert.equal(config.model_type, 'whisper')
    assert.deepEqual(config.architectures, ['WhisperForConditionalGeneration'])
    assert.equal(config.d_model, o.hiddenSize)
    assert.equal(config.max_source_positions, 1500)
    assert.equal(config.max_target_positions, o.maxPositions)
    assert.equal(config.vocab_size, 51865)
    assert.equal(config.decoder_start_token_id, 50258)
    assert.deepEqual([ids.endOfText, ids.startOfTranscript, ids.languages.en, ids.translate, ids.transcribe, ids.noTimestamps, ids.firstTimestamp], [50257, 50258, 50259, 50358, 50359, 50363, 50364])

    const generation = JSON.parse(await readFile(join(dir, 'generation_config.json'), 'utf8'))
    assert.equal(generation.no_timestamps_token_id, 50363)
    assert.equal(generation.lang_to_id['<|fr|>'], 50265)
    assert.ok(generation.suppress_tokens.includes(ids.firstTimestamp) && generation.suppress_tokens.includes(o.vocabSize - 1))
    assert.ok(!generation.suppress_tokens.includes(ids.endOfText))

    const preprocessor = JSON.parse(await readFile(join(dir, 'preprocessor_config.json'), 'utf8'))
    assert.equal(preprocessor.feature_extractor_type, 'WhisperFeatureExtractor')
    assert.deepEqual([preprocessor.feature_size, preprocessor.sampling_rate, preprocessor.hop_length, preprocessor.n_fft, preprocessor.chunk_length], [80, 16000, 160, 400, 30])

    const tokenizer = await AutoTokenizer.from_pretrained(dir)
    for (const [token, id] of [['<|endoftext|>', 50257], ['<|startoftranscript|>', 50258], ['<|en|>', 50259], ['<|transcribe|>', 50359], ['<|notimestamps|>', 50363], ['<|0.00|>', 50364], ['<|30.00|>', 51864], ['Ġ', 220]] as const) {
      assert.equal(tokenizer.convert_tokens_to_ids(token), id, token)
    }
    const encoded = tokenizer.encode(' the cat sat on the mat', { add_special_tokens: false })
    assert.equal(tokenizer.decode(encoded), ' the cat sat on the mat')
    assert.ok(encoded.length < 12, 'common words are merged into few tokens')
  })

  it('transcribes 16 kHz audio through the pipeline: short non-empty text, the same every time', async () => {
    const asr = await pipeline('automatic-speech-recognition', dir, { device: 'cpu', dtype: 'fp32', session_options: SESSION })
    try {
      const first = await asr(tone(440), { language: 'en' }) as { text: string }
      const again = await asr(tone(440), { language: 'en' }) as { text: string }
      assert.equal(typeof first.text, 'string')
      assert.ok(first.text.trim().length > 0, 'a random Whisper still writes something')
      assert.match(first.text, /^[\x20-\x7e]+$/, 'only printable ASCII (unprintable byte tokens are suppressed)')
      assert.equal(again.text, first.text)
      const silence = await asr(new Float32Array(16000), { language: 'en' }) as { text: string }
      assert.ok(silence.text.trim().length > 0)
      assert.notEqual(silence.text, first.text, 'the audio reaches the decoder')
    } finally {
      await asr.dispose()
    }
  })

  it('generates the prompt, exactly the configured number of text tokens, then end-of-text', async () => {
    const processor = await AutoProcessor.from_pretrained(dir)
    const model = await AutoModelForSpeechSeq2Seq.from_pretrained(dir, { device: 'cpu', dtype: 'fp32', session_options: SESSION })
    try {
      const { input_features: features } = await processor(tone(1000)) as { input_features: Tensor }
      assert.deepEqual(features.dims, [1, 80, 3000])
      const output = await model.generate({ inputs: features, language: 'fr', task: 'translate' } as never) as Tensor
      const sequence = Array.from(output.data as BigInt64Array, Number)
      assert.deepEqual(sequence.slice(0, 4), [ids.startOfTranscript, ids.languages.fr, ids.translate, ids.noTimestamps])
      assert.equal(sequence.length, whisperEosPosition(o.maxPositions) + 2)
      assert.equal(sequence.length, 4 + WHISPER_TRANSCRIPT_TOKENS + 1)
      assert.equal(sequence.at(-1), ids.endOfText)
      for (const id of sequence.slice(4, -1)) assert.ok(id < ids.textTokens, `token ${id} is a text token`)
    } finally {
      await model.dispose()
    }
  })

  it('decoder: cached steps give the logits of a full uncached pass, and reuse the cached cross-attention', async () => {
    const encoder = await InferenceSession.create(join(dir, 'onnx', 'encoder_model.onnx'), SESSION)
    const decoder = await InferenceSession.create(join(dir, 'onnx', 'decoder_model_merged.onnx'), SESSION)
    try {
      assert.deepEqual([...encoder.inputNames], ['input_features'])
      assert.deepEqual([...encoder.outputNames], ['last_hidden_state'])
      const features = Float32Array.from({ length: 80 * 3000 }, (_, i) => Math.sin(i * 0.37))
      const { last_hidden_state: states } = await encoder.run({ input_features: new OrtTensor('float32', features, [1, 80, 3000]) })
      assert.deepEqual(states.dims, [1, 1500, o.hiddenSize])

      const headDim = o.hiddenSize / o.numHeads
      const tokens = [ids.startOfTranscript, ids.languages.en, ids.transcribe, ids.noTimestamps, 262, 3797, 7]
      const full = await decoder.run({ input_ids: int64(tokens), encoder_hidden_states: states, ...emptyCache(o.numLayers, o.numHeads, headDim) })
      assert.deepEqual(full.logits.dims, [1, tokens.length, o.vocabSize])
      assert.deepEqual(full['present.0.encoder.key'].dims, [1, o.numHeads, 1500, headDim])
      assert.deepEqual(full['present.0.decoder.key'].dims, [1, o.numHeads, tokens.length, headDim])

      let step = await decoder.run({ input_ids: int64(tokens.slice(0, 4)), encoder_hidden_states: states, ...emptyCache(o.numLayers, o.numHeads, headDim) })
      // Later steps get encoder states that are all zeros: the answer must not change, because the
      // cross-attention keys/values come from the cache once it is filled.
      const zeros = new OrtTensor('float32', new Float32Array(states.size), states.dims)
      const fullLogits = full.logits.data as Float32Array
      for (let t = 4; t < tokens.length; t++) {
        step = await decoder.run({ input_ids: int64([tokens[t]]), encoder_hidden_states: zeros, ...cacheFrom(step) })
        assert.deepEqual(step['present.0.decoder.key'].dims, [1, o.numHeads, t + 1, headDim])
        const logits = step.logits.data as Float32Array
        let worst = 0
        for (let v = 0; v < o.vocabSize; v++) worst = Math.max(worst, Math.abs(logits[v] - fullLogits[t * o.vocabSize + v]))
        assert.ok(worst < 1e-4, `position ${t}: cached and uncached logits differ by ${worst}`)
      }
    } finally {
      await encoder.release()
      await decoder.release()
    }
  })

  it('decoder: a batch with the batch-1 empty caches transformers.js makes equals its rows run alone', async () => {
    const decoder = await InferenceSession.create(join(dir, 'onnx', 'decoder_model_merged.onnx'), SESSION)
    try {
      const headDim = o.hiddenSize / o.numHeads
      const rowStates = [0.1, 0.23].map(f => Float32Array.from({ length: 1500 * o.hiddenSize }, (_, i) => Math.sin(i * f)))
      const rowTokens = [[ids.startOfTranscript, ids.languages.en, ids.transcribe, 500], [ids.startOfTranscript, ids.languages.de, ids.translate, 900]]
      const states = new Float32Array(2 * rowStates[0].length)
      states.set(rowStates[0])
      states.set(rowStates[1], rowStates[0].length)
      const batched = await decoder.run({
        input_ids: new OrtTensor('int64', BigInt64Array.from(rowTokens.flat().map(BigInt)), [2, 4]),
        encoder_hidden_states: new OrtTensor('float32', states, [2, 1500, o.hiddenSize]),
        ...emptyCache(o.numLayers, o.numHeads, headDim)
      })
      assert.deepEqual(batched.logits.dims, [2, 4, o.vocabSize])
      assert.deepEqual(batched['present.0.encoder.value'].dims, [2, o.numHeads, 1500, headDim])
      const perRow = 4 * o.vocabSize
      for (let r = 0; r < 2; r++) {
        const alone = await decoder.run({
          input_ids: int64(rowTokens[r]),
          encoder_hidden_states: new OrtTensor('float32', rowStates[r], [1, 1500, o.hiddenSize]),
          ...emptyCache(o.numLayers, o.numHeads, headDim)
        })
        const expected = alone.logits.data as Float32Array
        const actual = (batched.logits.data as Float32Array).subarray(r * perRow, (r + 1) * perRow)
        let worst = 0
        for (let i = 0; i < perRow; i++) worst = Math.max(worst, Math.abs(actual[i] - expected[i]))
        assert.ok(worst < 1e-4, `row ${r} differs by ${worst}`)
      }
    } finally {
      await decoder.release()
    }
  })

  it('writes identical bytes for the same options and seed, different weights for another seed', async () => {
    const a = await buildWhisper(join(root, 'a'), SMALL)
    const b = await buildWhisper(join(root, 'b'), SMALL)
    const c = await buildWhisper(join(root, 'c'), { ...SMALL, seed: 8 })
    assert.deepEqual(a.files, b.files)
    assert.deepEqual(a.options, { ...SMALL })
    for (const file of a.files) {
      assert.ok((await readFile(join(root, 'a', file))).equals(await readFile(join(root, 'b', file))), file)
    }
    assert.ok(!(await readFile(join(root, 'a', 'onnx/decoder_model_merged.onnx'))).equals(await readFile(join(root, 'c', 'onnx/decoder_model_merged.onnx'))))
    assert.ok((await readFile(join(root, 'a', 'tokenizer.json'))).equals(await readFile(join(root, 'c', 'tokenizer.json'))))
  })

  it('runs with non-default sizes', async () => {
    const asr = await pipeline('automatic-speech-recognition', join(root, 'a'), { device: 'cpu', dtype: 'fp32', session_options: SESSION })
    try {
      const { text } = await asr(tone(300), { language: 'en' }) as { text: string }
      assert.ok(text.trim().length > 0)
    } finally {
      await asr.dispose()
    }
  })

  it('rejects options it cannot build, before writing anything', async () => {
    const cases: Array<[TinyModelOptions, string]> = [
      [{ vocabSize: MIN_WHISPER_VOCAB - 1 }, 'vocabSize'],
      [{ maxPositions: 7 }, 'maxPositions'],
      [{ hiddenSize: 9, numHeads: 3 }, 'hiddenSize'],
      [{ hiddenSize: 32, numHeads: 5 }, 'hiddenSize'],
      [{ numLayers: 0 }, 'numLayers'],
      [{ seed: -1 }, 'seed']
    ]
    for (const [options, field] of cases) {
      const target = join(root, `bad-${field}`)
      await assert.rejects(buildWhisper(target, options), (e: unknown) => e instanceof ValidationError && e.context.field === field)
      assert.ok(!existsSync(target))
    }
  })
})
