/**
 * A failing local disk (full, failing, read-only, no permission) is reported as a StorageError, with the
 * errno code in its context and the Node error as its cause, by the API and by the CLI; what failed
 * leaves nothing half-written. Faults are injected in process on FileHandle writes (fault-fs.ts), and in
 * a CLI child through fault-preload.ts.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { IpfsAccelerate, IpfsConnectionError, StorageError, toStorageError } from '../../src/index.js'
import { HeliaStore } from '../../src/content/helia-store.js'
import { publishModel } from '../../src/content/model-pack.js'
import { createIpfsServer } from '../../src/server/create-ipfs-server.js'
import { errnoError, faultsUnsupported, withFaults } from '../content/fault-fs.js'
import { seededBytes } from '../content/seeded-bytes.js'

/** A StorageError with `code` in its context, raised by `operation`, the errno error as its cause. */
function storageError (code: string, operation: string) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof StorageError, `expected a StorageError, got ${String(err)}`)
    assert.equal(err.name, 'StorageError')
    assert.equal(err.code, 'ERR_STORAGE')
    assert.equal(err.context.code, code)
    assert.equal(err.context.operation, operation)
    assert.equal((err.cause as NodeJS.ErrnoException).code, code)
    assert.match(err.message, new RegExp(`^${operation}: .*\\(${code}`))
    return true
  }
}

/** A folder that pullModel accepts as a model pack. */
function modelFolder (dir: string): string {
  mkdirSync(dir, { recursive: true })
  writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ model_type: 'bert' }))
  writeFileSync(path.join(dir, 'weights.bin'), seededBytes(1 << 20, 7))
  return dir
}

describe('toStorageError', () => {
  it('converts errno failures of the local disk only, keeping the error as the cause', () => {
    const open = Object.assign(new Error('EACCES: permission denied, open \'/r/x\''), { code: 'EACCES', syscall: 'open', path: '/r/x' })
    const converted = toStorageError(open, 'ipfs add')
    assert.ok(converted instanceof StorageError)
    assert.deepEqual(converted.context, { code: 'EACCES', operation: 'ipfs add', syscall: 'open', file: '/r/x' })
    assert.equal(converted.cause, open)
    // found below a foreign wrapper, which stays the cause
    const wrapped = new Error('put failed', { cause: errnoError('EDQUOT', 'write') })
    assert.equal(toStorageError(wrapped, 'storeToIpfs')?.cause, wrapped)
    // not storage: the network, a socket's permission, ours, a plain missing file
    assert.equal(toStorageError(Object.assign(new Error('refused'), { code: 'ECONNREFUSED', syscall: 'connect' }), 'x'), undefined)
    assert.equal(toStorageError(Object.assign(new Error('no'), { code: 'EACCES', syscall: 'listen' }), 'x'), undefined)
    assert.equal(toStorageError(new IpfsConnectionError('down', { cause: errnoError('EIO', 'read') }), 'x'), undefined)
    assert.equal(toStorageError(Object.assign(new Error('gone'), { code: 'ENOENT', syscall: 'open' }), 'x'), undefined)
    assert.equal(toStorageError('EIO', 'x'), undefined)
  })
})

describe('the API on a full or failing disk', { skip: faultsUnsupported }, () => {
  let home: string
  const make = (repo: string): IpfsAccelerate => new IpfsAccelerate({
    logging: { level: 'SILENT' },
    ipfs: { repo, enable_local_gateway: false, timeout: 5, retry_count: 0 },
    hub: { cache_dir: path.join(home, 'models') }
  }, {}, { env: {} })
  before(() => { home = mkdtempSync(path.join(tmpdir(), 'ia-storage-error-')) })
  after(() => { rmSync(home, { recursive: true, force: true }) })

  for (const code of ['ENOSPC', 'EIO']) {
    it(`storeToIpfs whose pack write fails (${code}) throws StorageError and pins nothing`, async () => {
      const repo = path.join(home, `store-${code}`)
      const acc = make(repo)
      try {
        const kept = await acc.storeToIpfs(seededBytes(1000, 1))
        const packs = path.join(repo, 'packs')
        await withFaults(({ op, file }) => op !== 'writeFile' && file.startsWith(packs) ? { fail: code } : undefined, async () => {
          await assert.rejects(acc.storeToIpfs(seededBytes(2 << 20, 2)), storageError(code, 'storeToIpfs'))
        })
        const pins: string[] = []
        for await (const cid of (await acc.content()).helia.pins()) pins.push(cid.toString())
        assert.deepEqual(pins, [kept])
        assert.ok(Buffer.from(await acc.queryIpfs(kept)).equals(seededBytes(1000, 1)), 'what was stored before reads back')
      } finally {
        await acc.stop()
      }
    })
  }

  it('the RPC API and the gateway answer a failing disk with a StorageError (507 for a full one on the gateway\'s error shape)', async () => {
    const repo = path.join(home, 'rpc')
    const store = new HeliaStore({ repo })
    const server = await createIpfsServer({ store })
    try {
      const packs = path.join(repo, 'packs')
      await withFaults(({ op, file }) => op !== 'writeFile' && file.startsWith(packs) ? { fail: 'ENOSPC' } : undefined, async () => {
        const form = new FormData()
        form.append('file', new Blob([Buffer.from(seededBytes(1 << 20, 3))]), 'f')
        const res = await fetch(`${server.url}/api/v0/add`, { method: 'POST', body: form })
        assert.equal(res.status, 500) // Kubo's status for any failure
        const body = await res.json() as { Message: string }
        assert.match(body.Message, /^\/api\/v0\/add: no space left on the device \(ENOSPC/)
      })
      const { sendErrorBody } = await import('../../src/server/ipfs-routes.js')
      const Fastify = (await import('fastify')).default
      const app = Fastify()
      app.get('/x', async (_request, reply) => { await sendErrorBody(reply, errnoError('ENOSPC', 'write')) })
      const res = await app.inject({ method: 'GET', url: '/x' })
      assert.equal(res.statusCode, 507)
      assert.equal(res.json().error.name, 'StorageError')
      await app.close()
    } finally {
      await server.close()
      await store.stop()
    }
  })

  it('pullModel (and initEndpoints pulling an ipfs:// model) onto a full cache disk throws StorageError and leaves the cache as it was', async () => {
    const repo = path.join(home, 'pull')
    const store = new HeliaStore({ repo })
    const { cid } = await publishModel(store, modelFolder(path.join(home, 'model')))
    await store.stop()
    const acc = make(repo)
    const cache = path.join(home, 'models')
    try {
      await withFaults(({ op, file }) => op !== 'writeFile' && file.startsWith(cache) ? { fail: 'ENOSPC' } : undefined, async () => {
        await assert.rejects(acc.pullModel(cid), storageError('ENOSPC', 'pullModel'))
        await assert.rejects(acc.initEndpoints([`ipfs://${cid}`]), storageError('ENOSPC', 'pullModel'))
      })
      assert.deepEqual(readdirSync(path.join(cache, 'ipfs')), [])
      assert.ok((await acc.pullModel(cid)).dir.startsWith(cache))
    } finally {
      await acc.stop()
    }
  })
})

/** Runs the CLI with writes under `faultUnder` failing with `code` (fault-preload.ts). */
function cli (args: string[], faultUnder = '', code = 'ENOSPC'): { status: number | null, stdout: string, stderr: string } {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('IPFS_ACCELERATE_')))
  const run = spawnSync(process.execPath, ['--import', 'tsx', '--import', './test/errors/fault-preload.ts', 'src/cli/main.ts', ...args],
    { encoding: 'utf8', timeout: 120_000, env: { ...base, IA_TEST_FAULT_UNDER: faultUnder, IA_TEST_FAULT_CODE: code } })
  return { status: run.status, stdout: String(run.stdout), stderr: String(run.stderr) }
}

describe('the CLI on a full disk', { skip: faultsUnsupported }, () => {
  let home: string
  before(() => { home = mkdtempSync(path.join(tmpdir(), 'ia-storage-cli-')) })
  after(() => { rmSync(home, { recursive: true, force: true }) })

  it('ipfs add exits 1 with "StorageError: ipfs add: ..." and pins nothing', () => {
    const repo = path.join(home, 'repo')
    const input = path.join(home, 'in.bin')
    writeFileSync(input, seededBytes(2 << 20, 3))
    const add = cli(['ipfs', 'add', input, '--repo', repo], path.join(repo, 'packs'))
    assert.equal(add.status, 1, add.stderr)
    assert.match(add.stderr, /^StorageError: ipfs add: no space left on the device \(ENOSPC/m)
    assert.equal(add.stdout, '')
    const pins = cli(['ipfs', 'pin', 'ls', '--repo', repo])
    assert.equal(pins.status, 0, pins.stderr)
    assert.equal(pins.stdout, '')
  })

  it('models pull onto a failing cache disk exits 1 with "StorageError: models pull: ..."', async () => {
    const repo = path.join(home, 'pull-repo')
    const store = new HeliaStore({ repo })
    const { cid } = await publishModel(store, modelFolder(path.join(home, 'model')))
    await store.stop()
    const cache = path.join(home, 'cache')
    const pull = cli(['models', 'pull', cid, '--repo', repo, '--cache-dir', cache], cache, 'EIO')
    assert.equal(pull.status, 1, pull.stderr)
    assert.match(pull.stderr, /^StorageError: models pull: input\/output error \(EIO/m)
    assert.deepEqual(readdirSync(path.join(cache, 'ipfs')), [])
  })
})
