import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { AutoModel, AutoTokenizer, Tensor, env, pipeline } from '@huggingface/transformers'
import { buildBert } from '../../../src/models/tiny/bert.js'
import { ValidationError } from '../../../src/errors.js'

env.allowRemoteModels = false

describe('tiny BERT', () => {
  let root: string
  let dir: string

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'tiny-bert-'))
    dir = join(root, 'bert')
    await buildBert(dir)
  })

  after(async () => {
    await rm(root, { recursive: true, force: true })
  })

  it('writes the files transformers.js reads, with the config it expects', async () => {
    const info = await buildBert(join(root, 'again'))
    assert.deepEqual(info.files, ['config.json', 'onnx/model.onnx', 'tokenizer.json', 'tokenizer_config.json', 'vocab.txt'])
    assert.equal(info.task, 'feature-extraction')
    assert.deepEqual(info.options, { hiddenSize: 32, numLayers: 2, numHeads: 4, vocabSize: 4096, maxPositions: 512, seed: 42 })
    const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'))
    assert.equal(config.model_type, 'bert')
    assert.deepEqual(config.architectures, ['BertModel'])
    assert.equal(config.hidden_size, 32)
    assert.equal(config.num_hidden_layers, 2)
    assert.equal(config.num_attention_heads, 4)
    assert.equal(config.vocab_size, 4096)
    assert.equal(config.max_position_embeddings, 512)
    const tokenizerConfig = JSON.parse(await readFile(join(dir, 'tokenizer_config.json'), 'utf8'))
    assert.equal(tokenizerConfig.tokenizer_class, 'BertTokenizer')
    assert.equal(tokenizerConfig.do_lower_case, true)
    assert.equal(tokenizerConfig.model_max_length, 512)
  })

  it('is deterministic: same options and seed give identical bytes, another seed other weights', async () => {
    const a = join(root, 'det-a')
    const b = join(root, 'det-b')
    const c = join(root, 'det-c')
    const options = { hiddenSize: 16, numHeads: 2, numLayers: 1, vocabSize: 1500, maxPositions: 64, seed: 7 }
    const info = await buildBert(a, options)
    await buildBert(b, options)
    await buildBert(c, { ...options, seed: 8 })
    for (const file of info.files) {
      assert.ok((await readFile(join(a, file))).equals(await readFile(join(b, file))), `${file} differs`)
    }
    assert.ok(!(await readFile(join(a, 'onnx/model.onnx'))).equals(await readFile(join(c, 'onnx/model.onnx'))))
    assert.ok((await readFile(join(a, 'tokenizer.json'))).equals(await readFile(join(c, 'tokenizer.json'))))
  })

  it('keeps bert-base-uncased ids for specials and common words, and tokenizes any lowercase text', async () => {
    const tokenizer = await AutoTokenizer.from_pretrained(dir)
    assert.deepEqual(tokenizer.encode('What is in this image?'), [101, 2054, 2003, 1999, 2023, 3746, 1029, 102])
    assert.equal(tokenizer.pad_token_id, 0)
    assert.equal(tokenizer.mask_token_id, 103)
    const text = 'zebras quickly jumped over 42 lazy foxes, didn\'t they?'
    const ids = tokenizer.encode(text)
    assert.ok(!ids.includes(100), 'no [UNK] for lowercase ASCII text')
    assert.ok(ids.every(id => id < 4096))
    assert.equal(tokenizer.decode(ids, { skip_special_tokens: true }).replace(/\s+/g, ''), text.replace(/\s+/g, ''))
  })

  it('gives a text the same token states alone and inside a padded batch', async () => {
    const extractor = await pipeline('feature-extraction', dir, { device: 'cpu', dtype: 'fp32' })
    try {
      const short = 'a cat'
      const long = 'what is in this image of a dog and a cat'
      const batch = await extractor([long, short])
      const alone = await extractor(short)
      const [, seq, hidden] = batch.dims
      assert.equal(hidden, 32)
      assert.equal(alone.dims[1], 4)
      assert.ok(seq > 4)
      const batchData = batch.data as Float32Array
      const aloneData = alone.data as Float32Array
      let maxDiff = 0
      for (let t = 0; t < 4; t++) {
        for (let h = 0; h < hidden; h++) {
          maxDiff = Math.max(maxDiff, Math.abs(batchData[(seq + t) * hidden + h] - aloneData[t * hidden + h]))
        }
      }
      assert.ok(maxDiff < 1e-5, `padded and unpadded states differ by ${maxDiff}`)
      assert.ok(aloneData.every(Number.isFinite))
      // Different texts give different states: the weights are not degenerate.
      let differ = 0
      for (let h = 0; h < hidden; h++) differ = Math.max(differ, Math.abs(batchData[hidden + h] - aloneData[hidden + h]))
      assert.ok(differ > 1e-3)
      // Mean pooling over the padded batch ignores the padding too.
      const pooled = await extractor([long, short], { pooling: 'mean', normalize: true })
      const pooledAlone = await extractor(short, { pooling: 'mean', normalize: true })
      const p = pooled.data as Float32Array
      const q = pooledAlone.data as Float32Array
      for (let h = 0; h < hidden; h++) assert.ok(Math.abs(p[hidden + h] - q[h]) < 1e-5)
    } finally {
      await extractor.dispose()
    }
  })

  it('runs raw ids through AutoModel; what sits under a zero mask does not matter', async () => {
    const model = await AutoModel.from_pretrained(dir, { device: 'cpu', dtype: 'fp32' })
    try {
      const run = async (ids: number[], mask: number[]): Promise<Float32Array> => {
        const out = await model({
          input_ids: new Tensor('int64', BigInt64Array.from(ids.map(BigInt)), [1, ids.length]),
          attention_mask: new Tensor('int64', BigInt64Array.from(mask.map(BigInt)), [1, mask.length])
        })
        return out.last_hidden_state.data as Float32Array
      }
      const a = await run([101, 2054, 2003, 102, 0, 0], [1, 1, 1, 1, 0, 0])
      const b = await run([101, 2054, 2003, 102, 3746, 1999], [1, 1, 1, 1, 0, 0])
      for (let i = 0; i < 4 * 32; i++) assert.ok(Math.abs(a[i] - b[i]) < 1e-5)
      const c = await run([101, 2054, 2003, 102, 3746, 1999], [1, 1, 1, 1, 1, 1])
      let diff = 0
      for (let i = 0; i < 4 * 32; i++) diff = Math.max(diff, Math.abs(a[i] - c[i]))
      assert.ok(diff > 1e-4, 'unmasking tokens changes the other tokens\' states')
    } finally {
      await model.dispose()
    }
  })

  it('rejects options no graph can be built from', async () => {
    const target = join(root, 'bad')
    await assert.rejects(buildBert(target, { hiddenSize: 30, numHeads: 4 }), (e: unknown) => e instanceof ValidationError && e.context.field === 'hiddenSize')
    await assert.rejects(buildBert(target, { numLayers: 0 }), (e: unknown) => e instanceof ValidationError && e.context.field === 'numLayers')
    await assert.rejects(buildBert(target, { vocabSize: 200 }), (e: unknown) => e instanceof ValidationError && e.context.field === 'vocabSize')
    await assert.rejects(buildBert(target, { seed: 1.5 }), (e: unknown) => e instanceof ValidationError && e.context.field === 'seed')
    await assert.rejects(buildBert(target, { maxPositions: -3 }), (e: unknown) => e instanceof ValidationError && e.context.field === 'maxPositions')
  })
})
