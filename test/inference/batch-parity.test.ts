/**
 * Dynamic batching through the public API: whatever a batch mixes (poolings, input forms, masks, token
 * types, lengths, requests larger than the batch, a bad or aborted neighbour), each caller gets bit for
 * bit what it gets alone. Also: image classification never puts more than the batch size in one model
 * call, and the length grouping of text embedding plans as cheaply as a row-by-row search.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { IpfsAccelerate } from '../../src/accelerator.js'
import { ImageClassificationTask } from '../../src/inference/tasks/image-classification.js'
import { lengthGroups } from '../../src/inference/tasks/text-embedding.js'
import type { LoadedModel } from '../../src/inference/tasks/task-handler.js'
import { tinyModels, type TinyModels } from '../helpers/tiny-models.js'

type Outcome = { ok: unknown } | { err: string }

/** Deterministic pseudo-random numbers in [0, 1). */
function random (seed: number): () => number {
  let s = seed
  return () => {
    s = (s * 1103515245 + 12345) & 0x7fffffff
    return s / 0x80000000
  }
}

/** Runs `inputs` one at a time, then all at once (plus an aborted call), at several batch sizes. */
async function checkParity (model: string, task: Parameters<IpfsAccelerate['processAsync']>[2], inputs: unknown[], abortedInput: unknown): Promise<void> {
  for (const batchSize of [1, 2, 7, 64]) {
    const acc = new IpfsAccelerate({ logging: { level: 'SILENT' }, hardware: { batch_size: batchSize }, performance: { enable_caching: false } }, {}, { env: {} })
    try {
      const call = async (input: unknown, signal?: AbortSignal): Promise<Outcome> => await acc.processAsync(model, input, task, { signal }).then(
        ({ model: _m, inference_time: _t, ...body }) => ({ ok: body }),
        (err: Error) => ({ err: `${err.name}: ${err.message}` }))
      const alone: Outcome[] = []
      for (const input of inputs) alone.push(await call(input))
      const controller = new AbortController()
      const together = inputs.map(async input => await call(input))
      const aborted = call(abortedInput, controller.signal)
      controller.abort()
      const got = await Promise.all(together)
      got.forEach((outcome, i) => assert.deepStrictEqual(outcome, alone[i], `batch_size ${batchSize}, request ${i}`))
      assert.match((await aborted as { err: string }).err, /^AbortError/)
    } finally {
      await acc.stop()
    }
  }
}

describe('batched callers get exactly what they get alone', () => {
  let models: TinyModels

  before(async () => { models = await tinyModels(['bert', 'vit']) })
  after(() => { models.cleanup() })

  it('text_embedding: mixed poolings, input forms, masks, token types and lengths', async () => {
    const bert = models.dir('bert')
    const config = JSON.parse(readFileSync(join(bert, 'config.json'), 'utf8'))
    const maxLen = config.max_position_embeddings as number
    const next = random(7)
    const ids = (n: number): number[] => [101, ...Array.from({ length: n }, () => 1000 + Math.floor(next() * 2000)), 102].slice(0, n)
    const inputs: unknown[] = [
      { input_ids: ids(1) },
      { input_ids: ids(maxLen), pooling: 'cls' },
      { input_ids: ids(5), pooling: 'none', normalize: false },
      { text: 'hello world this is a test' },
      { texts: ['a', 'the quick brown fox jumps over the lazy dog', 'b c'], pooling: 'cls', normalize: false },
      'a bare string',
      ['a bare', 'list of strings'],
      { input_ids: Int32Array.from(ids(9)) },
      { input_ids: BigInt64Array.from(ids(7), BigInt) },
      { input_ids: [Int32Array.from(ids(3)), ids(12)] },
      { input_ids: [ids(1)] },
      { input_ids: ids(10), attention_mask: [1, 1, 1, 0, 0, 1, 1, 0, 1, 1] },
      { input_ids: ids(10), attention_mask: [1, 1, 1, 1, 1, 1, 1, 0, 0, 0], pooling: 'none' },
      { input_ids: ids(8), token_type_ids: [0, 0, 0, 0, 1, 1, 1, 1] },
      { input_ids: [ids(4), ids(6)], token_type_ids: [[0, 0, 1, 1], [0, 0, 0, 1, 1, 1]], pooling: 'cls' },
      { input_ids: Array.from({ length: 11 }, (_, k) => ids(2 + k * 40)) },
      { input_ids: [ids(60), ids(2)], attention_mask: [ids(60).map((_, i) => i < 57 ? 1 : 0), [1, 0]], pooling: 'none' },
      { input_ids: ids(3), pooling: 'bogus' },
      { input_ids: [99_999_999] },
      ...Array.from({ length: 12 }, (_, k) => ({ input_ids: ids(2 + (k * 37) % 120), normalize: k % 2 === 0, pooling: ['mean', 'cls', 'none'][k % 3] }))
    ]
    await checkParity(bert, 'text_embedding', inputs, { input_ids: ids(6) })
  })

  it('image_classification: per-request top_k, nested lists and { data, dims }, several images', async () => {
    const vit = models.dir('vit')
    const size = 3 * 224 * 224
    const next = random(3)
    const pixels = (n: number): Float32Array => Float32Array.from({ length: n * size }, () => next() * 2 - 1)
    const nested = (data: Float32Array): number[][][] => Array.from({ length: 3 }, (_, c) =>
      Array.from({ length: 224 }, (_, h) => Array.from(data.subarray(c * 50176 + h * 224, c * 50176 + (h + 1) * 224))))
    const one = pixels(1)
    const three = pixels(3)
    const inputs: unknown[] = [
      { pixel_values: { data: one, dims: [1, 3, 224, 224] }, top_k: 1 },
      { pixel_values: nested(one), top_k: 3 },
      { pixel_values: [0, 1, 2].map(i => nested(three.subarray(i * size, (i + 1) * size))) },
      { pixel_values: { data: three, dims: [3, 3, 224, 224] }, top_k: 20 },
      { pixel_values: { data: one, dims: [1, 3, 224, 225] } },
      { pixel_values: { data: one, dims: [3, 224, 224] }, top_k: 0 }
    ]
    await checkParity(vit, 'image_classification', inputs, { pixel_values: { data: one, dims: [3, 224, 224] } })
  })

  it('image_classification: no model call holds more than maxBatch images', async () => {
    const task = new ImageClassificationTask()
    const dir = models.dir('vit')
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'))
    const parts = await task.load({ dir, config, pretrained: { device: 'cpu', dtype: 'fp32', local_files_only: true } })
    const m: LoadedModel = { id: 'vit', dir, task: 'image_classification', config, settings: {}, device: 'cpu', dtype: 'fp32', ...parts }
    try {
      const rows: number[] = []
      const counted: LoadedModel = { ...m, model: async (inputs: { pixel_values: { dims: number[] } }) => { rows.push(inputs.pixel_values.dims[0]); return await m.model(inputs) } }
      const next = random(5)
      const input = (n: number): unknown => ({ pixel_values: { data: Float32Array.from({ length: n * 3 * 224 * 224 }, () => next()), dims: [n, 3, 224, 224] } })
      const items = await Promise.all([input(3), input(1), input(2)].map(async x => (await task.prepare(x, m)).value))
      const whole = await task.run(counted, items)
      assert.deepEqual(rows, [6])
      rows.length = 0
      const split = await task.run(counted, items, { maxBatch: 2 })
      assert.deepEqual(rows, [2, 2, 2])
      assert.deepStrictEqual(split, whole)
    } finally {
      await m.model.dispose()
    }
  })
})

describe('lengthGroups plans over distinct lengths', () => {
  /** The cheapest plan's cost, by the row-by-row search over sorted lengths. */
  function cheapest (lengths: number[], overhead: number): number {
    const sorted = lengths.slice().sort((a, b) => a - b)
    const best = [0]
    for (let j = 1; j <= sorted.length; j++) {
      best[j] = Infinity
      for (let i = 0; i < j; i++) best[j] = Math.min(best[j], best[i] + (j - i) * sorted[j - 1] + overhead)
    }
    return Math.min(best[sorted.length], sorted.length * sorted[sorted.length - 1] + overhead)
  }
  const cost = (lengths: number[], groups: number[][], overhead: number): number =>
    groups.reduce((s, g) => s + g.length * Math.max(...g.map(i => lengths[i])) + overhead, 0)

  it('finds a plan as cheap as the row-by-row search, every row in one group', () => {
    const next = random(11)
    for (let k = 0; k < 200; k++) {
      const n = 1 + Math.floor(next() * 60)
      const spread = 1 + Math.floor(next() * 200)
      const lengths = Array.from({ length: n }, () => 1 + Math.floor(next() * spread))
      const overhead = [0, 5, 32, 100][k % 4]
      const groups = lengthGroups(lengths, overhead)
      assert.deepEqual(groups.flat().sort((a, b) => a - b), lengths.map((_, i) => i))
      assert.equal(cost(lengths, groups, overhead), cheapest(lengths, overhead), JSON.stringify({ lengths, overhead }))
    }
  })

  it('plans a request of 200,000 rows (search over its 60 distinct lengths)', () => {
    const lengths = Array.from({ length: 200_000 }, (_, k) => 3 + (k * 7919) % 60)
    const groups = lengthGroups(lengths, 50)
    assert.equal(groups.flat().length, lengths.length)
    for (const g of groups) {
      const own = new Set(g.map(i => lengths[i]))
      assert.ok(groups.every(other => other === g || other.every(i => !own.has(lengths[i]))), 'rows of one length share a group')
    }
  })
})
