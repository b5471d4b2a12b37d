/**
 * Length-grouped batches of the text embedding task (rows of different lengths run as several model
 * calls, each padded to its own longest row) and the packed float lists the worker sends back.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Tensor } from '@huggingface/transformers'
import { TextEmbeddingTask, lengthGroups, callPlan } from '../../src/inference/tasks/text-embedding.js'
import { ValidationError } from '../../src/errors.js'
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

describe('callPlan', () => {
  it('cuts the length groups into calls of at most maxRows rows, each row in exactly one call', () => {
    assert.deepEqual(callPlan([5, 5, 5], 10, Infinity), [[0, 1, 2]])
    assert.deepEqual(callPlan([5, 5, 5, 5, 5, 5, 5, 5, 5, 5], 10, 4), [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]])
    // A group that must be cut is sorted by length first: the short rows share calls.
    assert.deepEqual(callPlan([9, 2, 9, 2, 9, 2], Infinity, 3), [[1, 3, 5], [0, 2, 4]])
    const lengths = [60, 3, 60, 4, 3, 61, 5, 59, 3, 3]
    const calls = callPlan(lengths, 32, 3)
    assert.ok(calls.every(c => c.length >= 1 && c.length <= 3))
    assert.deepEqual(calls.flat().sort((a, b) => a - b), lengths.map((_, i) => i))
    assert.equal(calls.length, 4, 'groups of 6 short and 4 long rows make 2 + 2 calls')
    assert.deepEqual(callPlan([1, 2], 0, 0), [[0], [1]], 'a nonsensical limit still makes progress')
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

  it('never puts more than maxBatch rows into one model call', async () => {
    const texts = Array.from({ length: 10 }, (_, k) => [101, 2000 + k, 3000 + k, 102])
    const many = await task.prepare({ input_ids: texts }, m)
    const alone: number[][] = []
    for (const ids of texts) alone.push(body((await task.run(m, [(await task.prepare({ input_ids: ids }, m)).value]))[0]) as number[])
    calls = 0
    const rows = body((await task.run(m, [many.value], { maxBatch: 4 }))[0]) as number[][]
    assert.equal(calls, 3, '10 rows at 4 per call')
    rows.forEach((v, i) => assert.ok(close(v, alone[i]), `row ${i}`))
  })

  describe('token_type_ids', () => {
    const ids = [101, 2054, 2003, 102, 2023, 3746, 102]
    const types = [0, 0, 0, 0, 1, 1, 1]

    /** Mean-pooled, L2-normalised vector from transformers.js's own model call with these token types. */
    async function reference (tokenTypes: number[]): Promise<number[]> {
      const t = (a: number[]): Tensor => new Tensor('int64', BigInt64Array.from(a, BigInt), [1, a.length])
      const out = await m.model({ input_ids: t(ids), attention_mask: t(ids.map(() => 1)), token_type_ids: t(tokenTypes) })
      const [, seq, size] = out.last_hidden_state.dims as number[]
      const data = out.last_hidden_state.data as Float32Array
      const mean = Array.from({ length: size }, (_, h) => { let s = 0; for (let i = 0; i < seq; i++) s += data[i * size + h]; return s / seq })
      const norm = Math.sqrt(mean.reduce((s, x) => s + x * x, 0))
      return mean.map(x => x / norm)
    }

    it('feeds them to the model: they change the vector, as transformers.js\'s model call does', async () => {
      const run = async (model: LoadedModel, input: unknown): Promise<number[]> => body((await task.run(model, [(await task.prepare(input, model)).value]))[0]) as number[]
      const zeros = await run(m, { input_ids: ids })
      const segments = await run(m, { input_ids: ids, token_type_ids: types })
      assert.ok(!close(segments, zeros, 1e-4), 'segment B must change the vector')
      assert.ok(close(segments, await reference(types)), 'equals transformers.js with the same token types')
      assert.ok(close(zeros, await reference(types.map(() => 0))))
      assert.ok(close(await run(m, { input_ids: ids, token_type_ids: types.map(() => 0) }), zeros))
      // A model whose session is not a plain encoder goes through transformers.js's call: same values.
      const viaModelCall: LoadedModel = { ...m, model: async (inputs: unknown) => await m.model(inputs) }
      assert.ok(close(await run(viaModelCall, { input_ids: ids, token_type_ids: types }), segments))
    })

    it('keeps each row\'s own token types inside a padded batch', async () => {
      const inputs = [
        { input_ids: ids, token_type_ids: types },
        { input_ids: [101, 2054, 102] },
        { input_ids: [[101, 2000, 102, 2001, 102], ids], token_type_ids: [[0, 0, 0, 1, 1], types] }
      ]
      const prepared = await Promise.all(inputs.map(async input => (await task.prepare(input, m)).value))
      const alone: unknown[] = []
      for (const p of prepared) alone.push(body((await task.run(m, [p]))[0]))
      // Without a size in its config the model never splits by length: every row shares one padded call.
      const oneCall: LoadedModel = { ...m, config: { ...m.config, hidden_size: undefined } }
      calls = 0
      const together = (await task.run(oneCall, prepared)).map(body)
      assert.equal(calls, 1)
      assert.ok(close(together[0] as number[], alone[0] as number[]))
      assert.ok(close(together[1] as number[], alone[1] as number[]))
      ;(alone[2] as number[][]).forEach((v, r) => assert.ok(close((together[2] as number[][])[r], v), `row ${r}`))
    })

    it('rejects token types that do not fit the ids or the model', async () => {
      const cases: Array<[unknown, string]> = [
        [{ input_ids: ids, token_type_ids: 'garbage' }, 'token_type_ids'],
        [{ input_ids: ids, token_type_ids: [0, 1] }, 'token_type_ids'],
        [{ input_ids: ids, token_type_ids: [0, 0, 0, 0, 2, 2, 2] }, 'token_type_ids[4]'],
        [{ input_ids: ids, token_type_ids: [0, 0, 0, 0, -1, 1, 1] }, 'token_type_ids[4]'],
        [{ input_ids: [ids, ids], token_type_ids: [types] }, 'token_type_ids'],
        [{ text: 'hello', token_type_ids: [0, 0, 0] }, 'token_type_ids'],
        [{ text: 'hello', attention_mask: [1, 1, 1] }, 'attention_mask'],
        [{ text: 'hello', texts: ['a', 'b'] }, 'texts']
      ]
      for (const [input, field] of cases) {
        await assert.rejects(task.prepare(input, m), (err: unknown) =>
          err instanceof ValidationError && err.context.field === field, JSON.stringify(input))
      }
    })
  })
})
