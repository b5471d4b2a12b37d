import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { Batcher } from '../../src/inference/batcher.js'
import { Semaphore } from '../../src/inference/semaphore.js'
import { ResultCache } from '../../src/inference/result-cache.js'
import { checkPlainInput } from '../../src/inference/canonical-input.js'
import { ValidationError } from '../../src/errors.js'

describe('Batcher', () => {
  it('merges concurrent submissions up to maxBatch rows and returns each caller its own result', async () => {
    const calls: number[][] = []
    const batcher = new Batcher<number, number>({ maxBatch: 4, windowMs: 0 }, async items => {
      calls.push(items)
      return items.map(x => x * 10)
    })
    const results = await Promise.all([1, 2, 3, 4, 5, 6].map(async x => await batcher.submit(x)))
    assert.deepEqual(results, [10, 20, 30, 40, 50, 60])
    assert.deepEqual(calls, [[1, 2, 3, 4], [5, 6]])
  })

  it('counts rows, not requests, and runs an oversized request alone', async () => {
    const calls: string[][] = []
    const batcher = new Batcher<string, string>({ maxBatch: 4, windowMs: 0 }, async items => {
      calls.push(items)
      return items.map(x => x.toUpperCase())
    })
    await Promise.all([batcher.submit('a', 3), batcher.submit('b', 2), batcher.submit('c', 6), batcher.submit('d', 1)])
    assert.deepEqual(calls, [['a'], ['b'], ['c'], ['d']])
  })

  it('isolates a failing request: its neighbours still get their results', async () => {
    const batcher = new Batcher<number, number>({ maxBatch: 8, windowMs: 0 }, async items => {
      if (items.includes(3)) throw new Error('bad item 3')
      return items.map(x => x + 1)
    })
    const settled = await Promise.allSettled([1, 2, 3, 4].map(async x => await batcher.submit(x)))
    assert.deepEqual(settled.map(s => s.status), ['fulfilled', 'fulfilled', 'rejected', 'fulfilled'])
    assert.equal((settled[3] as PromiseFulfilledResult<number>).value, 5)
  })

  it('stops waiting for the window once a batch is full', async () => {
    const calls: number[][] = []
    const batcher = new Batcher<number, number>({ maxBatch: 4, windowMs: 60_000 }, async items => {
      calls.push(items)
      return items
    })
    // With a one-minute window, only the early flush of a full batch lets this finish.
    const results = await Promise.all([1, 2, 3, 4].map(async x => await batcher.submit(x)))
    assert.deepEqual(results, [1, 2, 3, 4])
    assert.deepEqual(calls, [[1, 2, 3, 4]])
  })

  it('starts a batch of one at once, without waiting for a turn of the event loop', async () => {
    const calls: number[][] = []
    const batcher = new Batcher<number, number>({ maxBatch: 1, windowMs: 2 }, async items => {
      calls.push(items)
      return items.map(x => -x)
    })
    const first = batcher.submit(1)
    const second = batcher.submit(2)
    assert.deepEqual(calls, [[1]], 'the first request runs as it is submitted; the second waits for it')
    assert.deepEqual(await Promise.all([first, second]), [-1, -2])
    assert.deepEqual(calls, [[1], [2]])
  })

  it('waits for the window before the first batch when batching', async () => {
    const calls: number[][] = []
    const batcher = new Batcher<number, number>({ maxBatch: 16, windowMs: 20 }, async items => {
      calls.push(items)
      return items
    })
    const first = batcher.submit(1)
    await new Promise(resolve => setTimeout(resolve, 1))
    const second = batcher.submit(2)
    await Promise.all([first, second])
    assert.deepEqual(calls, [[1, 2]])
  })
})

describe('Semaphore', () => {
  it('never lets more than its limit run at once, and keeps FIFO order', async () => {
    const sem = new Semaphore(2)
    let running = 0
    let peak = 0
    const order: number[] = []
    await Promise.all(Array.from({ length: 8 }, async (_, i) => await sem.run(async () => {
      running++
      peak = Math.max(peak, running)
      order.push(i)
      await new Promise(resolve => setTimeout(resolve, 2))
      running--
    })))
    assert.equal(peak, 2)
    assert.deepEqual(order, [0, 1, 2, 3, 4, 5, 6, 7])
  })

  it('releases its slot when the task throws', async () => {
    const sem = new Semaphore(1)
    await assert.rejects(sem.run(async () => { throw new Error('x') }))
    assert.equal(await sem.run(async () => 7), 7)
  })
})

describe('ResultCache', () => {
  it('keys on canonical input: key order does not matter, any difference in the data does', () => {
    const a = ResultCache.key('m', 'text_embedding', { input_ids: [1, 2], attention_mask: [1, 1] })
    assert.equal(a, ResultCache.key('m', 'text_embedding', { attention_mask: [1, 1], input_ids: [1, 2] }))
    assert.notEqual(a, ResultCache.key('m', 'text_embedding', { input_ids: [1, 3], attention_mask: [1, 1] }))
    assert.notEqual(a, ResultCache.key('other', 'text_embedding', { input_ids: [1, 2], attention_mask: [1, 1] }))
    // A cache hit skips the worker's validation, so inputs it could treat differently never share a key.
    const distinct = [
      { input_ids: [101, 102] },
      { input_ids: ['101', '102'] },
      { input_ids: [101n, 102n] },
      { input_ids: BigInt64Array.from([101n, 102n]) },
      { input_ids: Int32Array.from([101, 102]) },
      { input_ids: [101, 102], extra: undefined },
      { input_ids: [101, 102], extra: null },
      { input_ids: [NaN] },
      { input_ids: [null] },
      { input_ids: [Infinity] },
      { input_ids: ['Infinity'] }
    ]
    const keys = new Set(distinct.map(input => ResultCache.key('m', 'text_embedding', input)))
    assert.equal(keys.size, distinct.length)
  })

  it('refuses inputs that are not plain data, naming where they are', () => {
    const circular: Record<string, unknown> = { input_ids: [1] }
    circular.self = circular
    const deep: unknown[] = []
    let cursor = deep
    for (let i = 0; i < 100; i++) { const next: unknown[] = []; cursor.push(next); cursor = next }
    const cases: Array<[unknown, RegExp]> = [
      [{ input_ids: [1, () => 2] }, /input\.input_ids\[1\]: is a function/],
      [{ text: Symbol('x') }, /input\.text: is a symbol/],
      [circular, /input\.self: refers back/],
      [{ pixel_values: new Map() }, /input\.pixel_values: is a Map/],
      [{ pixel_values: deep }, /nested more than/]
    ]
    for (const [input, message] of cases) {
      assert.throws(() => { checkPlainInput(input) }, (err: unknown) => err instanceof ValidationError && message.test(err.message))
    }
    // Plain data passes, shared (non-circular) references included.
    const shared = [1, 2]
    checkPlainInput({ input_ids: [shared, shared], bytes: new Uint8Array(2), buf: new ArrayBuffer(4), n: 1n, s: 'x', u: undefined, z: null })
  })

  it('stays within its byte bound, evicting the least recently used first', () => {
    const cache = new ResultCache(250)
    const value = (n: number): Record<string, unknown> => ({ embedding: Array.from({ length: 10 }, () => n) })
    cache.set('a'.repeat(64), value(1))
    cache.set('b'.repeat(64), value(2))
    cache.get('a'.repeat(64)) // a is now the most recent
    cache.set('c'.repeat(64), value(3))
    assert.ok(cache.stats().bytes <= 250)
    assert.deepEqual(cache.get('a'.repeat(64)), value(1))
    assert.equal(cache.get('b'.repeat(64)), undefined)
    cache.set('huge', { embedding: new Array(1000).fill(1) })
    assert.equal(cache.get('huge'), undefined, 'an entry larger than the bound is not stored')
  })
})
