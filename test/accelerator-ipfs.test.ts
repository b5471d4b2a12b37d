import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { IpfsAccelerate, ValidationError, ModelLoadError, IpfsConnectionError, TimeoutError, AbortError } from '../src/index.js'
import { tinyModels, type TinyModels } from './helpers/tiny-models.js'
import { runChildScript } from './helpers/child-script.js'

describe('IpfsAccelerate with IPFS', () => {
  let models: TinyModels
  let home: string
  const make = (extra: Record<string, unknown> = {}): IpfsAccelerate => new IpfsAccelerate({
    logging: { level: 'SILENT' },
    ipfs: { repo: join(home, 'repo'), enable_local_gateway: false, timeout: 5, retry_count: 0 },
    hub: { cache_dir: join(home, 'models') },
    ...extra
  }, {}, { env: {} })

  before(async () => {
    models = await tinyModels(['bert'])
    home = mkdtempSync(join(tmpdir(), 'ia-acc-ipfs-'))
  })
  after(() => {
    models.cleanup()
    rmSync(home, { recursive: true, force: true })
  })

  it('storeToIpfs returns the CID Kubo gives the same bytes, and queryIpfs returns the bytes', async () => {
    const acc = make()
    try {
      const cid = await acc.storeToIpfs(new TextEncoder().encode('hello world\n'))
      assert.equal(cid, 'QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o')
      const data = JSON.stringify({ model: 'bert', result: [0.1, 0.2, 0.3] })
      const cid2 = await acc.storeToIpfs(new TextEncoder().encode(data))
      assert.equal(new TextDecoder().decode(await acc.queryIpfs(cid2)), data)
      assert.equal(new TextDecoder().decode(await acc.queryIpfs(`ipfs://${cid2}`)), data)
    } finally {
      await acc.stop()
    }
  })

  it('validates CIDs and data before any I/O, and reports missing content without hanging', async () => {
    const acc = make()
    try {
      await assert.rejects(acc.queryIpfs('QmExampleCID123'), (err: unknown) => err instanceof ValidationError && err.context.field === 'cid')
      await assert.rejects(acc.storeToIpfs('text' as never), (err: unknown) => err instanceof ValidationError && err.context.field === 'data')
      await assert.rejects(acc.queryIpfs('bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'), (err: unknown) =>
        err instanceof IpfsConnectionError || err instanceof TimeoutError || (err as Error).name === 'NotFoundError')
    } finally {
      await acc.stop()
    }
  })

  it('accelerateInference keeps results in IPFS: a repeat after a restart is a hit with the same CID', async () => {
    const input = { input_ids: [101, 2054, 2003, 102] }
    const first = make()
    let cid: unknown
    let embedding: unknown
    try {
      const r = await first.accelerateInference(models.dir('bert'), input, true)
      cid = r.result_cid
      embedding = r.embedding
      assert.equal(typeof cid, 'string')
      const local = await first.accelerateInference(models.dir('bert'), input, false)
      assert.deepEqual(local.embedding, embedding)
      assert.equal(local.result_cid, undefined)
    } finally {
      await first.stop()
    }
    const second = make()
    try {
      const again = await second.accelerateInference(models.dir('bert'), input, true)
      assert.equal(again.result_cid, cid)
      assert.deepEqual(again.embedding, embedding)
      const stored = JSON.parse(new TextDecoder().decode(await second.queryIpfs(String(cid))))
      assert.deepEqual(stored.embedding, embedding)
    } finally {
      await second.stop()
    }
  })

  it('publishes a model as one CID and runs it by ipfs:// id, async and then sync', async () => {
    const publisher = make()
    let cid: string
    try {
      const published = await publisher.publishModel(models.dir('bert'))
      cid = published.cid
      assert.equal(published.manifest.task, 'text_embedding')
      const again = await publisher.publishModel(models.dir('bert'))
      assert.equal(again.cid, cid, 'publishing is deterministic')
      const elsewhere = join(home, 'somewhere-else', 'bert')
      cpSync(models.dir('bert'), elsewhere, { recursive: true })
      assert.equal((await publisher.publishModel(elsewhere)).cid, cid, 'the CID does not depend on where the folder is')
    } finally {
      await publisher.stop()
    }
    const user = make({ hub: { cache_dir: join(home, 'other-cache') } })
    try {
      assert.throws(() => user.process(`ipfs://${cid}`, { input_ids: [101, 102] }), ModelLoadError)
      const viaCid = await user.processAsync(`ipfs://${cid}`, { input_ids: [101, 2054, 102] })
      const local = await user.processAsync(models.dir('bert'), { input_ids: [101, 2054, 102] })
      assert.deepEqual(viaCid.embedding, local.embedding)
      assert.equal(viaCid.model, `ipfs://${cid}`)
      const sync = user.process(`ipfs://${cid}`, { input_ids: [101, 2003, 102] })
      assert.equal((sync.embedding as number[]).length, 32)
    } finally {
      await user.stop()
    }
  })

  it('pullModel refuses a path below the pack, and pins nothing that is not a model pack', async () => {
    const acc = make()
    try {
      const router = await acc.content()
      const folder = join(home, 'not-a-model')
      mkdirSync(folder, { recursive: true })
      writeFileSync(join(folder, 'notes.txt'), 'no config.json here')
      const cid = await router.addDirectory(folder, { pin: false })
      await assert.rejects(acc.pullModel(cid.toString()), ModelLoadError)
      assert.equal(await router.helia.isPinned(cid), false, 'the failed pull left no pin')
      const published = await acc.publishModel(models.dir('bert'))
      await assert.rejects(acc.pullModel(`${published.cid}/onnx`), (err: unknown) => err instanceof ValidationError && /root CID/.test(err.message))
    } finally {
      await acc.stop()
    }
  })
  it('pullModel of a pack already complete in the cache returns it without walking its blocks again', async () => {
    const acc = make()
    try {
      const cacheDir = join(home, 'pulled-once')
      const { cid } = await acc.publishModel(models.dir('bert'))
      const first = await acc.pullModel(cid, { cacheDir })
      assert.equal(first.cached, false)
      // the store no longer has the pack: only the cached folder can answer
      const router = await acc.content()
      await router.unpin(cid)
      await router.gc()
      const second = await acc.pullModel(cid, { cacheDir })
      assert.equal(second.cached, true)
      assert.equal(second.dir, first.dir)
    } finally {
      await acc.stop()
    }
  })

  it('pullModel refuses a cacheDir that cannot be a folder, naming cacheDir, before fetching anything', async () => {
    // a gateway that counts its requests: the refusal must come before any of them
    let requests = 0
    const server = createServer((_req, res) => { requests++; res.statusCode = 404; res.end() })
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
    const acc = make({ ipfs: { repo: join(home, 'repo-cachedir'), enable_local_gateway: false, timeout: 5, retry_count: 0, gateway: `http://127.0.0.1:${(server.address() as AddressInfo).port}` } })
    try {
      const file = join(home, 'a-file')
      writeFileSync(file, 'not a folder')
      await assert.rejects(acc.pullModel('bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi', { cacheDir: file }),
        (err: unknown) => err instanceof ValidationError && /^cacheDir: /.test(err.message))
      assert.equal(requests, 0, 'nothing was fetched')
    } finally {
      await acc.stop()
      server.close()
    }
  })

  it('a repository or cache folder under /proc is a ValidationError naming the setting, not a hang', { skip: process.platform !== 'linux' }, () => {
    // A recursive mkdir spun for ever under /proc on Node 20, in the thread pool: run in a child (see
    // runChildScript), so a build without the fix fails here instead of keeping the test process alive.
    const script = `
      import { IpfsAccelerate } from './src/index.ts'
      const { repo, model } = JSON.parse(process.env.IA_PROC_CASE)
      const make = (ipfs, hub) => new IpfsAccelerate({ logging: { level: 'SILENT' }, ipfs: { enable_local_gateway: false, timeout: 5, retry_count: 0, ...ipfs }, hub }, {}, { env: {} })
      const outcome = async (call) => await call.then(() => 'ok', (err) => ({ name: err.name, field: err.context?.field }))
      const result = {}
      const bad = make({ repo: '/proc/ia-no-repo/repo' })
      result.storeToIpfs = await outcome(bad.storeToIpfs(new Uint8Array([1, 2, 3])))
      result.queryIpfs = await outcome(bad.queryIpfs('bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'))
      await bad.stop()
      const good = make({ repo }, { cache_dir: '/proc/ia-no-cache' })
      const { cid } = await good.publishModel(model)
      result.pullCacheDir = await outcome(good.pullModel(cid, { cacheDir: '/proc/ia-no-cache-option' }))
      result.pullHubCacheDir = await outcome(good.pullModel(cid))
      await good.stop()
      process.stdout.write(JSON.stringify(result))
    `
    const child = runChildScript(script, { IA_PROC_CASE: JSON.stringify({ repo: join(home, 'repo-proc'), model: models.dir('bert') }) })
    assert.equal(child.status, 0, `child ${child.signal ?? child.status}: ${child.stderr}`)
    assert.deepEqual(JSON.parse(child.stdout), {
      storeToIpfs: { name: 'ValidationError', field: 'ipfs.repo' },
      queryIpfs: { name: 'ValidationError', field: 'ipfs.repo' },
      pullCacheDir: { name: 'ValidationError', field: 'cacheDir' },
      pullHubCacheDir: { name: 'ValidationError', field: 'hub.cache_dir' }
    })
  })

  it('stop() during a pull rejects the pull with AbortError, not a store error', async () => {
    // A gateway that takes requests and never answers: the pull is in flight when stop() comes.
    const stalled = new Set<import('node:http').ServerResponse>()
    const server = createServer((_req, res) => { stalled.add(res) })
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
    const { port } = server.address() as AddressInfo
    const acc = make({ ipfs: { repo: join(home, 'repo-stop'), gateway: `http://127.0.0.1:${port}`, enable_local_gateway: false, timeout: 60, retry_count: 0 } })
    try {
      const pull = acc.pullModel('bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi')
      const settled = pull.then(() => undefined, (err: unknown) => err)
      while (stalled.size === 0) await new Promise(resolve => setTimeout(resolve, 10))
      await acc.stop()
      const err = await settled
      assert.ok(err instanceof AbortError, `expected AbortError, got ${String(err)}`)
      await assert.rejects(acc.queryIpfs('bafkqaaa'), AbortError)
    } finally {
      await acc.stop()
      for (const res of stalled) res.destroy()
      server.closeAllConnections()
      await new Promise(resolve => server.close(resolve))
    }
  })
})

describe('several instances in one process', () => {
  it('share the embedded store of a repository, as the seed creates one instance per call', async () => {
    const home = mkdtempSync(join(tmpdir(), 'ia-shared-'))
    const config = { logging: { level: 'SILENT' as const }, ipfs: { repo: join(home, 'repo'), enable_local_gateway: false } }
    const a = new IpfsAccelerate(config, {}, { env: {} })
    const b = new IpfsAccelerate(config, {}, { env: {} })
    const c = new IpfsAccelerate({ ...config, ipfs: { ...config.ipfs, cid_version: 1 } }, {}, { env: {} })
    try {
      const bytes = new TextEncoder().encode('hello world\n')
      const [cidA, cidB, cidC] = await Promise.all([a.storeToIpfs(bytes), b.storeToIpfs(bytes), c.storeToIpfs(bytes)])
      assert.equal(cidA, 'QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o')
      assert.equal(cidB, cidA)
      assert.match(cidC, /^bafkrei/, 'each instance keeps its own cid_version')
      await a.stop()
      // b still works after a let go of the store.
      assert.equal(new TextDecoder().decode(await b.queryIpfs(cidC)), 'hello world\n')
    } finally {
      await a.stop()
      await b.stop()
      await c.stop()
      rmSync(home, { recursive: true, force: true })
    }
  })
})
