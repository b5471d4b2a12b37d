import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { writeFileSync, mkdtempSync, mkdirSync, rmSync } from 'node:fs'
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
      // saved with a UTF-8 byte-order mark (Windows editors)
      writeFileSync(file, '\uFEFF' + JSON.stringify({ hardware: { batch_size: 4 } }))
      assert.equal(resolveConfig({}, { env: {}, configFile: file }).hardware.batch_size, 4)
      writeFileSync(file, '{ not json')
      assert.throws(() => resolveConfig({}, { env: {}, configFile: file }), (err: unknown) => err instanceof ValidationError && err.context.file === file)
      assert.throws(() => resolveConfig({}, { env: {}, configFile: join(dir, 'missing.json') }), (err: unknown) => err instanceof ValidationError && /cannot be read: ENOENT/.test(err.message))
      // only a regular file of at most 1 MiB is read: a device (read for ever), a folder, a huge file
      for (const [path, why] of [['/dev/zero', /not a regular file/], [dir, /not a regular file/]] as const) {
        assert.throws(() => resolveConfig({}, { env: {}, configFile: path }), (err: unknown) => err instanceof ValidationError && why.test(err.message) && err.context.file === path)
      }
      writeFileSync(file, `{"hardware":{"batch_size":4}}${' '.repeat(1024 * 1024)}`)
      assert.throws(() => resolveConfig({}, { env: {}, configFile: file }), (err: unknown) => err instanceof ValidationError && /a config file is at most 1048576/.test(err.message))
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

describe('resolveConfig: where a wrong value came from', () => {
  it('names the environment variable of a wrong value, and keeps the config path', () => {
    assert.throws(() => resolveConfig({}, { env: { IPFS_ACCELERATE_HARDWARE_PREFER_CUDA: 'maybe' } }), (err: unknown) => {
      assert.ok(err instanceof ValidationError)
      assert.match(err.message, /^invalid configuration: IPFS_ACCELERATE_HARDWARE_PREFER_CUDA \(hardware\.prefer_cuda\): .*expected boolean/)
      assert.equal(err.context.field, 'hardware.prefer_cuda')
      assert.equal(err.context.env, 'IPFS_ACCELERATE_HARDWARE_PREFER_CUDA')
      assert.deepEqual(err.issues.map(i => i.path), ['hardware.prefer_cuda'])
      assert.match(err.issues[0].message, /\(from IPFS_ACCELERATE_HARDWARE_PREFER_CUDA\)$/)
      return true
    })
  })

  it('names the config file of a wrong value, and tells each source apart', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ia-config-'))
    try {
      const file = join(dir, 'config.json')
      writeFileSync(file, JSON.stringify({ hardware: { batch_size: 0, turbo: true }, performance: { parallel_requests: 0 } }))
      assert.throws(() => resolveConfig({}, { env: {}, configFile: file }), (err: unknown) => {
        assert.ok(err instanceof ValidationError)
        assert.equal(err.message.indexOf(`invalid configuration in config file ${file}: `), 0, err.message)
        assert.match(err.message, /hardware\.batch_size: Too small/)
        assert.equal(err.context.file, file)
        assert.ok(err.issues.every(i => i.message.endsWith(`(from config file ${file})`)))
        assert.ok(err.issues.some(i => i.path === 'hardware' && /turbo/.test(i.message)))
        return true
      })
      // The resources object overrides the file's bad value; the variable's and the file's problems each say where they are.
      assert.throws(() => resolveConfig({ hardware: { batch_size: 2 }, ipfs: { timeout: -1 } }, { env: { IPFS_ACCELERATE_LOGGING_LEVEL: 'loud' }, configFile: file }), (err: unknown) => {
        assert.ok(err instanceof ValidationError)
        assert.match(err.message, /ipfs\.timeout: Too small/)
        assert.match(err.message, /IPFS_ACCELERATE_LOGGING_LEVEL \(logging\.level\): /)
        assert.ok(err.message.includes(`performance.parallel_requests (in config file ${file}): Too small`), err.message)
        assert.ok(!err.message.includes('hardware.batch_size'), err.message)
        assert.equal(err.issues.find(i => i.path === 'ipfs.timeout')?.message.includes('(from'), false)
        return true
      })
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('says what a size must be when it has the wrong type', () => {
    for (const cacheSize of [[], true, {}]) {
      assert.throws(() => resolveConfig({ performance: { cache_size: cacheSize as never } }, { env: {} }), (err: unknown) =>
        err instanceof ValidationError && err.issues.length === 1 && err.issues[0].path === 'performance.cache_size' &&
        err.issues[0].message === 'expected a size such as 1048576, "512MiB" or "8GB"')
    }
    assert.throws(() => resolveConfig({ ipfs: { cid_version: 2 as never } }, { env: {} }), /ipfs\.cid_version: expected 0 or 1/)
  })
})

describe('resolveConfig: reserved keys', () => {
  it('refuses __proto__, constructor and prototype in a config file, naming the path', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ia-config-'))
    try {
      const file = join(dir, 'config.json')
      writeFileSync(file, '{"__proto__": {"hardware": {"batch_size": 0}}, "hardware": {"batch_size": 2}}')
      assert.throws(() => resolveConfig({}, { env: {}, configFile: file }), (err: unknown) =>
        err instanceof ValidationError && err.issues[0].path === '__proto__' && err.context.file === file && err.message.includes(file))
      writeFileSync(file, '{"hardware": {"constructor": {"batch_size": 0}}}')
      assert.throws(() => resolveConfig({}, { env: {}, configFile: file }), (err: unknown) =>
        err instanceof ValidationError && err.issues[0].path === 'hardware.constructor')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('refuses them in the resources object', () => {
    const resources = JSON.parse('{"hardware": {"__proto__": {"batch_size": 0}}}') as never
    assert.throws(() => resolveConfig(resources, { env: {} }), (err: unknown) =>
      err instanceof ValidationError && err.issues[0].path === 'hardware.__proto__' && /"__proto__" is not allowed as a key/.test(err.message))
    assert.throws(() => resolveConfig({ models: { prototype: { provider: 'local' } } }, { env: {} }), (err: unknown) =>
      err instanceof ValidationError && err.issues[0].path === 'models.prototype')
  })
})

describe('resolveConfig: custom models', () => {
  it('refuses a custom model whose source is another custom: model, or that has no source', () => {
    assert.throws(() => resolveConfig({ models: { 'custom:x': { source: 'custom:y' }, 'custom:y': { source: './y' } } }, { env: {} }), (err: unknown) => {
      assert.ok(err instanceof ValidationError)
      assert.deepEqual(err.issues.map(i => i.path), ['models.custom:x.source'])
      assert.match(err.issues[0].message, /"custom:y" is another custom: model.*custom models do not chain/)
      return true
    })
    assert.throws(() => resolveConfig({ models: { 'custom:x': { endpoint_type: 'text_embedding' } } }, { env: {} }), (err: unknown) =>
      err instanceof ValidationError && err.issues[0].path === 'models.custom:x.source' && /required for a custom model/.test(err.issues[0].message))
  })

  it('refuses a malformed source, and accepts well-formed ones', () => {
    assert.throws(() => resolveConfig({ models: { 'custom:x': { source: 'not a repo!' } } }, { env: {} }), (err: unknown) =>
      err instanceof ValidationError && err.issues[0].path === 'models.custom:x.source' && /not a valid model id/.test(err.message))
    assert.throws(() => resolveConfig({ models: { 'custom:x': { provider: 'ipfs', source: 'ipfs://nope' } } }, { env: {} }), /models\.custom:x\.source: .*not a valid CID/)
    const config = resolveConfig({
      models: {
        'custom:hub': { source: 'Org/model@v1' },
        'custom:dir': { source: './models/not-there-yet' },
        mine: { source: 'Xenova/bert-base-uncased', precision: 'q8' },
        plain: { precision: 'fp16' }
      }
    }, { env: {} })
    assert.equal(config.models['custom:hub'].source, 'Org/model@v1')
  })
})

describe('resolveConfig: config file conventions', () => {
  it('resolves relative paths in a config file against the file\'s folder, and leaves others alone', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ia-config-'))
    try {
      const file = join(dir, 'conf', 'c.json')
      mkdirSync(join(dir, 'conf'))
      writeFileSync(file, JSON.stringify({
        ipfs: { repo: 'repo' },
        logging: { log_file: '../logs/a.log' },
        hub: { cache_dir: '/abs/cache' },
        models: {
          mine: { provider: 'local', source: 'models/mine', cache_dir: './cache' },
          aliased: { source: './models/x' },
          hubbed: { source: 'org/name' }
        },
        model_aliases: { tiny: './models/tiny', bert: 'org/bert' }
      }))
      const config = resolveConfig({}, { env: {}, configFile: file })
      assert.equal(config.ipfs.repo, join(dir, 'conf', 'repo'))
      assert.equal(config.logging.log_file, join(dir, 'logs', 'a.log'))
      assert.equal(config.hub.cache_dir, '/abs/cache')
      assert.equal(config.models.mine.source, join(dir, 'conf', 'models', 'mine'))
      assert.equal(config.models.mine.cache_dir, join(dir, 'conf', 'cache'))
      assert.equal(config.models.aliased.source, join(dir, 'conf', 'models', 'x'))
      assert.equal(config.models.hubbed.source, 'org/name')
      assert.equal(config.model_aliases.tiny, join(dir, 'conf', 'models', 'tiny'))
      assert.equal(config.model_aliases.bert, 'org/bert')
      // The resources object and the environment stay relative to the working directory.
      const mixed = resolveConfig({ ipfs: { repo: 'r' } }, { env: { IPFS_ACCELERATE_LOGGING_LOG_FILE: 'x.log' }, configFile: file })
      assert.equal(mixed.ipfs.repo, 'r')
      assert.equal(mixed.logging.log_file, 'x.log')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('ignores a $schema key at the top of a config file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ia-config-'))
    try {
      const file = join(dir, 'c.json')
      writeFileSync(file, JSON.stringify({ $schema: './schema.json', hardware: { batch_size: 3 } }))
      assert.equal(resolveConfig({}, { env: {}, configFile: file }).hardware.batch_size, 3)
      // Anywhere else it is still an unknown key.
      writeFileSync(file, JSON.stringify({ hardware: { $schema: 'x' } }))
      assert.throws(() => resolveConfig({}, { env: {}, configFile: file }), ValidationError)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('reads yes/no variables written as TRUE, False, 1 or 0, and only for yes/no keys', () => {
    const env = { IPFS_ACCELERATE_HARDWARE_PREFER_CUDA: 'TRUE', IPFS_ACCELERATE_PERFORMANCE_ENABLE_CACHING: 'False', IPFS_ACCELERATE_HUB_ALLOW_REMOTE: '0', IPFS_ACCELERATE_HARDWARE_MIXED_PRECISION: '1' }
    const config = resolveConfig({}, { env })
    assert.equal(config.hardware.prefer_cuda, true)
    assert.equal(config.performance.enable_caching, false)
    assert.equal(config.hub.allow_remote, false)
    assert.equal(config.hardware.mixed_precision, true)
    // A number key keeps its number; a yes/no key still refuses other words.
    assert.equal(resolveConfig({}, { env: { IPFS_ACCELERATE_HARDWARE_BATCH_SIZE: '1' } }).hardware.batch_size, 1)
    assert.throws(() => resolveConfig({}, { env: { IPFS_ACCELERATE_HARDWARE_PREFER_CUDA: 'constructor' } }), (err: unknown) =>
      err instanceof ValidationError && err.message.includes('IPFS_ACCELERATE_HARDWARE_PREFER_CUDA'))
  })
})
