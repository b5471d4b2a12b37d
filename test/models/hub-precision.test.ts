/**
 * `precision` for hub models follows the same rules as for local folders (docs/hardware.md): the dtype is
 * chosen for the backend before downloading, and a variant the hub lacks falls back as documented.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { copyFileSync, cpSync } from 'node:fs'
import { join } from 'node:path'
import { resolveConfig } from '../../src/config/resolve.js'
import { ModelLoadError } from '../../src/errors.js'
import { cachedModelDir } from '../../src/models/hub-download.js'
import { availableDtypes } from '../../src/hardware/model-files.js'
import { WorkerEngine } from '../../src/inference/worker-engine.js'
import type { EndpointInfo } from '../../src/inference/protocol.js'
import { serveModelsAsHub, type HubServer } from '../helpers/hub-server.js'
import { tinyModels, type TinyModels } from '../helpers/tiny-models.js'
import { cpuOnly } from '../helpers/cpu-only-hardware.js'

const FP32_ONLY = 'Org/tiny-bert'
const BOTH = 'Org/tiny-bert-f16'

describe('precision for hub models', () => {
  let models: TinyModels
  let hub: HubServer
  let cacheCount = 0

  before(async () => {
    models = await tinyModels(['bert'])
    const both = join(models.root, 'bert-both')
    cpSync(models.dir('bert'), both, { recursive: true })
    // transformers.js picks the file by name only; an fp32 graph under the fp16 name loads the same way.
    copyFileSync(join(both, 'onnx', 'model.onnx'), join(both, 'onnx', 'model_fp16.onnx'))
    hub = await serveModelsAsHub(join(models.root, 'hub'), { [FP32_ONLY]: models.dir('bert'), [BOTH]: both })
  })
  after(async () => {
    await hub.close()
    models.cleanup()
  })

  /** Loads `repo` in a fresh engine and cache; returns what the load reported, logged and requested. */
  async function load (repo: string, resources: Record<string, unknown>, cacheDir = join(models.root, `cache-${++cacheCount}`)): Promise<{ info: EndpointInfo, logs: string[], requests: string[], cacheDir: string }> {
    const logs: string[] = []
    const before = hub.log.length
    const config = resolveConfig({ ...resources, hub: { remote_host: hub.url, cache_dir: cacheDir, ...(resources.hub as object ?? {}) } } as Parameters<typeof resolveConfig>[0], { env: {} })
    const engine = new WorkerEngine(config, cpuOnly(), { progress: () => {}, log: (level, msg) => { if (level !== 'debug') logs.push(msg) } })
    try {
      const info = await engine.loadModel(repo, 'text_embedding', () => {})
      const result = await engine.infer(repo, { input_ids: [101, 2054, 102] }, 'text_embedding', () => {})
      assert.ok(result.embedding !== undefined)
      return { info, logs, requests: hub.log.slice(before).filter(r => r.method === 'GET').map(r => `${r.status} ${r.path}`), cacheDir }
    } finally {
      await engine.stop()
    }
  }

  const weightRequests = (requests: string[]): string[] => requests.filter(r => r.includes('/onnx/')).map(r => r.replace(/ \/.*\/onnx\//, ' onnx/'))

  it('a model precision fp16 on a repository with only model.onnx falls back to fp32, logged once and reported', async () => {
    const { info, logs, requests } = await load(FP32_ONLY, { models: { [FP32_ONLY]: { precision: 'fp16' } } })
    assert.equal(info.dtype, 'fp32')
    assert.deepEqual(info.fallbacks.filter(f => f.dtype !== undefined).map(f => f.reason), ['the model has no fp16 weights (model_fp16.onnx); using fp32'])
    assert.equal(logs.filter(m => /no fp16 weights/.test(m)).length, 1, logs.join('\n'))
    const weights = weightRequests(requests)
    assert.ok(weights.includes('404 onnx/model_fp16.onnx'), weights.join(', '))
    assert.ok(weights.includes('200 onnx/model.onnx'), weights.join(', '))
  })

  it('a global fp16 on the CPU downloads and runs fp32 only, without contradicting itself', async () => {
    for (const repo of [FP32_ONLY, BOTH]) {
      const { info, logs, requests, cacheDir } = await load(repo, { hardware: { precision: 'fp16' } })
      assert.equal(info.dtype, 'fp32', repo)
      assert.deepEqual(info.fallbacks.filter(f => f.dtype !== undefined).map(f => f.dtype), ['fp32'], repo)
      assert.match(info.fallbacks.find(f => f.dtype !== undefined)?.reason ?? '', /fp16 on CPU runs slower than fp32/)
      assert.equal(logs.some(m => /no fp32 weights/.test(m)), false, logs.join('\n'))
      assert.equal(weightRequests(requests).some(r => r.includes('model_fp16.onnx')), false, `${repo}: ${requests.join(', ')}`)
      assert.deepEqual(await availableDtypes(cachedModelDir(cacheDir, repo)), ['fp32'])
    }
  })

  it('a model precision fp16 on a repository that has it downloads and runs fp16 (an explicit request is honoured)', async () => {
    const { info, requests, cacheDir } = await load(BOTH, { models: { [BOTH]: { precision: 'fp16' } } })
    assert.equal(info.dtype, 'fp16')
    assert.deepEqual(info.fallbacks.filter(f => f.dtype !== undefined), [])
    assert.deepEqual(weightRequests(requests).filter(r => r.startsWith('200')), ['200 onnx/model_fp16.onnx'])
    assert.deepEqual(await availableDtypes(cachedModelDir(cacheDir, BOTH)), ['fp16'])
  })

  it('with remote downloads off, uses the acceptable variant already in the cache', async () => {
    const { cacheDir } = await load(FP32_ONLY, {})
    const offline = await load(FP32_ONLY, { hub: { allow_remote: false }, models: { [FP32_ONLY]: { precision: 'fp16' } } }, cacheDir)
    assert.equal(offline.info.dtype, 'fp32')
    assert.deepEqual(offline.requests, [])
    assert.deepEqual(offline.info.fallbacks.filter(f => f.dtype !== undefined).map(f => f.reason), ['the model has no fp16 weights (model_fp16.onnx); using fp32'])
  })

  it('a precision with no acceptable variant on the hub is a ModelLoadError naming the preferred file and URL', async () => {
    await assert.rejects(load(FP32_ONLY, { hardware: { precision: 'int8' } }), (err: unknown) => {
      assert.ok(err instanceof ModelLoadError, String(err))
      assert.equal(err.context.file, 'onnx/model_int8.onnx')
      assert.equal(err.context.status, 404)
      assert.match(String(err.context.url), /\/Org\/tiny-bert\/resolve\/main\/onnx\/model_int8\.onnx$/)
      assert.deepEqual(err.context.acceptable, ['int8', 'q8', 'uint8'])
      assert.match(err.message, /model_int8\.onnx .*not found.*q8 \(onnx\/model_quantized\.onnx\), uint8 \(onnx\/model_uint8\.onnx\)/)
      return true
    })
  })
})
