/**
 * Length-grouped batches of the text embedding task (rows of different lengths run as several model
 * calls, each padded to its own longest row) and the packed float lists the worker sends back.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { TextEmbeddingTask, lengthGroups } from '../../src/inference/tasks/text-embedding.js'
import { floatList, unpackFloatLists } from '../../src/inference/protocol.js'
import type { LoadedModel } from '../../src/inference/tasks/task-handler.js'
import { tinyModels, type TinyModels } from '../helpers/tiny-models.js'

const close = (a: number[], b: number[], tol = 1e-5): boolean => a.length === b.length && a.every((v, i) => Math.abs(v - b[i]) <= tol)

describe('lengthGroups', () => {
  it('keeps one group, in order, when splitting gains nothing', () => {
    assert.deepEqual(lengthGroups([5, 5, 5], 10), [[0, 1, 2]])
    assert.deepEqual(lengthGroups([3, 9, 4], Infinity), [[0, 1, 2]])
    assert.deepEqual(lengthGroups([7], 0), [[0]])
    // Saving 2 x 1 padded tokens does not pay for another call.
    assert.deepEqual(lengthGroups([8, 9, 8], 32), [[0, 1, 2]])
  })

  it('splits rows of very different lengths, each row in exactly one group', () => {
    const lengths = [60, 3, 60, 4, 3, 61, 5, 59]
    const groups = lengthGroups(lengths, 32)
    assert.equal(groups.length, 2)
    assert.deepEqual(groups.flat().sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7])
    assert.deepEqual(groups[0].map(i => lengths[i]).sort((a, b) => a - b), [3, 3, 4, 5])
    assert.deepEqual(groups[1].map(i => lengths[i]).sort((a, b) => a - b), [59, 60, 60, 61])
  })

  it('chooses the cheapest cuts: rows x longest row plus the overhead per call', () => {
    // 64 rows of 8..16 tokens, as the batching benchmark sends: two groups at an overhead of 50 tokens.
    const lengths = Array.from({ length: 64 }, (_, k) => 8 + (k % 9))
    const groups = lengthGroups(lengths, 50)
    const cost = (gs: number[][]): number => gs.reduce((s, g) => s + g.length * Math.max(...g.map(i => lengths[i])) + 50, 0)
    assert.equal(groups.length, 2)
    assert.ok(cost(groups) < cost([lengths.map((_, i) => i)]))
    // A smaller overhead allows more groups, never a costlier plan than fewer groups.
    assert.ok(lengthGroups(lengths, 5).length > 2)
  })
})

describe('unpackFloatLists', () => {
  it('turns packed float32 lists back into plain lists, wherever they sit', () => {
    const a = new Float32Array([0.5, -1.25, 3])
    const b = new Float32Array([1, 2])
    const value = unpackFloatLists({ embedding: [floatList(a), floatList(b)], single: floatList(a), model: 'm', ids: [1, 2], t: 0.1 }) as Record<string, unknown>
    assert.deepEqual(value, { embedding: [[0.5, -1.25, 3], [1, 2]], single: [0.5, -1.25, 3], model: 'm', ids: [1, 2], t: 0.1 })
    assert.ok(Array.isArray(value.single))
    assert.deepEqual(unpackFloatLists([[floatList(b)]]), [[[1, 2]]])
    assert.equal(unpackFloatLists(null), null)
    assert.equal(unpackFloatLists('x'), 'x')
  })
})

describe('text_embedding batches split by length', () => {
  let models: TinyModels
  let m: LoadedModel
  let calls = 0
  const task = new TextEmbeddingTask()

  before(async () => {
    models = await tinyModels(['bert'])
    const dir = models.dir('bert')
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'))
    const parts = await task.load({ dir, config, pretrained: { device: 'cpu', dtype: 'fp32', local_files_only: true } })
    // Claim a large model so that the per-call overhead is small next to padding: batches split.
    m = { id: 'bert', dir, task: 'text_embedding', config: { ...config, hidden_size: 4096, intermediate_size: 16384, num_hidden_layers: 24 }, settings: {}, device: 'cpu', dtype: 'fp32', ...parts }
    const session = m.model.sessions.model
    const run = session.run.bind(session)
    session.run = async (...args: unknown[]) => { calls++; return await run(...args) }
  })
  after(async () => {
    await m?.model?.dispose()
    models.cleanup()
  })

  const body = (r: Record<string, unknown>): unknown => unpackFloatLists(r.embedding)

  it('gives every row what it gets alone, in the callers\' order, with fewer padded tokens', async () => {
    const long = (k: number): number[] => [101, ...Array.from({ length: 40 }, (_, i) => 1000 + ((k * 13 + i * 7) % 2000)), 102]
    const short = (k: number): number[] => [101, 2000 + k, 102]
    const inputs = [
      { input_ids: long(0) },
      { input_ids: short(1) },
      { input_ids: [short(2), long(3), short(4)] },
      { input_ids: long(5), pooling: 'cls', normalize: false },
      { input_ids: short(6), pooling: 'none' },
      { input_ids: short(7), attention_mask: [1, 1, 0] }
    ]
    const prepared = await Promise.all(inputs.map(async input => (await task.prepare(input, m)).value))
    const alone: unknown[] = []
    for (const p of prepared) alone.push(body((await task.run(m, [p]))[0]))
    calls = 0
    const together = (await task.run(m, prepared)).map(body)
    assert.equal(calls, 2, 'short and long rows run as two model calls')
    together.forEach((got, i) => {
      const want = alone[i]
      if (inputs[i].pooling === 'none') {
        (want as number[][]).forEach((v, t) => assert.ok(close((got as number[][])[t], v), `request ${i} token ${t}`))
      } else if (Array.isArray((want as unknown[])[0])) {
        (want as number[][]).forEach((v, r) => assert.ok(close((got as number[][])[r], v), `request ${i} row ${r}`))
      } else {
        assert.ok(close(got as number[], want as number[]), `request ${i}`)
      }
    })
  })
})
