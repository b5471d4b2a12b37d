/**
 * Hostile values at the public API's doors (from an input audit): each is a ValidationError naming the
 * field, before any I/O, never a TypeError from deep inside; a progress listener that fails is ignored,
 * never an unhandled rejection.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { IpfsAccelerate, ValidationError, InferenceError } from '../src/index.js'
import { HardwareDetection } from '../src/hardware/index.js'
import { deserializeError } from '../src/errors.js'
import { tinyModels, type TinyModels } from './helpers/tiny-models.js'

const quiet = { logging: { level: 'SILENT' } } as const

/** A matcher for a ValidationError on `field`. */
const onField = (field: string) => (err: unknown): boolean => err instanceof ValidationError && err.context.field === field

describe('IpfsAccelerate: hostile values at its doors', () => {
  let models: TinyModels
  let home: string
  let acc: IpfsAccelerate

  before(async () => {
    models = await tinyModels(['bert'])
    home = mkdtempSync(join(tmpdir(), 'ia-input-'))
    acc = new IpfsAccelerate({ ...quiet, ipfs: { repo: join(home, 'repo'), enable_local_gateway: false }, performance: { enable_prefetch: false } }, {}, { env: {} })
  })
  after(async () => {
    await acc.stop()
    models.cleanup()
    rmSync(home, { recursive: true, force: true })
  })

  it('construction: options, logger and path settings are checked', () => {
    assert.throws(() => new IpfsAccelerate(quiet, {}, null as never), onField('options'))
    for (const logger of [42, {}, { child: () => {} }]) {
      assert.throws(() => new IpfsAccelerate(quiet, {}, { env: {}, logger: logger as never }), onField('options.logger'))
    }
    // NUL in a path is refused by every file-system call with a TypeError: here it is the setting's fault
    for (const [resources, field] of [[{ hub: { cache_dir: '/tmp/c\0x' } }, 'hub.cache_dir'], [{ ipfs: { repo: 'r\0' } }, 'ipfs.repo'], [{ logging: { log_file: '/tmp/a\0b' } }, 'logging.log_file']] as const) {
      assert.throws(() => new IpfsAccelerate(resources, {}, { env: {} }), (err: unknown) => err instanceof ValidationError && err.issues.some(i => i.path === field && /NUL/.test(i.message)), field)
    }
    // a folder, or a path under /proc (pino's recursive mkdir spun there for ever), is not a log file
    assert.throws(() => new IpfsAccelerate({ logging: { log_file: home } }, {}, { env: {} }), (err: unknown) => onField('logging.log_file')(err) && /EISDIR/.test((err as Error).message))
    if (process.platform === 'linux') assert.throws(() => new IpfsAccelerate({ logging: { log_file: '/proc/ia-no-log/x.log' } }, {}, { env: {} }), onField('logging.log_file'))
    assert.throws(() => new HardwareDetection(null as never), onField('init'))
    assert.throws(() => new HardwareDetection({ environment: 42 as never }), onField('init.environment'))
  })

  it('storeToIpfs, pullModel, publishModel, unloadModel, initEndpoints, onProgress check what they are given', async () => {
    await assert.rejects(acc.storeToIpfs(new Proxy(new Uint8Array(4), {})), onField('data'))
    const cid = 'bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi'
    await assert.rejects(acc.pullModel(cid, null as never), onField('options'))
    for (const cacheDir of [42, '', '/tmp/x\0y']) await assert.rejects(acc.pullModel(cid, { cacheDir: cacheDir as never }), onField('cacheDir'))
    await assert.rejects(acc.pullModel(cid, { onProgress: 42 as never }), onField('options.onProgress'))
    await assert.rejects(acc.publishModel(models.dir('bert'), { onProgress: 42 as never }), onField('options.onProgress'))
    for (const model of [42, null, '', ' ']) await assert.rejects(acc.unloadModel(model as never), onField('model'))
    await assert.rejects(acc.initEndpoints(['x'], 42 as never), onField('resources'))
    await assert.rejects(acc.initEndpoints(['x'], { endpoint_types: 'text_embedding' as never }), onField('resources.endpoint_types'))
    await assert.rejects(acc.initEndpoints(['x'], {}, { onProgress: 7 as never }), onField('options.onProgress'))
    // a model named like an Object.prototype member is a model name, not a lookup into the prototype
    assert.deepEqual(await acc.initEndpoints(['constructor', 'toString']), {
      constructor: { model: 'constructor', endpoint_type: 'auto', deferred: true },
      toString: { model: 'toString', endpoint_type: 'auto', deferred: true }
    })
    assert.throws(() => acc.onProgress(42 as never), onField('listener'))
    // an error name from the worker never reaches Object.prototype
    for (const name of ['toString', '__proto__', 'hasOwnProperty']) assert.ok(deserializeError({ name, message: 'x' }) instanceof InferenceError, name)
  })

  it('a progress listener that throws or rejects is ignored: the work goes on and nothing is left unhandled', async () => {
    const unhandled: unknown[] = []
    const onUnhandled = (reason: unknown): void => { unhandled.push(reason) }
    process.on('unhandledRejection', onUnhandled)
    try {
      let calls = 0
      const failing = async (): Promise<void> => { calls++; throw new Error('listener failed') }
      const remove = acc.onProgress(failing)
      const { cid } = await acc.publishModel(models.dir('bert'), { onProgress: failing })
      const pulled = await acc.pullModel(cid, { cacheDir: join(home, 'cache'), onProgress: () => { calls++; throw new Error('sync too') } })
      assert.equal(pulled.cached, false)
      const again = await acc.pullModel(cid, { cacheDir: join(home, 'cache-2'), onProgress: failing })
      assert.equal((await acc.processAsync(again.dir, { input_ids: [101, 102] }, 'text_embedding', { onProgress: failing })).model, again.dir)
      remove()
      assert.ok(calls > 0, 'the listeners were called')
      await new Promise(resolve => setImmediate(resolve))
      assert.deepEqual(unhandled, [])
    } finally {
      process.off('unhandledRejection', onUnhandled)
    }
  })
})
