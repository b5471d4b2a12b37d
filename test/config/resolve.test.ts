import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { resolveConfig } from '../../src/config/resolve.js'
import { parseSize } from '../../src/config/units.js'
import { ValidationError } from '../../src/errors.js'

describe('resolveConfig', () => {
  it('fills every default and freezes the result deeply', () => {
    const config = resolveConfig({}, { env: {} })
    assert.equal(config.ipfs.timeout, 30)
    assert.equal(config.ipfs.retry_count, 3)
    assert.equal(config.hardware.prefer_cuda, true)
    assert.equal(config.performance.parallel_requests, 4)
    assert.equal(config.logging.level, 'INFO')
    assert.ok(Object.isFrozen(config))
    assert.ok(Object.isFrozen(config.hardware))
    assert.throws(() => { (config.hardware as { batch_size: number }).batch_size = 9 }, TypeError)
  })

  it('accepts every key of the seed, spelled as in the seed', () => {
    const config = resolveConfig({
      ipfs: { gateway: 'http://localhost:8080/ipfs/', local_node: 'http://localhost:5001', timeout: 30, retry_count: 3, enable_local_gateway: true },
      hardware: { prefer_cuda: true, allow_openvino: true, allow_mps: true, allow_rocm: true, allow_qualcomm: false, precision: 'fp16', mixed_precision: true, batch_size: 1, max_memory: '8GB' },
      performance: { enable_caching: true, cache_size: '1GB', enable_prefetch: true, parallel_requests: 4 },
      logging: { level: 'INFO', enable_performance_logging: true, log_file: 'ipfs_accelerate.log' },
      endpoints: {
        local: { host: 'localhost', port: 8000, protocol: 'http' },
        remote: { host: 'my-inference-server.com', port: 443, protocol: 'https', api_key: 'your-api-key' }
      },
      models: {
        'bert-base-uncased': { provider: 'huggingface', cache_dir: './models/bert-base-uncased', precision: 'fp16', batch_size: 32 },
        gpt2: { provider: 'huggingface', cache_dir: './models/gpt2', precision: 'fp32', max_length: 100 }
      }
    }, { env: {} })
    assert.equal(config.hardware.precision, 'fp16')
    assert.equal(config.models.gpt2.max_length, 100)
    assert.equal(config.endpoints.remote?.api_key, 'your-api-key')
  })

  it('lists every problem with its path', () => {
    let caught: unknown
    try {
      resolveConfig({
        hardware: { batch_size: 0, precision: 'fp64' as 'fp32', turbo: true } as never,
        performance: { cache_size: 'lots' },
        ipfs: { timeout: -1 },
        colour: 'blue'
      } as never, { env: {} })
    } catch (err) { caught = err }
    assert.ok(caught instanceof ValidationError)
    assert.equal(caught.name, 'ValidationError')
    const paths = caught.issues.map(i => i.path).sort()
    assert.deepEqual(paths, ['(root)', 'hardware', 'hardware.batch_size', 'hardware.precision', 'ipfs.timeout', 'performance.cache_size'])
    assert.match(caught.message, /hardware\.batch_size/)
    assert.ok(caught.issues.some(i => i.path === '(root)' && /colour/.test(i.message)))
    assert.ok(caught.issues.some(i => i.path === 'hardware' && /turbo/.test(i.message)))
  })

  it('rejects non-object resources', () => {
    assert.throws(() => resolveConfig([] as never, { env: {} }), ValidationError)
    assert.throws(() => resolveConfig('x' as never, { env: {} }), ValidationError)
  })

  it('reads environment variables below the passed object', () => {
    const env = { IPFS_ACCELERATE_HARDWARE_PREFER_CUDA: 'false', IPFS_ACCELERATE_IPFS_TIMEOUT: '7', IPFS_ACCELERATE_LOGGING_LEVEL: 'debug' }
    const config = resolveConfig({ ipfs: { timeout: 9 } }, { env })
    assert.equal(config.hardware.prefer_cuda, false)
    assert.equal(config.ipfs.timeout, 9)
    assert.equal(config.logging.level, 'DEBUG')
  })

  it('refuses an environment variable that names no key, and a wrong value from the environment', () => {
    assert.throws(() => resolveConfig({}, { env: { IPFS_ACCELERATE_HARDWARE_PREFER_CUDDA: 'true' } }), (err: unknown) =>
      err instanceof ValidationError && err.context.field === 'IPFS_ACCELERATE_HARDWARE_PREFER_CUDDA')
    assert.throws(() => resolveConfig({}, { env: { IPFS_ACCELERATE_HARDWARE_BATCH_SIZE: 'many' } }), (err: unknown) =>
      err instanceof ValidationError && err.issues.some(i => i.path === 'hardware.batch_size'))
  })

  it('reads a JSON config file below the environment', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ia-config-'))
    try {
      const file = join(dir, 'config.json')
      writeFileSync(file, JSON.stringify({ hardware: { batch_size: 8, precision: 'int8' }, performance: { parallel_requests: 2 } }))
      const config = resolveConfig({ performance: { parallel_requests: 3 } }, { env: { IPFS_ACCELERATE_HARDWARE_BATCH_SIZE: '16' }, configFile: file })
      assert.equal(config.hardware.batch_size, 16)
      assert.equal(config.hardware.precision, 'int8')
      assert.equal(config.performance.parallel_requests, 3)
      writeFileSync(file, '{ not json')
      assert.throws(() => resolveConfig({}, { env: {}, configFile: file }), (err: unknown) => err instanceof ValidationError && err.context.file === file)
      assert.throws(() => resolveConfig({}, { env: {}, configFile: join(dir, 'missing.json') }), ValidationError)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('parseSize', () => {
  it('reads decimal and binary units', () => {
    assert.equal(parseSize('8GB'), 8e9)
    assert.equal(parseSize('512 MiB'), 512 * 2 ** 20)
    assert.equal(parseSize(1024), 1024)
    assert.equal(parseSize('1.5KB'), 1500)
    assert.equal(parseSize('lots'), undefined)
    assert.equal(parseSize(-1), undefined)
    assert.equal(parseSize('5XB'), undefined)
  })
})
