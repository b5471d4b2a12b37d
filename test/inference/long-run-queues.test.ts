/**
 * Requests given up while they wait (for a `parallel_requests` slot, a batch or the sampling lock)
 * leave the line at once: a server whose callers time out under load must not keep every input it
 * was sent until the long model calls ahead of them end.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { resolveConfig } from '../../src/config/resolve.js'
import { Batcher } from '../../src/inference/batcher.js'
import { Semaphore } from '../../src/inference/semaphore.js'
import { WorkerEngine } from '../../src/inference/worker-engine.js'
import { tinyModels, type TinyModels } from '../helpers/tiny-models.js'
import { cpuOnly } from '../helpers/cpu-only-hardware.js'

/** A promise's outcome after a few turns of the event loop, or 'pending'. */
async function outcome (p: Promise<unknown>): Promise<string> {
  let state = 'pending'
  p.then(() => { state = 'resolved' }, (err: Error) => { state = err.name })
  for (let i = 0; i < 5; i++) await new Promise(resolve => setImmediate(resolve))
  return state
}

/** A slot holder that finishes when `open` is called. */
function gate (): { closed: Promise<void>, open: () => void } {
  let open!: () => void
  const closed = new Promise<void>(resolve => { open = resolve })
  return { closed, open }
}

describe('waiting requests given up', () => {
  it('Semaphore: a waiter whose signal fires leaves the line at once; the others keep their order', async () => {
    const semaphore = new Semaphore(1)
    const slot = gate()
    const holder = semaphore.run(async () => { await slot.closed })
    const given = new AbortController()
    const order: string[] = []
    const gaveUp = semaphore.run(async () => { order.push('gave up') }, given.signal)
    const kept = semaphore.run(async () => { order.push('kept') }, new AbortController().signal)
    given.abort()
    assert.equal(await outcome(gaveUp), 'AbortError')
    assert.equal(semaphore.pending, 1)
    slot.open()
    await Promise.all([holder, kept])
    assert.deepEqual(order, ['kept'])
    // The slots all came back: a new caller runs at once.
    assert.equal(await outcome(semaphore.run(async () => {})), 'resolved')
  })

  it('Batcher: a queued item whose signal fires leaves the queue at once, waiting for its slot or not', async () => {
    const semaphore = new Semaphore(1)
    const batches: number[][] = []
    const batcher = new Batcher<number, number>({ maxBatch: 4, windowMs: 0, slot: async fn => await semaphore.run(fn) }, async items => {
      batches.push(items)
      return items.map(i => i * 10)
    })
    const slot = gate()
    const holder = semaphore.run(async () => { await slot.closed })
    const given = new AbortController()
    const gaveUp = batcher.submit(1, 1, given.signal)
    const kept = batcher.submit(2, 1)
    given.abort()
    assert.equal(await outcome(gaveUp), 'AbortError')
    assert.equal(batcher.pending, 1)
    slot.open()
    await holder
    assert.equal(await kept, 20)
    assert.deepEqual(batches, [[2]])
  })

  describe('in the engine', () => {
    let models: TinyModels
    before(async () => { models = await tinyModels(['bert', 'gpt2']) })
    after(() => { models.cleanup() })

    it('a batched and an unbatched request given up behind a busy slot fail at once and leave nothing queued', async () => {
      const engine = new WorkerEngine(resolveConfig({ performance: { parallel_requests: 1 }, logging: { level: 'SILENT' } }, { env: {} }), cpuOnly(), { progress: () => {}, log: () => {} })
      const bert = models.dir('bert')
      const gpt2 = models.dir('gpt2')
      try {
        await engine.loadModel(bert, 'text_embedding', () => {})
        await engine.loadModel(gpt2, 'text_generation', () => {})
        // The one parallel_requests slot is taken (a long model call, as far as the others can tell).
        const semaphore = (engine as unknown as { semaphore: Semaphore }).semaphore
        const slot = gate()
        const holder = semaphore.run(async () => { await slot.closed })
        const given = new AbortController()
        const embedding = engine.infer(bert, { input_ids: [101, 7, 102] }, 'text_embedding', () => {}, undefined, undefined, given.signal)
        const generation = engine.infer(gpt2, { input_ids: [1, 2], max_new_tokens: 2 }, 'text_generation', () => {}, undefined, undefined, given.signal)
        // Both are prepared and waiting (the batcher for its slot, the generation for one).
        while (semaphore.pending < 2) await new Promise(resolve => setImmediate(resolve))
        given.abort()
        assert.deepEqual(await Promise.all([outcome(embedding), outcome(generation)]), ['AbortError', 'AbortError'])
        // The batcher's own turn may still wait, but holds no request.
        assert.ok(semaphore.pending <= 1, `pending ${semaphore.pending}`)
        slot.open()
        await holder
        const r = await engine.infer(bert, { input_ids: [101, 7, 102] }, 'text_embedding', () => {})
        assert.ok(r.embedding !== undefined, "the engine still serves")
      } finally {
        await engine.stop()
      }
    })
  })
})
