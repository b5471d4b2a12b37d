import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { AutoModelForCausalLM, AutoTokenizer, env, pipeline } from '@huggingface/transformers'
import { InferenceSession, Tensor as OrtTensor } from 'onnxruntime-node'
import { buildGpt2 } from '../../../src/models/tiny/gpt2.js'
import { ValidationError } from '../../../src/errors.js'

env.allowRemoteModels = false

const VOCAB = 1024
const HEADS = 4
const HEAD_DIM = 8
const LAYERS = 2

/** Greedy decoding that recomputes the whole sequence every step, with an empty cache: the reference. */
async function greedyWithoutCache (session: InferenceSession, prompt: number[], newTokens: number): Promise<number[]> {
  const ids = [...prompt]
  for (let step = 0; step < newTokens; step++) {
    const n = ids.length
    const feeds: Record<string, OrtTensor> = {
      input_ids: new OrtTensor('int64', BigInt64Array.from(ids.map(BigInt)), [1, n]),
      attention_mask: new OrtTensor('int64', new BigInt64Array(n).fill(1n), [1, n]),
      position_ids: new OrtTensor('int64', BigInt64Array.from(ids.map((_, i) => BigInt(i))), [1, n])
    }
    for (let i = 0; i < LAYERS; i++) {
      for (const part of ['key', 'value']) feeds[`past_key_values.${i}.${part}`] = new OrtTensor('float32', new Float32Array(0), [1, HEADS, 0, HEAD_DIM])
    }
    const out = await session.run(feeds)
    const logits = (out.logits.data as Float32Array).subarray((n - 1) * VOCAB, n * VOCAB)
    let best = 0
    for (let v = 1; v < VOCAB; v++) if (logits[v] > logits[best]) best = v
    ids.push(best)
  }
  return ids
}

/** `ids` up to (not including) the first end-of-text after the prompt: generate() pads finished rows with it. */
function untilEos (ids: number[], promptLength: number): number[] {
  const stop = ids.indexOf(VOCAB - 1, promptLength)
  return stop < 0 ? ids : ids.slice(0, stop)
}

describe('tiny GPT-2', () => {
  let root: string
  let dir: string
  let session: InferenceSession

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'tiny-gpt2-'))
    dir = join(root, 'gpt2')
    await buildGpt2(dir)
    session = await InferenceSession.create(join(dir, 'onnx', 'model.onnx'), { intraOpNumThreads: 1 })
  })

  after(async () => {
    await session?.release()
    await rm(root, { recursive: true, force: true })
  })

  it('writes config, generation config and tokenizer files with consistent ids', async () => {
    const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'))
    assert.equal(config.model_type, 'gpt2')
    assert.deepEqual(config.architectures, ['GPT2LMHeadModel'])
    assert.equal(config.n_embd, 32)
    assert.equal(config.n_layer, LAYERS)
    assert.equal(config.n_head, HEADS)
    assert.equal(config.n_positions, 1024)
    assert.equal(config.vocab_size, VOCAB)
    assert.equal(config.eos_token_id, VOCAB - 1)
    const generation = JSON.parse(await readFile(join(dir, 'generation_config.json'), 'utf8'))
    assert.equal(generation.eos_token_id, VOCAB - 1)
    const tokenizerJson = JSON.parse(await readFile(join(dir, 'tokenizer.json'), 'utf8'))
    assert.equal(Object.keys(tokenizerJson.model.vocab).length, VOCAB)
    assert.equal(tokenizerJson.model.vocab['<|endoftext|>'], VOCAB - 1)
    assert.equal(tokenizerJson.model.vocab['!'], 0)
    assert.equal(tokenizerJson.model.vocab['Ġ'], 220, 'byte tokens keep GPT-2 ids')
  })

  it('declares the cache inputs and outputs transformers.js expects', () => {
    assert.deepEqual([...session.inputNames].sort(), [
      'attention_mask', 'input_ids',
      'past_key_values.0.key', 'past_key_values.0.value', 'past_key_values.1.key', 'past_key_values.1.value',
      'position_ids'
    ])
    assert.deepEqual([...session.outputNames].sort(), ['logits', 'present.0.key', 'present.0.value', 'present.1.key', 'present.1.value'])
  })

  it('is deterministic for a seed', async () => {
    const options = { hiddenSize: 16, numHeads: 2, numLayers: 1, vocabSize: 400, maxPositions: 32, seed: 3 }
    const a = await buildGpt2(join(root, 'a'), options)
    await buildGpt2(join(root, 'b'), options)
    await buildGpt2(join(root, 'c'), { ...options, seed: 4 })
    for (const file of a.files) {
      assert.ok((await readFile(join(root, 'a', file))).equals(await readFile(join(root, 'b', file))), `${file} differs`)
    }
    assert.ok(!(await readFile(join(root, 'a', 'onnx/model.onnx'))).equals(await readFile(join(root, 'c', 'onnx/model.onnx'))))
  })

  it('round-trips any text through the byte-level tokenizer', async () => {
    const tokenizer = await AutoTokenizer.from_pretrained(dir)
    for (const text of ['what is in this image?', 'Hello, World! 123', 'naïve café — ünïcödé ✓', '  spaces\n\tand tabs']) {
      const ids = tokenizer.encode(text)
      assert.ok(ids.every(id => id >= 0 && id < VOCAB))
      assert.equal(tokenizer.decode(ids), text)
    }
    assert.ok(tokenizer.encode(' what is in this image').length < ' what is in this image'.length, 'merges shorten common words')
    assert.equal(tokenizer.eos_token_id, VOCAB - 1)
  })

  it('generates with the KV cache exactly what greedy recomputation gives', async () => {
    const tokenizer = await AutoTokenizer.from_pretrained(dir)
    const prompt = 'what is in this image'
    const promptIds = tokenizer.encode(prompt)
    const reference = await greedyWithoutCache(session, promptIds, 24)
    // The context must steer the output, or a broken cache could still match.
    assert.ok(new Set(reference.slice(promptIds.length)).size > 3, 'generation is not a single repeated token')

    const generator = await pipeline('text-generation', dir, { device: 'cpu', dtype: 'fp32' })
    try {
      const [result] = await generator(prompt, { max_new_tokens: 24, do_sample: false }) as Array<{ generated_text: string }>
      const expected = tokenizer.decode(untilEos(reference, promptIds.length), { skip_special_tokens: true })
      assert.equal(result.generated_text, expected)
      // The pipeline's default of 256 new tokens fits in the position table.
      const [long] = await generator('hello', { do_sample: false }) as Array<{ generated_text: string }>
      assert.ok(long.generated_text.startsWith('hello'))
    } finally {
      await generator.dispose()
    }

    const model = await AutoModelForCausalLM.from_pretrained(dir, { device: 'cpu', dtype: 'fp32' })
    try {
      const inputs = tokenizer(prompt)
      const output = await model.generate({ ...inputs, max_new_tokens: 24, do_sample: false }) as { tolist: () => bigint[][] }
      const generated = output.tolist()[0].map(Number)
      assert.deepEqual(untilEos(generated, promptIds.length), untilEos(reference, promptIds.length))
      assert.ok(generated.length > promptIds.length)

      // Left-padded batches: the shorter prompt generates what it generates alone.
      const short = 'a cat'
      const shortIds = tokenizer.encode(short)
      const alone = await greedyWithoutCache(session, shortIds, 12)
      tokenizer.padding_side = 'left'
      const batch = tokenizer([prompt, short], { padding: true })
      const batched = (await model.generate({ ...batch, max_new_tokens: 12, do_sample: false }) as { tolist: () => bigint[][] }).tolist()
      const padding = batch.input_ids.dims[1] - shortIds.length
      assert.ok(padding > 0)
      assert.deepEqual(untilEos(batched[1].map(Number).slice(padding), shortIds.length), untilEos(alone, shortIds.length))
    } finally {
      await model.dispose()
    }
  })

  it('returns present keys/values that extend the past by the new tokens', async () => {
    const past = new OrtTensor('float32', new Float32Array(1 * HEADS * 3 * HEAD_DIM).fill(0.1), [1, HEADS, 3, HEAD_DIM])
    const feeds: Record<string, OrtTensor> = {
      input_ids: new OrtTensor('int64', BigInt64Array.from([5n, 6n]), [1, 2]),
      attention_mask: new OrtTensor('int64', new BigInt64Array(5).fill(1n), [1, 5]),
      position_ids: new OrtTensor('int64', BigInt64Array.from([3n, 4n]), [1, 2])
    }
    for (let i = 0; i < LAYERS; i++) {
      feeds[`past_key_values.${i}.key`] = past
      feeds[`past_key_values.${i}.value`] = past
    }
    const out = await session.run(feeds)
    assert.deepEqual(out.logits.dims, [1, 2, VOCAB])
    assert.deepEqual(out['present.1.value'].dims, [1, HEADS, 5, HEAD_DIM])
    const present = out['present.0.key'].data as Float32Array
    // The first three cached positions are passed through unchanged.
    for (let h = 0; h < HEADS; h++) {
      for (let t = 0; t < 3; t++) {
        for (let d = 0; d < HEAD_DIM; d++) assert.ok(Math.abs(present[(h * 5 + t) * HEAD_DIM + d] - 0.1) < 1e-7)
      }
    }
  })

  it('rejects bad options', async () => {
    await assert.rejects(buildGpt2(join(root, 'bad'), { vocabSize: 100 }), (e: unknown) => e instanceof ValidationError && e.context.field === 'vocabSize')
    await assert.rejects(buildGpt2(join(root, 'bad'), { hiddenSize: 10, numHeads: 4 }), (e: unknown) => e instanceof ValidationError && e.context.field === 'hiddenSize')
  })
})
