/**
 * The engine survives what callers throw at it: inputs that are not plain data, callbacks that throw,
 * a worker that dies, inputs that would collide in the result cache, and libraries that write to the
 * console.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { join } from 'node:path'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { pathToFileURL } from 'node:url'
import { spawnSync } from 'node:child_process'
import type { Worker } from 'node:worker_threads'
import { IpfsAccelerate, ValidationError, InferenceError, AbortError, ModelLoadError, getInstance, resetInstance } from '../../src/index.js'
import { routeConsole } from '../../src/inference/worker-console.js'
import { serveModelsAsHub } from '../helpers/hub-server.js'
import { tinyModels, type TinyModels } from '../helpers/tiny-models.js'
import { runChildScript } from '../helpers/child-script.js'
import { workerOf } from '../helpers/engine-worker-of.js'

const quiet = { logging: { level: 'SILENT' } } as const

/** Watches what the worker sends: which requests streamed tokens, how many, and how each ended. */
function watchWorker (worker: Worker): { streamed: () => number[], tokens: (id: number) => number, ended: (id: number) => Promise<string>, stop: () => void } {
  const tokens = new Map<number, number>()
  const ends = new Map<number, string>()
  const waiting = new Map<number, (how: string) => void>()
  const listener = (messages: Array<{ type: string, id?: number }>): void => {
    for (const m of messages) {
      if (m.id === undefined) continue
      if (m.type === 'token') tokens.set(m.id, (tokens.get(m.id) ?? 0) + 1)
      if (m.type === 'result' || m.type === 'error') {
        ends.set(m.id, m.type)
        waiting.get(m.id)?.(m.type)
      }
    }
  }
  worker.on('message', listener)
  return {
    streamed: () => [...tokens.keys()],
    tokens: id => tokens.get(id) ?? 0,
    ended: async id => ends.get(id) ?? await new Promise<string>(resolve => { waiting.set(id, resolve) }),
    stop: () => { worker.off('message', listener) }
  }
}

describe('inference engine robustness', () => {
  let models: TinyModels
  let bert: string
  let gpt2: string

  before(async () => {
    models = await tinyModels(['bert', 'gpt2'])
    bert = models.dir('bert')
    gpt2 = models.dir('gpt2')
  })
  after(() => { models.cleanup() })

  it('refuses inputs that are not plain data with a ValidationError, and keeps working', async () => {
    const acc = new IpfsAccelerate(quiet, {}, { env: {} })
    try {
      const circular: Record<string, unknown> = { input_ids: [101, 102] }
      circular.self = circular
      const bad: Array<[unknown, RegExp]> = [
        [{ input_ids: [101, 102], extra: () => 1 }, /input\.extra: is a function/],
        [{ input_ids: [101, Symbol('x')] }, /input\.input_ids\[1\]: is a symbol/],
        [circular, /input\.self: refers back/],
        [{ text: new Date() }, /input\.text: is a Date/],
        // Holes reached the tasks as undefined (BigInt(undefined), NaN dims: an InferenceError).
        // eslint-disable-next-line no-sparse-arrays
        [{ input_ids: [101, , 102] }, /input\.input_ids\[1\]: is a hole/],
        // eslint-disable-next-line no-sparse-arrays
        [{ texts: ['a', , 'b'] }, /input\.texts\[1\]: is a hole/],
        // Structured clone refuses proxies (a raw DataCloneError from process()).
        [new Proxy({ input_ids: [101, 102] }, {}), /input: is a Proxy/],
        [{ input_ids: new Proxy([101, 102], {}) }, /input\.input_ids: is a Proxy/],
        [{ input_ids: [101, 102], extra: Proxy.revocable({}, {}).proxy }, /input\.extra: is a Proxy/]
      ]
      // Sent in one burst with a good request: the bad ones fail alone, the good one is answered.
      const good = acc.processAsync(bert, { input_ids: [101, 102] }, 'text_embedding')
      for (const [input, message] of bad) {
        await assert.rejects(acc.processAsync(bert, input, 'text_embedding'), (err: unknown) => err instanceof ValidationError && message.test(err.message))
        assert.throws(() => acc.process(bert, input, 'text_embedding'), (err: unknown) => err instanceof ValidationError && message.test(err.message))
      }
      assert.equal(((await good).embedding as number[]).length, 32)
      assert.equal((acc.process(bert, { input_ids: [101, 102] }, 'text_embedding').embedding as number[]).length, 32)
    } finally {
      await acc.stop()
    }
  })

  it('fails only the call whose onToken callback throws', async () => {
    const acc = new IpfsAccelerate(quiet, {}, { env: {} })
    try {
      const boom = new Error('callback failed')
      const other = acc.processAsync(gpt2, { prompt: 'hello', max_new_tokens: 4 }, 'text_generation')
      await assert.rejects(acc.processAsync(gpt2, { prompt: 'hello', max_new_tokens: 4 }, 'text_generation', { onToken: () => { throw boom } }), (err: unknown) => err === boom)
      assert.equal(typeof (await other).text, 'string')
      const tokens: string[] = []
      const streamed = await acc.processAsync(gpt2, { prompt: 'hello', max_new_tokens: 4 }, 'text_generation', { onToken: t => { tokens.push(t) } })
      assert.equal(typeof streamed.text, 'string')
      assert.ok(tokens.length > 0)
    } finally {
      await acc.stop()
    }
  })

  it('a sparse array of any length is refused at its first hole, at once', () => {
    // The walk visited every index up to the length: 2^32 - 1 of them blocked the thread for minutes, so
    // the calls run in a child killed after a minute.
    const script = `
      import { IpfsAccelerate } from './src/index.ts'
      const acc = new IpfsAccelerate({ logging: { level: 'SILENT' } }, {}, { env: {} })
      const sparse = (head) => { const a = [...head]; a.length = 2 ** 32 - 1; return a }
      const farOnly = []
      farOnly[2 ** 32 - 2] = 5
      const result = []
      for (const input of [{ input_ids: sparse([]) }, { input_ids: sparse([101, 102]) }, { input_ids: farOnly }, { input_ids: [[101], sparse([7])] }]) {
        result.push(await acc.processAsync(process.env.IA_MODEL, input, 'text_embedding').then(() => 'ok', err => ({ name: err.name, field: err.context?.field })))
        try { acc.process(process.env.IA_MODEL, input, 'text_embedding') } catch (err) { result.push({ name: err.name, field: err.context?.field }) }
      }
      await acc.stop()
      process.stdout.write(JSON.stringify(result))
    `
    const child = runChildScript(script, { IA_MODEL: bert })
    assert.equal(child.status, 0, `child ${child.signal ?? child.status}: ${child.stderr}`)
    // a walk over the length would outlast the child's minute: it is killed, and the status says so
    const result = JSON.parse(child.stdout)
    const refused = (field: string): unknown[] => [{ name: 'ValidationError', field }, { name: 'ValidationError', field }]
    assert.deepEqual(result, [...refused('input.input_ids[0]'), ...refused('input.input_ids[2]'), ...refused('input.input_ids[0]'), ...refused('input.input_ids[1][1]')])
  })

  it('an onToken that returns a rejected promise fails its call as a throw does, never an unhandled rejection', async () => {
    const acc = new IpfsAccelerate({ ...quiet, performance: { enable_caching: false } }, {}, { env: {} })
    let unhandled = 0
    const count = (): void => { unhandled++ }
    process.on('unhandledRejection', count)
    try {
      const boom = new Error('async callback failed')
      await acc.processAsync(gpt2, { prompt: 'hello', max_new_tokens: 1 }, 'text_generation')
      const watch = watchWorker(workerOf(acc))
      // Rejected at once: the call fails with it and the generation stops in the worker.
      const long = { prompt: 'hello', max_new_tokens: 1000 }
      await assert.rejects(acc.processAsync(gpt2, long, 'text_generation', { onToken: async () => { throw boom } }), (err: unknown) => err === boom)
      const [first] = watch.streamed()
      assert.equal(await watch.ended(first), 'error', 'the worker stopped the generation')
      assert.ok(watch.tokens(first) < long.max_new_tokens, 'it was stopped before its end')
      watch.stop()
      // Rejected only after the last token: the result waits for the callbacks, so the call still fails.
      const late = async (): Promise<void> => { await new Promise(resolve => setTimeout(resolve, 30)); throw boom }
      await assert.rejects(acc.processAsync(gpt2, { prompt: 'hello', max_new_tokens: 4 }, 'text_generation', { onToken: late }), (err: unknown) => err === boom)
      // Callbacks that succeed have all run when the call resolves.
      const pieces: string[] = []
      const slow = async (text: string): Promise<void> => { await new Promise(resolve => setTimeout(resolve, 10)); pieces.push(text) }
      const result = await acc.processAsync(gpt2, { prompt: 'hello', max_new_tokens: 6 }, 'text_generation', { onToken: slow })
      assert.equal(pieces.join(''), result.generated_text)
      // Streaming (onToken inside) still works.
      const streamed: string[] = []
      for await (const piece of acc.streamGeneration(gpt2, { prompt: 'hello', max_new_tokens: 6 })) streamed.push(piece)
      assert.deepEqual(streamed, pieces)
      // Rejections of the calls above that came after the first are dropped, not left unhandled.
      await new Promise(resolve => setTimeout(resolve, 100))
      assert.equal(unhandled, 0)
    } finally {
      process.off('unhandledRejection', count)
      await acc.stop()
    }
  })

  it('a progress listener that throws does not take the process down', async () => {
    const hubRoot = join(models.root, 'hub')
    const hub = await serveModelsAsHub(hubRoot, { 'Org/tiny-bert': bert })
    const acc = new IpfsAccelerate({ ...quiet, hub: { remote_host: hub.url, cache_dir: join(models.root, 'cache') } }, {}, { env: {} })
    try {
      let calls = 0
      acc.onProgress(() => { calls++; throw new Error('listener failed') })
      const r = await acc.processAsync('Org/tiny-bert', { input_ids: [101, 102] }, 'text_embedding')
      assert.equal((r.embedding as number[]).length, 32)
      assert.ok(calls > 0, 'the listener was called while the model downloaded')
    } finally {
      await acc.stop()
      await hub.close()
    }
  })

  it('when the worker dies, pending calls fail with InferenceError and the next calls start a new worker', async () => {
    const acc = new IpfsAccelerate({ ...quiet, performance: { enable_caching: false } }, {}, { env: {} })
    try {
      await acc.processAsync(bert, { input_ids: [101, 102] }, 'text_embedding')
      const worker = workerOf(acc)
      const exited = once(worker, 'exit')
      // A long generation is in flight when the worker goes.
      const pending = acc.processAsync(gpt2, { prompt: 'hello', max_new_tokens: 40 }, 'text_generation')
      await worker.terminate()
      await exited
      await assert.rejects(pending, (err: unknown) => err instanceof InferenceError && /worker exited/.test(err.message))
      const again = await acc.processAsync(bert, { input_ids: [101, 102] }, 'text_embedding')
      assert.equal((again.embedding as number[]).length, 32)
      assert.notEqual(workerOf(acc), worker, 'a new worker runs the next calls')
      // The synchronous path too.
      const replacement = workerOf(acc)
      await replacement.terminate()
      assert.equal((acc.process(bert, { input_ids: [101, 102] }, 'text_embedding').embedding as number[]).length, 32)
    } finally {
      await acc.stop()
    }
  })

  it('an aborted signal is honoured before the cache: a cached input still rejects', async () => {
    const acc = new IpfsAccelerate({ ...quiet, performance: { enable_caching: true } }, {}, { env: {} })
    try {
      await acc.processAsync(bert, { input_ids: [101, 102] }, 'text_embedding')
      await assert.rejects(acc.processAsync(bert, { input_ids: [101, 102] }, 'text_embedding', { signal: AbortSignal.abort() }), AbortError)
    } finally {
      await acc.stop()
    }
  })

  it('never answers from the cache an input the model would treat differently', async () => {
    const acc = new IpfsAccelerate({ ...quiet, performance: { enable_caching: true } }, {}, { env: {} })
    try {
      const ok = await acc.processAsync(bert, { input_ids: [101n, 102n] }, 'text_embedding')
      assert.equal((ok.embedding as number[]).length, 32)
      // Strings are not token ids, bigints or not: refused even after the bigint form was cached.
      await assert.rejects(acc.processAsync(bert, { input_ids: ['101', '102'] }, 'text_embedding'), ValidationError)
      // A key holding undefined is still an unknown key.
      await assert.rejects(acc.processAsync(bert, { input_ids: [101n, 102n], bogus: undefined }, 'text_embedding'), ValidationError)
      // The same input is still a hit.
      const before = acc.cacheStats()?.hits ?? 0
      assert.deepEqual(await acc.processAsync(bert, { input_ids: [101n, 102n] }, 'text_embedding'), ok)
      assert.equal(acc.cacheStats()?.hits, before + 1)
    } finally {
      await acc.stop()
    }
  })

  it('does not cache sampled generation without a seed, does with one', async () => {
    const acc = new IpfsAccelerate({ ...quiet, performance: { enable_caching: true } }, {}, { env: {} })
    try {
      const sampled = { prompt: 'hello', max_new_tokens: 3, do_sample: true }
      await acc.processAsync(gpt2, sampled, 'text_generation')
      await acc.processAsync(gpt2, sampled, 'text_generation')
      assert.equal(acc.cacheStats()?.hits, 0)
      assert.equal(acc.cacheStats()?.entries, 0)
      const seeded = { ...sampled, seed: 7 }
      const first = await acc.processAsync(gpt2, seeded, 'text_generation')
      assert.deepEqual(await acc.processAsync(gpt2, seeded, 'text_generation'), first)
      assert.equal(acc.cacheStats()?.hits, 1)
    } finally {
      await acc.stop()
    }
  })

  it('getInstance() after stop() gives a working instance, not the stopped one', async () => {
    const first = getInstance()
    await first.stop()
    const second = getInstance()
    assert.notEqual(second, first)
    assert.equal(second.isStopped, false)
    assert.equal(getInstance(), second)
    await resetInstance()
  })

  it('leaving a stream early stops the generation in the worker; a signal aborts a call', async () => {
    const acc = new IpfsAccelerate({ ...quiet, performance: { enable_caching: false, parallel_requests: 1 } }, {}, { env: {} })
    try {
      // ~0.7 s of tokens: the cancel has that long to reach the worker before the generation would end anyway.
      const long = { prompt: 'hello', max_new_tokens: 1000 }
      const whole = await acc.processAsync(gpt2, long, 'text_generation')
      assert.ok((whole.generated_tokens as number) >= 500, 'the model generates long enough for the test to mean something')
      const watch = watchWorker(workerOf(acc))
      for await (const piece of acc.streamGeneration(gpt2, long)) {
        assert.equal(typeof piece, 'string')
        break
      }
      // Queued behind it (one slot): answered once the abandoned generation has stopped.
      await acc.processAsync(bert, { input_ids: [101, 102] }, 'text_embedding')
      const [stream] = watch.streamed()
      // How many tokens slip through before the cancel arrives depends on the scheduler, not on the code:
      // what is certain is that the worker stopped early and answered with an abort, not a result.
      assert.equal(await watch.ended(stream), 'error', 'the worker stopped the generation when the consumer left')
      assert.ok(watch.tokens(stream) < (whole.generated_tokens as number), `it sent ${watch.tokens(stream)} tokens, all of them`)
      watch.stop()
      // processAsync with a signal: rejects with AbortError, before or during the call.
      const controller = new AbortController()
      const call = acc.processAsync(gpt2, long, 'text_generation', { signal: controller.signal, onToken: () => { controller.abort() } })
      await assert.rejects(call, (err: unknown) => err instanceof AbortError)
      await assert.rejects(acc.processAsync(gpt2, long, 'text_generation', { signal: AbortSignal.abort() }), AbortError)
      // Bad options are refused before anything runs.
      for (const [options, field] of [[null, 'options'], [{ onToken: 5 }, 'options.onToken'], [{ onProgress: 'x' }, 'options.onProgress'], [{ signal: 'x' }, 'options.signal']] as const) {
        await assert.rejects(acc.processAsync(gpt2, long, 'text_generation', options as never), (err: unknown) => err instanceof ValidationError && err.context.field === field)
      }
      assert.equal(typeof (await acc.processAsync(gpt2, { prompt: 'hello', max_new_tokens: 2 }, 'text_generation')).text, 'string')
    } finally {
      await acc.stop()
    }
  })

  it('a call given up while queued never runs; a throwing onToken cancels; unload waits for the requests using the model', async () => {
    const acc = new IpfsAccelerate({ ...quiet, performance: { enable_caching: false, parallel_requests: 1 } }, {}, { env: {} })
    try {
      const long = { prompt: 'hello', max_new_tokens: 1000 }
      await acc.processAsync(bert, { input_ids: [101, 102] }, 'text_embedding')
      await acc.processAsync(gpt2, { prompt: 'hello', max_new_tokens: 1 }, 'text_generation')
      const watch = watchWorker(workerOf(acc))
      // An embedding (batched task) and a sampled generation (waits for the sampling lock) queued behind a
      // long generation, both given up while they wait.
      const first = acc.processAsync(gpt2, { ...long, do_sample: true, seed: 1 }, 'text_generation')
      const queued = new AbortController()
      const embedding = acc.processAsync(bert, { input_ids: [101, 2054, 102] }, 'text_embedding', { signal: queued.signal })
      const sampled = acc.processAsync(gpt2, { ...long, do_sample: true, seed: 2 }, 'text_generation', { signal: queued.signal, onToken: () => {} })
      queued.abort()
      await assert.rejects(embedding, AbortError)
      await assert.rejects(sampled, AbortError)
      await first
      assert.deepEqual(watch.streamed(), [], 'the given-up generation streamed nothing')
      // A throwing onToken: its generation stops in the worker.
      await assert.rejects(acc.processAsync(gpt2, long, 'text_generation', { onToken: () => { throw new Error('stop') } }))
      await acc.processAsync(bert, { input_ids: [101, 2003, 102] }, 'text_embedding') // queued behind it
      const [thrower] = watch.streamed()
      assert.equal(await watch.ended(thrower), 'error', 'the worker stopped the generation when its callback threw')
      assert.ok(watch.tokens(thrower) < long.max_new_tokens, 'it was stopped before its end')
      watch.stop()
      // unloadModel during a generation: the generation finishes, the model is then unloaded.
      const running = acc.processAsync(gpt2, { prompt: 'hello', max_new_tokens: 50 }, 'text_generation')
      await new Promise(resolve => setTimeout(resolve, 20))
      assert.equal(await acc.unloadModel(gpt2), true)
      assert.equal(typeof (await running).text, 'string')
    } finally {
      await acc.stop()
    }
  })

  it('a script that only calls process() exits by itself (the worker does not hold the process)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ia-exit-'))
    try {
      const script = join(dir, 'sync-only.mts')
      const index = pathToFileURL(join(process.cwd(), 'src', 'index.ts')).href
      writeFileSync(script, `import { IpfsAccelerate } from ${JSON.stringify(index)}
const acc = new IpfsAccelerate({ logging: { level: 'SILENT' } }, {}, { env: {} })
console.log((acc.process(${JSON.stringify(bert)}, { input_ids: [101, 102] }, 'text_embedding').embedding as number[]).length)
`)
      const run = spawnSync(process.execPath, ['--import', 'tsx', script], { encoding: 'utf8', timeout: 60_000 })
      assert.equal(run.signal, null, 'it ended by itself, not by the timeout')
      assert.equal(run.status, 0, run.stderr)
      assert.equal(run.stdout.trim(), '32')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('errors from the worker keep their cause', async () => {
    const acc = new IpfsAccelerate(quiet, {}, { env: {} })
    try {
      const missing = join(models.root, 'no-such-model')
      mkdirSync(missing)
      writeFileSync(join(missing, 'config.json'), '{ not json')
      const err = await acc.processAsync(missing, { input_ids: [101] }, 'text_embedding').then(() => undefined, (e: unknown) => e)
      assert.ok(err instanceof ModelLoadError, String(err))
      assert.ok(err.cause instanceof Error, 'the cause crossed the worker boundary')
      assert.equal((err.cause as Error).name, 'SyntaxError')
    } finally {
      await acc.stop()
    }
  })

  it('routes console output to the logger, each distinct warning once', () => {
    const logged: Array<[string, string]> = []
    const target = { debug: console.debug, log: console.log, info: console.info, warn: console.warn, error: console.error }
    routeConsole(target, (level, msg) => { logged.push([level, msg]) })
    target.warn('No language specified - defaulting to English (en).')
    target.warn('No language specified - defaulting to English (en).')
    target.error('Inputs given to model:', { input_ids: [1, 2] })
    target.log('loading')
    target.info('ready', 3)
    assert.deepEqual(logged, [
      ['warn', 'No language specified - defaulting to English (en).'],
      ['error', 'Inputs given to model: { input_ids: [ 1, 2 ] }'],
      ['debug', 'loading'],
      ['info', 'ready 3']
    ])
  })
})
