import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { cpSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { resolveConfig } from '../../src/config/resolve.js'
import { ModelLoadError } from '../../src/errors.js'
import { ModelLoader, type ModelLoaderHooks } from '../../src/inference/model-loader.js'
import type { TaskHandler } from '../../src/inference/tasks/task-handler.js'
import { TextEmbeddingTask } from '../../src/inference/tasks/text-embedding.js'
import { tinyModels, type TinyModels } from '../helpers/tiny-models.js'
import { cpuOnly } from '../helpers/cpu-only-hardware.js'

function loaderWithLog (resources: Parameters<typeof resolveConfig>[0] = {}): { loader: ModelLoader, logs: Array<{ level: string, msg: string }> } {
  const logs: Array<{ level: string, msg: string }> = []
  const hooks: ModelLoaderHooks = { log: (level, msg) => { logs.push({ level, msg }) }, threads: 1, evict: async () => {} }
  return { loader: new ModelLoader(resolveConfig(resources, { env: {} }), cpuOnly(), hooks), logs }
}

describe('ModelLoader', () => {
  let models: TinyModels

  before(async () => { models = await tinyModels(['bert']) })
  after(() => { models.cleanup() })

  it('names the truncated onnx file in ModelLoadError.context.file', async () => {
    const dir = join(models.root, 'bert-truncated')
    cpSync(models.dir('bert'), dir, { recursive: true })
    const onnx = join(dir, 'onnx', 'model.onnx')
    const bytes = readFileSync(onnx)
    writeFileSync(onnx, bytes.subarray(0, Math.floor(bytes.length / 2)))
    const { loader } = loaderWithLog()
    const located = await loader.locate(dir, () => {})
    await assert.rejects(loader.load(dir, 'truncated', 'text_embedding', located, new TextEmbeddingTask() as TaskHandler), (err: unknown) => {
      assert.ok(err instanceof ModelLoadError, String(err))
      assert.equal(err.context.file, onnx)
      assert.equal(err.context.model, dir)
      return true
    })
  })

  it('names the model folder when the failure is not about a weight file', async () => {
    const dir = models.dir('bert')
    const { loader } = loaderWithLog()
    const located = await loader.locate(dir, () => {})
    const failing = { ...new TextEmbeddingTask(), task: 'text_embedding', load: async () => { throw new Error('tokenizer went missing') } } as unknown as TaskHandler
    await assert.rejects(loader.load(dir, 'failing', 'text_embedding', located, failing), (err: unknown) =>
      err instanceof ModelLoadError && err.context.file === dir && /tokenizer went missing/.test(err.message))
  })

  it('logs skipped optional backends at debug and a missing preferred CUDA once, as a warning', async () => {
    const dir = models.dir('bert')
    const { loader, logs } = loaderWithLog({ hardware: { prefer_cuda: true } })
    const handler = new TextEmbeddingTask() as TaskHandler
    const first = await loader.load(dir, 'a', 'text_embedding', await loader.locate(dir, () => {}), handler)
    const second = await loader.load(dir, 'b', 'text_embedding', await loader.locate(dir, () => {}), handler)
    const skipped = logs.filter(l => / skipped: /.test(l.msg))
    assert.deepEqual(skipped.filter(l => l.level !== 'debug').map(l => [l.level, l.msg]), [['warn', `model ${dir}: cuda skipped: no NVIDIA GPU found`]])
    assert.ok(skipped.some(l => l.level === 'debug' && /rocm skipped/.test(l.msg)))
    await loader.dispose('a', first)
    await loader.dispose('b', second)

    const quiet = loaderWithLog({ hardware: { prefer_cuda: false } })
    const third = await quiet.loader.load(dir, 'c', 'text_embedding', await quiet.loader.locate(dir, () => {}), handler)
    assert.ok(quiet.logs.filter(l => / skipped: /.test(l.msg)).every(l => l.level === 'debug'), JSON.stringify(quiet.logs))
    await quiet.loader.dispose('c', third)
  })
})
