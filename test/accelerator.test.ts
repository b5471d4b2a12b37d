import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { cpSync, readFileSync, rmSync } from 'node:fs'
import { join, relative } from 'node:path'
import {
  IpfsAccelerate, initialize, getInstance, resetInstance,
  ValidationError, ModelLoadError, HardwareError, IpfsConnectionError, TimeoutError, type EndpointInfo
} from '../src/index.js'
import { tinyModels, type TinyModels } from './helpers/tiny-models.js'
import { serveModelsAsHub } from './helpers/hub-server.js'

const quiet = { logging: { level: 'SILENT' } } as const

describe('IpfsAccelerate', () => {
  let models: TinyModels
  let bert: string

  before(async () => {
    models = await tinyModels(['bert', 'gpt2'])
    bert = models.dir('bert')
  })
  after(() => { models.cleanup() })

  it('initialize() makes new instances, getInstance() always the same one', async () => {
    const a = initialize()
    const b = initialize()
    assert.notEqual(a, b)
    assert.ok(a instanceof IpfsAccelerate)
    const one = getInstance()
    const two = getInstance()
    assert.equal(one, two)
    await resetInstance()
    assert.notEqual(getInstance(), one)
    await resetInstance()
    await a.stop()
    await b.stop()
  })

  it('reports hardware in the seed shape', async () => {
    const acc = new IpfsAccelerate(quiet, {}, { env: {} })
    const hw = acc.hardwareDetection.detectAllHardware()
    assert.deepEqual(Object.keys(hw).sort(), ['cpu', 'cuda', 'mps', 'openvino', 'qualcomm', 'rocm', 'webgpu', 'webnn'])
    assert.equal(hw.cpu.available, true)
    assert.ok((hw.cpu as { cores: number }).cores >= 1)
    for (const [name, status] of Object.entries(hw)) {
      if (!status.available) assert.ok(typeof (status as { reason?: string }).reason === 'string', `${name} says why it is unavailable`)
    }
    await acc.stop()
  })

  it('initEndpoints loads and warms each model and says where it runs', async () => {
    const acc = new IpfsAccelerate(quiet, {}, { env: {} })
    try {
      const endpoints = await acc.initEndpoints([bert, models.dir('gpt2')]) as Record<string, EndpointInfo>
      assert.equal(endpoints[bert].task, 'text_embedding')
      assert.equal(endpoints[models.dir('gpt2')].task, 'text_generation')
      assert.equal(endpoints[bert].device, 'cpu')
      assert.equal(endpoints[bert].dtype, 'fp32')
      assert.ok(endpoints[bert].load_time > 0)
      await assert.rejects(acc.initEndpoints(['']), ValidationError)
    } finally {
      await acc.stop()
    }
  })

  it('with enable_prefetch false, initEndpoints checks ids but loads on first use', async () => {
    const acc = new IpfsAccelerate({ ...quiet, performance: { enable_prefetch: false } }, {}, { env: {} })
    try {
      const endpoints = await acc.initEndpoints([bert])
      assert.deepEqual(endpoints[bert], { model: bert, endpoint_type: 'auto', deferred: true })
      await assert.rejects(acc.initEndpoints(['custom:undeclared']), ValidationError)
      const r = await acc.processAsync(bert, { input_ids: [101, 102] })
      assert.equal((r.embedding as number[]).length, 32)
    } finally {
      await acc.stop()
    }
  })

  it('honours logging.log_file and enable_performance_logging', async () => {
    const logFile = join(models.root, 'logs', 'ipfs_accelerate.log')
    const acc = new IpfsAccelerate({ logging: { level: 'INFO', log_file: logFile, enable_performance_logging: true } }, {}, { env: {} })
    try {
      await acc.processAsync(bert, { input_ids: [101, 2054, 102] })
    } finally {
      await acc.stop()
    }
    const lines = readFileSync(logFile, 'utf8').trim().split('\n').map(l => JSON.parse(l) as Record<string, unknown>)
    assert.ok(lines.some(l => /loaded/.test(String(l.msg)) && l.device === 'cpu'), 'model load is logged')
    const perf = lines.find(l => typeof l.run_ms === 'number')
    assert.ok(perf !== undefined, 'per-request timings are logged')
    assert.equal(perf.model, bert)
  })

  it('names the missing file when a model folder lacks its weights or config', async () => {
    const broken = join(models.root, 'broken-bert')
    cpSync(bert, broken, { recursive: true })
    rmSync(join(broken, 'onnx', 'model.onnx'))
    const noConfig = join(models.root, 'no-config')
    cpSync(bert, noConfig, { recursive: true })
    rmSync(join(noConfig, 'config.json'))
    const acc = new IpfsAccelerate(quiet, {}, { env: {} })
    try {
      await assert.rejects(acc.processAsync(broken, { input_ids: [101] }), (err: unknown) =>
        err instanceof ModelLoadError && /model\.onnx|onnx/.test(err.message) && String(err.context.model) === broken)
      await assert.rejects(acc.processAsync(noConfig, { input_ids: [101] }), (err: unknown) =>
        err instanceof ModelLoadError && String(err.context.file).endsWith('config.json'))
      // The instance still works for a good model afterwards.
      assert.equal(((await acc.processAsync(bert, { input_ids: [101] })).embedding as number[]).length, 32)
    } finally {
      await acc.stop()
    }
  })

  it('returns the identical result on a cache hit, and misses when the input differs', async () => {
    const acc = new IpfsAccelerate(quiet, {}, { env: {} })
    try {
      const first = await acc.processAsync(bert, { input_ids: [101, 2054, 102] })
      const second = await acc.processAsync(bert, { input_ids: [101, 2054, 102] })
      const sync = acc.process(bert, { input_ids: [101, 2054, 102] })
      assert.deepEqual(second, first)
      assert.deepEqual(sync, first)
      assert.equal(second.inference_time, first.inference_time, 'a hit returns the stored result itself')
      const stats = acc.cacheStats()
      assert.equal(stats?.hits, 2)
      const other = await acc.processAsync(bert, { input_ids: [101, 2003, 102] })
      assert.notDeepEqual(other.embedding, first.embedding)
      ;(second.embedding as number[])[0] = 42
      assert.notEqual(((await acc.processAsync(bert, { input_ids: [101, 2054, 102] })).embedding as number[])[0], 42, 'callers cannot change cached results')
    } finally {
      await acc.stop()
    }
  })

  it('resolves custom: ids and relative folders', async () => {
    const acc = new IpfsAccelerate({ ...quiet, models: { 'custom:my_model_v1': { source: bert, endpoint_type: 'text_embedding' } } }, {}, { env: {} })
    try {
      const custom = await acc.processAsync('custom:my_model_v1', { input_ids: [101, 102] })
      const rel = `./${relative(process.cwd(), bert)}`
      const local = await acc.processAsync(rel, { input_ids: [101, 102] })
      assert.deepEqual(custom.embedding, local.embedding)
      await assert.rejects(acc.processAsync('custom:nope', { input_ids: [101] }), (err: unknown) => err instanceof ValidationError && err.context.field === 'model')
    } finally {
      await acc.stop()
    }
  })

  it('downloads hub models through transformers.js from a hub-shaped server, with progress', async () => {
    const hubRoot = join(models.root, 'hub')
    const hub = await serveModelsAsHub(hubRoot, { 'Org/tiny-bert': bert })
    const acc = new IpfsAccelerate({
      ...quiet,
      hub: { remote_host: hub.url, cache_dir: join(models.root, 'cache') },
      model_aliases: { 'bert-base-uncased': 'Org/tiny-bert' }
    }, {}, { env: {} })
    try {
      const events: Array<{ status: string, file?: string }> = []
      acc.onProgress(e => events.push(e))
      const r = await acc.processAsync('bert-base-uncased', { input_ids: [101, 2054, 2003, 102] }, 'text_embedding')
      const local = await acc.processAsync(bert, { input_ids: [101, 2054, 2003, 102] })
      assert.deepEqual(r.embedding, local.embedding)
      assert.equal(r.model, 'bert-base-uncased')
      assert.ok(events.some(e => e.file === 'onnx/model.onnx'), 'progress names the weight file')
      assert.ok(hub.requests.some(p => p.includes('onnx/model.onnx')))
    } finally {
      await acc.stop()
      await hub.close()
    }
  })

  it('keeps loaded weights within hardware.max_memory and refuses a model larger than the bound', async () => {
    const acc = new IpfsAccelerate({ ...quiet, hardware: { max_memory: 200_000 } }, {}, { env: {} })
    try {
      await assert.rejects(acc.processAsync(bert, { input_ids: [101] }), (err: unknown) =>
        err instanceof ModelLoadError && /max_memory/.test(err.message))
      // Nothing half-loaded: a later call with the same instance fails the same way, not with a stale state.
      await assert.rejects(acc.processAsync(bert, { input_ids: [101] }), ModelLoadError)
    } finally {
      await acc.stop()
    }
  })

  it('unloads the least recently used model to stay within hardware.max_memory', async () => {
    const second = join(models.root, 'bert-copy')
    cpSync(bert, second, { recursive: true })
    const logFile = join(models.root, 'logs', 'budget.log')
    // Room for one tiny BERT's weights (~0.6 MB), not two.
    const acc = new IpfsAccelerate({ logging: { level: 'INFO', log_file: logFile }, hardware: { max_memory: '1MB' }, performance: { enable_caching: false } }, {}, { env: {} })
    try {
      const a1 = await acc.processAsync(bert, { input_ids: [101, 2054, 102] })
      const b1 = await acc.processAsync(second, { input_ids: [101, 2054, 102] })
      assert.deepEqual(b1.embedding, a1.embedding, 'same weights, same answer')
      // The first model was unloaded for the second; asking it again reloads it (and unloads the second).
      const a2 = await acc.processAsync(bert, { input_ids: [101, 2054, 102] })
      assert.deepEqual(a2.embedding, a1.embedding)
    } finally {
      await acc.stop()
    }
    const unloads = readFileSync(logFile, 'utf8').trim().split('\n').map(l => JSON.parse(l) as { msg: string })
      .filter(l => /^unloading .* to stay within hardware\.max_memory/.test(l.msg)).map(l => l.msg)
    assert.deepEqual(unloads, [`unloading ${bert} to stay within hardware.max_memory`, `unloading ${second} to stay within hardware.max_memory`])
  })

  it('throws HardwareError for a strict device request this machine cannot meet', async () => {
    const acc = new IpfsAccelerate({ ...quiet, hardware: { device: 'cuda' } }, {}, { env: {} })
    try {
      await assert.rejects(acc.processAsync(bert, { input_ids: [101] }), HardwareError)
    } finally {
      await acc.stop()
    }
  })

  it('runs the seed error-recovery example', async () => {
    async function robustInference (model: string, inputData: unknown): Promise<Record<string, unknown>> {
      const accelerator = new IpfsAccelerate(quiet, {}, { env: {} })
      try {
        return await accelerator.accelerateInference(model, inputData, false)
      } catch (err) {
        if (err instanceof IpfsConnectionError || err instanceof TimeoutError) return accelerator.process(model, inputData, 'auto')
        throw err
      } finally {
        await accelerator.stop()
      }
    }
    const result = await robustInference(bert, { input_ids: [101, 102] })
    assert.equal((result.embedding as number[]).length, 32)
  })

  it('refuses calls after stop()', async () => {
    const acc = new IpfsAccelerate(quiet, {}, { env: {} })
    await acc.processAsync(bert, { input_ids: [101] })
    await acc.stop()
    await assert.rejects(acc.processAsync(bert, { input_ids: [101, 102] }), (err: unknown) => (err as Error).name === 'AbortError')
  })
})
