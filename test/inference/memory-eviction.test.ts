/**
 * hardware.max_memory with more models than fit: a model is never unloaded while a request still needs
 * it, loads wait for models in use instead, and the weights loaded at once stay within the bound.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { resolveConfig } from '../../src/config/resolve.js'
import { ModelLoadError } from '../../src/errors.js'
import { estimateModelBytes } from '../../src/hardware/model-files.js'
import { IpfsAccelerate } from '../../src/index.js'
import type { LoadContext, TaskHandler } from '../../src/inference/tasks/task-handler.js'
import { WorkerEngine } from '../../src/inference/worker-engine.js'
import { tinyModels, type TinyModels } from '../helpers/tiny-models.js'
import { cpuOnly } from '../helpers/cpu-only-hardware.js'

/** What the engine really holds: sessions created and not yet disposed of, checked against the bound at every load. */
interface Tracker {
  live: Map<string, number>
  peak: number
  violations: string[]
  loads: string[]
}

/** An engine whose task handlers record each real load and disposal. */
function trackedEngine (resources: Parameters<typeof resolveConfig>[0], sizes: Record<string, number>, max: number): { engine: WorkerEngine, tracker: Tracker, logs: string[] } {
  const logs: string[] = []
  const engine = new WorkerEngine(resolveConfig(resources, { env: {} }), cpuOnly(), { progress: () => {}, log: (_level, msg) => { logs.push(msg) } })
  const tracker: Tracker = { live: new Map(), peak: 0, violations: [], loads: [] }
  const liveBytes = (): number => [...tracker.live.values()].reduce((a, b) => a + b, 0)
  const tasks = (engine as unknown as { tasks: Record<string, TaskHandler> }).tasks
  for (const handler of Object.values(tasks)) {
    const load = handler.load.bind(handler)
    handler.load = async (ctx: LoadContext) => {
      const bytes = sizes[ctx.dir] ?? 0
      if (liveBytes() + bytes > max) tracker.violations.push(`${ctx.dir} loaded while ${[...tracker.live.keys()].join(', ')} still were`)
      const parts = await load(ctx)
      const id = `${ctx.dir}#${tracker.loads.length}`
      tracker.loads.push(ctx.dir)
      tracker.live.set(id, bytes)
      tracker.peak = Math.max(tracker.peak, liveBytes())
      const dispose = parts.model.dispose.bind(parts.model)
      parts.model.dispose = async () => {
        tracker.live.delete(id)
        return await dispose()
      }
      return parts
    }
  }
  return { engine, tracker, logs }
}

describe('hardware.max_memory with models in use', () => {
  let models: TinyModels
  let bert: string
  let gpt2: string
  let sizes: Record<string, number>
  let max: number

  before(async () => {
    models = await tinyModels(['bert', 'gpt2'])
    bert = models.dir('bert')
    gpt2 = models.dir('gpt2')
    sizes = { [bert]: await estimateModelBytes(bert, 'fp32', ['model']), [gpt2]: await estimateModelBytes(gpt2, 'fp32', ['model']) }
    // Room for either model, never both.
    max = Math.max(sizes[bert], sizes[gpt2]) + 1000
    assert.ok(sizes[bert] + sizes[gpt2] > max)
  })
  after(() => { models.cleanup() })

  it('answers every one of 10 embedding and 10 generation requests made at once, within the bound', async () => {
    const { engine, tracker, logs } = trackedEngine({ hardware: { max_memory: max }, logging: { level: 'SILENT' } }, sizes, max)
    try {
      const calls: Array<Promise<string>> = []
      for (let i = 0; i < 10; i++) {
        calls.push(engine.infer(bert, { input_ids: [1, 2, 3 + i] }, 'text_embedding', () => {})
          .then(r => r.embedding !== undefined ? 'bert ok' : 'bert: no embedding', (e: Error) => `bert ${e.name}: ${e.message}`))
        calls.push(engine.infer(gpt2, { input_ids: [1, 2, 3 + i], max_new_tokens: 8 }, 'text_generation', () => {})
          .then(() => 'gpt2 ok', (e: Error) => `gpt2 ${e.name}: ${e.message}`))
      }
      const counts: Record<string, number> = {}
      for (const r of await Promise.all(calls)) counts[r] = (counts[r] ?? 0) + 1
      assert.deepEqual(counts, { 'bert ok': 10, 'gpt2 ok': 10 })
      assert.deepEqual(tracker.violations, [])
      assert.ok(tracker.peak <= max, `peak ${tracker.peak} > ${max}`)
      assert.ok(logs.some(m => /unloading .* to stay within hardware\.max_memory/.test(m)), 'one model made room for the other')
      assert.ok(logs.some(m => /waits for models in use to finish/.test(m)), 'a load waited for the model in use')

      // The engine is still sound afterwards: each model answers alone, and again alternately.
      for (const m of [bert, gpt2, bert]) {
        const input = m === bert ? { input_ids: [1, 2] } : { input_ids: [1, 2], max_new_tokens: 2 }
        await engine.infer(m, input, m === bert ? 'text_embedding' : 'text_generation', () => {})
      }
      assert.deepEqual(tracker.violations, [])
    } finally {
      await engine.stop()
    }
    assert.equal(tracker.live.size, 0, 'stop() disposed of everything')
  })

  it('gives a load waiting for memory its turn even while another model is in steady use', async () => {
    const { engine, tracker } = trackedEngine({ hardware: { max_memory: max }, logging: { level: 'SILENT' } }, sizes, max)
    try {
      await engine.infer(bert, { input_ids: [1, 2] }, 'text_embedding', () => {})
      // Two chains of back-to-back embedding requests keep bert in use without a pause.
      let running = true
      let chained = 0
      const chain = async (): Promise<void> => {
        while (running && chained < 2000) {
          chained++
          await engine.infer(bert, { input_ids: [1, 2, 3] }, 'text_embedding', () => {})
        }
      }
      const chains = [chain(), chain()]
      const generated = await engine.infer(gpt2, { input_ids: [1, 2, 3], max_new_tokens: 4 }, 'text_generation', () => {})
      running = false
      await Promise.all(chains)
      assert.ok(generated !== undefined)
      assert.ok(chained < 2000, 'the generation did not have to wait for the chains to end')
      assert.deepEqual(tracker.violations, [])
    } finally {
      await engine.stop()
    }
  })

  it('still refuses a model larger than the bound with ModelLoadError, and keeps serving the others', async () => {
    const small = Math.min(sizes[bert], sizes[gpt2])
    const large = small === sizes[bert] ? gpt2 : bert
    const fits = large === bert ? gpt2 : bert
    const { engine, tracker } = trackedEngine({ hardware: { max_memory: small + 10 }, logging: { level: 'SILENT' } }, sizes, small + 10)
    try {
      const fitsInput = fits === bert ? { input_ids: [1, 2] } : { input_ids: [1, 2], max_new_tokens: 2 }
      const task = (m: string): string => m === bert ? 'text_embedding' : 'text_generation'
      const inUse = engine.infer(fits, fitsInput, task(fits), () => {})
      await assert.rejects(engine.loadModel(large, task(large), () => {}), (err: unknown) =>
        err instanceof ModelLoadError && /more than hardware\.max_memory allows/.test(err.message) && err.context.field === 'hardware.max_memory')
      await inUse
      await engine.infer(fits, fitsInput, task(fits), () => {})
      assert.deepEqual(tracker.loads, [fits], 'the model in use was neither unloaded nor reloaded')
    } finally {
      await engine.stop()
    }
  })

  it('through IpfsAccelerate (inference worker): the audit scenario succeeds for every request', async () => {
    const acc = new IpfsAccelerate({ hardware: { max_memory: max }, performance: { enable_caching: false }, logging: { level: 'SILENT' } }, {}, { env: {} })
    try {
      const calls: Array<Promise<string>> = []
      for (let i = 0; i < 10; i++) {
        calls.push(acc.processAsync(bert, { input_ids: [1, 2, 3 + i] }, 'text_embedding').then(() => 'bert ok', (e: Error) => `bert ${e.name}: ${e.message}`))
        calls.push(acc.processAsync(gpt2, { input_ids: [1, 2, 3 + i], max_new_tokens: 8 }, 'text_generation').then(() => 'gpt2 ok', (e: Error) => `gpt2 ${e.name}: ${e.message}`))
      }
      const counts: Record<string, number> = {}
      for (const r of await Promise.all(calls)) counts[r] = (counts[r] ?? 0) + 1
      assert.deepEqual(counts, { 'bert ok': 10, 'gpt2 ok': 10 })
    } finally {
      await acc.stop()
    }
  })
})
