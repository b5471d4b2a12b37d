/**
 * Lifecycle and concurrency: the concurrency bound holds under any interleaving, a shared signal costs
 * one listener and none is left behind, stop() is one stop however often it is called and refuses calls
 * at once, a crashed worker is recovered from, and the process is never aborted by a worker ended (or
 * left behind at exit) in the middle of an onnxruntime call.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { getEventListeners, once } from 'node:events'
import { join } from 'node:path'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { pathToFileURL } from 'node:url'
import { spawnSync } from 'node:child_process'
import { IpfsAccelerate, AbortError } from '../../src/index.js'
import { Semaphore } from '../../src/inference/semaphore.js'
import { tinyModels, type TinyModels } from '../helpers/tiny-models.js'
import { workerOf } from '../helpers/engine-worker-of.js'

const quiet = { logging: { level: 'SILENT' } } as const

/** Runs a script in a fresh Node process (tsx), with the repository's index as `index`. */
function runScript (body: string): ReturnType<typeof spawnSync> & { stdout: string, stderr: string } {
  const dir = mkdtempSync(join(tmpdir(), 'ia-lifecycle-'))
  try {
    const script = join(dir, 'script.mts')
    const index = pathToFileURL(join(process.cwd(), 'src', 'index.ts')).href
    writeFileSync(script, `import { IpfsAccelerate } from ${JSON.stringify(index)}\n${body}`)
    return spawnSync(process.execPath, ['--import', 'tsx', script], { encoding: 'utf8', timeout: 180_000 })
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

describe('Semaphore', () => {
  it('never runs more than its limit, whatever microtask a newcomer arrives in', async () => {
    // A newcomer arriving in each microtask after a slot is released, one of which lands between the
    // release and the resumption of the waiter woken for it.
    for (let depth = 0; depth < 6; depth++) {
      const semaphore = new Semaphore(1)
      let active = 0
      let peak = 0
      const task = async (hold: Promise<void>): Promise<void> => {
        active++
        peak = Math.max(peak, active)
        await hold
        active--
      }
      let releaseFirst!: () => void
      const first = semaphore.run(async () => { await task(new Promise<void>(resolve => { releaseFirst = resolve })) })
      const waiter = semaphore.run(async () => { await task(new Promise<void>(resolve => setTimeout(resolve, 1))) })
      let newcomer: Promise<void> | undefined
      const inMicrotask = (n: number, f: () => void): void => { if (n === 0) f(); else queueMicrotask(() => { inMicrotask(n - 1, f) }) }
      releaseFirst()
      inMicrotask(depth, () => { newcomer = semaphore.run(async () => { await task(new Promise<void>(resolve => setTimeout(resolve, 1))) }) })
      await first
      await waiter
      await newcomer
      assert.equal(peak, 1, `a newcomer ${depth} microtasks after a release ran beside the woken waiter`)
    }
  })
})

describe('inference engine lifecycle', () => {
  let models: TinyModels
  let bert: string
  let gpt2: string

  before(async () => {
    models = await tinyModels(['bert', 'gpt2'])
    bert = models.dir('bert')
    gpt2 = models.dir('gpt2')
  })
  after(() => { models.cleanup() })

  it('a signal shared by many calls gets one listener, and none is left once they settle (answered, stopped or crashed)', async () => {
    const warnings: string[] = []
    const onWarning = (w: Error): void => { warnings.push(w.name) }
    process.on('warning', onWarning)
    const acc = new IpfsAccelerate({ ...quiet, performance: { enable_caching: false } }, {}, { env: {} })
    try {
      const signal = new AbortController().signal
      const calls = Array.from({ length: 20 }, async (_, i) => await acc.processAsync(bert, { input_ids: [101, 200 + i, 102] }, 'text_embedding', { signal }))
      await new Promise(resolve => setImmediate(resolve))
      assert.equal(getEventListeners(signal, 'abort').length, 1)
      await Promise.all(calls)
      assert.equal(getEventListeners(signal, 'abort').length, 0)
      // Calls failed by a crash of the worker (ended before it gets them: it is never inside a model call).
      const crashed = Array.from({ length: 5 }, async () => await acc.processAsync(gpt2, { prompt: 'hi', max_new_tokens: 50 }, 'text_generation', { signal }).then(() => 'answered', (e: Error) => e.name))
      await workerOf(acc).terminate()
      assert.deepEqual(await Promise.all(crashed), Array(5).fill('InferenceError'))
      assert.equal(getEventListeners(signal, 'abort').length, 0, 'listeners left after the worker crashed')
      // Calls failed by stop().
      await acc.processAsync(gpt2, { prompt: 'hi', max_new_tokens: 1 }, 'text_generation')
      // Long enough (~0.7 s each) that none can end on its own before stop() comes, however late the timer fires.
      const stopped = Array.from({ length: 5 }, async () => await acc.processAsync(gpt2, { prompt: 'hi', max_new_tokens: 1000 }, 'text_generation', { signal }).then(() => 'answered', (e: Error) => e.name))
      await new Promise(resolve => setTimeout(resolve, 20))
      await acc.stop()
      assert.deepEqual(await Promise.all(stopped), Array(5).fill('AbortError'))
      assert.equal(getEventListeners(signal, 'abort').length, 0, 'listeners left after stop()')
      await new Promise(resolve => setImmediate(resolve))
      assert.deepEqual(warnings.filter(name => name === 'MaxListenersExceededWarning'), [])
    } finally {
      process.off('warning', onWarning)
      await acc.stop()
    }
  })

  it('stop() is one stop: a second call resolves only once the worker is gone, and no call is answered meanwhile', async () => {
    const acc = new IpfsAccelerate({ ...quiet, performance: { enable_caching: true } }, {}, { env: {} })
    const input = { input_ids: [101, 102] }
    await acc.processAsync(bert, input, 'text_embedding')
    let exited = false
    workerOf(acc).once('exit', () => { exited = true })
    const first = acc.stop()
    // The cache still holds the result while stop() runs: it must not answer.
    assert.throws(() => acc.process(bert, input, 'text_embedding'), AbortError)
    await assert.rejects(acc.processAsync(bert, input, 'text_embedding'), AbortError)
    await assert.rejects(acc.unloadModel(bert), AbortError)
    await acc.stop()
    assert.equal(exited, true, 'the second stop() resolved before the worker exited')
    await first
  })

  it('after the worker crashed, unloadModel answers false and the next call starts a new worker', async () => {
    const acc = new IpfsAccelerate({ ...quiet, performance: { enable_caching: false } }, {}, { env: {} })
    try {
      await acc.processAsync(bert, { input_ids: [101, 102] }, 'text_embedding')
      const worker = workerOf(acc)
      const exited = once(worker, 'exit')
      await worker.terminate()
      await exited
      assert.equal(await acc.unloadModel(bert), false)
      assert.equal((acc.process(bert, { input_ids: [101, 102] }, 'text_embedding').embedding as number[]).length, 32)
      assert.notEqual(workerOf(acc), worker)
    } finally {
      await acc.stop()
    }
  })

  it('never aborts the process over a model call in progress: stop() during one, or a script ending after giving one up', async () => {
    // One long model call: a single onnxruntime run of a deep (compute-heavy, small-memory) model over
    // many rows. Ending the worker inside it, or exiting the process while the worker is inside it,
    // aborts the process (SIGABRT).
    const deep = await tinyModels(['bert'], { bert: { hiddenSize: 256, numLayers: 32, numHeads: 8 } })
    try {
      const setup = `const bert = ${JSON.stringify(deep.dir('bert'))}
const rows = (n: number) => ({ input_ids: Array.from({ length: n }, (_, j) => Array.from({ length: 64 }, (_, k) => 100 + ((j * 7 + k) % 3000))) })
const acc = new IpfsAccelerate({ logging: { level: 'SILENT' }, hardware: { batch_size: 4096 } }, {}, { env: {} })
await acc.initEndpoints([bert])
`
      // stop() while the call runs on longer than the old 5 s grace: the worker is not terminated under it.
      const stopped = runScript(`${setup}
const call = acc.processAsync(bert, rows(200), 'text_embedding').then(() => 'answered', (e: Error) => e.name)
await new Promise(resolve => setTimeout(resolve, 500))
await acc.stop()
console.log(await call)
`)
      assert.equal(stopped.signal, null, `stop() aborted the process: ${stopped.stderr}`)
      assert.equal(stopped.status, 0, stopped.stderr)
      assert.equal(stopped.stdout.trim(), 'AbortError')
      // The caller gives up, and the script ends without stop(): the process waits for the worker's answer.
      const abandoned = runScript(`${setup}
const controller = new AbortController()
const call = acc.processAsync(bert, rows(64), 'text_embedding', { signal: controller.signal })
setTimeout(() => { controller.abort() }, 500)
console.log(await call.then(() => 'answered', (e: Error) => e.name))
`)
      assert.equal(abandoned.signal, null, `the process was aborted at exit: ${abandoned.stderr}`)
      assert.equal(abandoned.status, 0, abandoned.stderr)
      assert.equal(abandoned.stdout.trim(), 'AbortError')
    } finally {
      deep.cleanup()
    }
  })
})
