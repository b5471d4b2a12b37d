import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm, mkdir, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { ipfsSchema } from '../../src/config/schema.js'
import { ContentRouter } from '../../src/content/content-router.js'
import { HELLO, HELLO_V0, missingCid } from './store-compliance.js'
import { startBackend, startSilentServer, closedPortUrl, type Backend } from './network-harness.js'
import { seededBytes } from './seeded-bytes.js'

describe('ContentRouter', () => {
  let backend: Backend
  let dir: string
  const routers: ContentRouter[] = []
  async function router (ipfs: Record<string, unknown>, extra: { localGatewayUrl?: string, probeTimeoutMs?: number } = {}): Promise<ContentRouter> {
    const r = await ContentRouter.create({
      config: ipfsSchema.parse({ repo: path.join(dir, `repo-${routers.length}`), enable_local_gateway: false, ...ipfs }),
      probeTimeoutMs: 300,
      ...extra
    })
    routers.push(r)
    return r
  }

  before(async () => {
    backend = await startBackend()
    dir = await mkdtemp(path.join(tmpdir(), 'ipfs-accelerate-router-'))
  })
  after(async () => {
    for (const r of routers) await r.stop()
    await backend.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('builds the embedded store always, Kubo for local_node, a gateway for gateway', async () => {
    assert.deepEqual((await router({})).stores.map(s => s.name), ['helia'])
    const url = backend.server.url
    assert.deepEqual((await router({ local_node: url, gateway: url })).stores.map(s => s.name), ['helia', 'kubo-rpc', 'gateway'])
  })

  it('prefers a local gateway that answers the probe, and skips one that does not', async () => {
    // The probe is this process's first fetch (undici loads cold): a loaded machine needs more than 300 ms.
    const found = await router({ enable_local_gateway: true, gateway: 'https://gateway.invalid' }, { localGatewayUrl: backend.server.url, probeTimeoutMs: 10_000 })
    assert.deepEqual(found.stores.map(s => s.name), ['helia', 'local-gateway', 'gateway'])
    const none = await router({ enable_local_gateway: true }, { localGatewayUrl: await closedPortUrl() })
    assert.deepEqual(none.stores.map(s => s.name), ['helia'])
  })

  it('writes to the embedded store and reads it back by CID, ipfs:// and /ipfs/ path', async () => {
    const r = await router({})
    const cid = await r.put(HELLO)
    assert.equal(cid.toString(), HELLO_V0)
    assert.deepEqual(Buffer.from(await r.get(`ipfs://${HELLO_V0}`)), Buffer.from(HELLO))
    const folder = path.join(dir, 'pack')
    await mkdir(folder, { recursive: true })
    await writeFile(path.join(folder, 'config.json'), '{"a":1}')
    const root = await r.addDirectory(folder)
    assert.equal(Buffer.from(await r.get(`/ipfs/${root.toString()}/config.json`)).toString(), '{"a":1}')
    await assert.rejects(r.get('not a cid'), { name: 'ValidationError' })
  })

  it('with local_node, writes land in the embedded store and are copied to the Kubo node, pinned there', async () => {
    const r = await router({ local_node: backend.server.url })
    const bytes = seededBytes(700_000, 78)
    const cid = await r.put(bytes)
    assert.equal(await r.helia.isPinned(cid), true)
    assert.equal(await backend.store.isPinned(cid), true, 'pinned on the Kubo node')
    assert.ok(Buffer.from(await backend.store.get(cid)).equals(Buffer.from(bytes)))
    const folder = path.join(dir, 'copied')
    await mkdir(folder, { recursive: true })
    await writeFile(path.join(folder, 'a.txt'), 'copied to kubo')
    const root = await r.addDirectory(folder)
    assert.equal(await backend.store.isPinned(root), true)
    assert.equal(Buffer.from(await backend.store.get(await backend.store.resolve(root, 'a.txt'))).toString(), 'copied to kubo')
    // an unpinned write stays unpinned there too
    const loose = await r.put(seededBytes(3000, 79), { pin: false })
    assert.equal(await backend.store.has(loose), true)
    assert.equal(await backend.store.isPinned(loose), false)
  })

  it('with local_node down, a write is an IpfsConnectionError naming it, and the content is still here', async () => {
    const r = await router({ local_node: await closedPortUrl(), retry_count: 1 })
    const bytes = seededBytes(5000, 80)
    await assert.rejects(r.put(bytes), (err: Error & { context?: { store?: string, attempts?: unknown[] } }) => {
      assert.equal(err.name, 'IpfsConnectionError')
      assert.equal(err.context?.store, 'kubo-rpc')
      assert.equal(err.context?.attempts?.length, 2)
      return true
    })
    const cid = await r.helia.put(bytes, { pin: false })
    assert.equal(await r.helia.isPinned(cid), true, 'stored and pinned here before the copy failed')
  })

  it('falls back to the network stores, verifies, and keeps what it fetched locally', async () => {
    const bytes = seededBytes(900_000, 77)
    const cid = await backend.store.put(bytes)
    for (const ipfs of [{ local_node: backend.server.url }, { gateway: backend.server.url }]) {
      const r = await router(ipfs)
      assert.equal(await r.helia.has(cid), false)
      assert.ok(Buffer.from(await r.get(cid)).equals(Buffer.from(bytes)))
      assert.equal(await r.helia.has(cid), true)
      assert.ok(Buffer.from(await r.helia.get(cid)).equals(Buffer.from(bytes)), 'not readable locally afterwards')
      await r.pin(cid)
      assert.equal(await r.helia.isPinned(cid), true)
    }
  })

  it('when every store fails: IpfsConnectionError naming each store and what it said', async () => {
    const r = await router({ gateway: await closedPortUrl(), retry_count: 1 })
    await assert.rejects(r.get(missingCid()), (err: Error & { context?: { attempts?: Array<{ store: string, error: string }> } }) => {
      assert.equal(err.name, 'IpfsConnectionError')
      assert.deepEqual(err.context?.attempts?.map(a => a.store), ['helia', 'gateway'])
      assert.deepEqual(err.context?.attempts?.map(a => a.error), ['NotFoundError', 'IpfsConnectionError'])
      assert.match(err.message, /helia: NotFoundError/)
      assert.match(err.message, /gateway: IpfsConnectionError/)
      return true
    })
  })

  it('a TimeoutError when the stores that might have it run out of time', async () => {
    const silent = await startSilentServer()
    try {
      const r = await router({ gateway: silent.url, timeout: 0.2, retry_count: 1 })
      await assert.rejects(r.get(missingCid()), (err: Error & { context?: { attempts?: Array<{ store: string, error: string }> } }) => {
        assert.equal(err.name, 'TimeoutError')
        assert.deepEqual(err.context?.attempts?.map(a => a.error), ['NotFoundError', 'TimeoutError'])
        return true
      })
    } finally {
      await silent.close()
    }
  })

  it('a path that does not exist in the content is a NotFoundError at once, not a failure of every store', async () => {
    const folder = path.join(backend.dir, 'paths')
    await mkdir(folder, { recursive: true })
    await writeFile(path.join(folder, 'a'), HELLO)
    const root = await backend.store.addDirectory(folder)
    const r = await router({ gateway: backend.server.url, retry_count: 0 })
    for (const ref of [`${root.toString()}/a/b`, `ipfs://${root.toString()}/nope`]) {
      await assert.rejects(r.get(ref), (err: Error & { context?: { link?: string } }) => {
        assert.equal(err.name, 'NotFoundError', err.message)
        assert.ok(err.context?.link !== undefined)
        return true
      }, ref)
    }
    await assert.rejects(r.resolve(root, 'a/b'), { name: 'NotFoundError' })
    assert.equal(await r.has(`${root.toString()}/a/b`), false)
    assert.equal(Buffer.from(await r.get(`${root.toString()}/a`)).toString(), 'hello world\n')
  })

  it('fetchAll makes a DAG local through the stores without pinning it', async () => {
    const cid = await backend.store.put(seededBytes(600_000, 5))
    const r = await router({ gateway: backend.server.url })
    assert.equal((await r.fetchAll(`/ipfs/${cid.toString()}`)).toString(), cid.toString())
    assert.equal(await r.helia.has(cid), true)
    assert.equal(await r.helia.isPinned(cid), false)
    assert.equal((await r.helia.get(cid)).byteLength, 600_000)
  })

  it('a caller abort stops at once with AbortError', async () => {
    const r = await router({ gateway: backend.server.url })
    const controller = new AbortController()
    controller.abort()
    await assert.rejects(r.get(missingCid(), { signal: controller.signal }), { name: 'AbortError' })
  })
})
