import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { GatewayStore, probeLocalGateway } from '../../src/content/gateway-store.js'
import { runStoreCompliance, HELLO, HELLO_V0 } from './store-compliance.js'
import { startBackend, startCorruptingServer, startSilentServer, closedPortUrl, type Backend } from './network-harness.js'
import { seededBytes } from './seeded-bytes.js'

for (const mode of ['raw', 'car'] as const) {
  runStoreCompliance(`GatewayStore (${mode})`, async () => {
    const backend = await startBackend()
    const store = new GatewayStore({ url: backend.server.url, mode, cache: backend.cache.blockstore, timeoutMs: 10_000, retries: 1, backoffMs: 10 })
    return {
      store,
      add: async (bytes, cidVersion) => await backend.store.put(bytes, { cidVersion }),
      corrupt: async (cid) => {
        const bad = await startCorruptingServer(backend.store, cid)
        const corrupted = new GatewayStore({ url: bad.url, mode, cache: backend.cache.blockstore, retries: 0 })
        return { store: corrupted, cached: async () => await backend.cache.has(cid), close: bad.close }
      },
      unresponsive: async () => {
        const silent = await startSilentServer()
        return { store: new GatewayStore({ url: silent.url, mode, timeoutMs: 200, retries: 1, backoffMs: 10 }), close: silent.close }
      },
      close: backend.close
    }
  }, { gaps: { put: 'a gateway is read-only' } })
}

describe('GatewayStore', () => {
  let backend: Backend
  before(async () => { backend = await startBackend() })
  after(async () => { await backend.close() })

  it('keeps verified blocks in its cache', async () => {
    const cid = await backend.store.put(seededBytes(700_000, 3))
    const store = new GatewayStore({ url: backend.server.url, cache: backend.cache.blockstore })
    await store.get(cid)
    assert.equal(await backend.cache.has(cid), true)
    assert.equal((await backend.cache.get(cid)).byteLength, 700_000)
  })

  it('resolves paths in directories over the network', async () => {
    const { mkdir, writeFile } = await import('node:fs/promises')
    const path = await import('node:path')
    const folder = path.join(backend.dir, 'folder')
    await mkdir(path.join(folder, 'sub'), { recursive: true })
    await writeFile(path.join(folder, 'sub', 'hello.txt'), HELLO)
    const root = await backend.store.addDirectory(folder)
    const store = new GatewayStore({ url: backend.server.url })
    assert.equal((await store.resolve(root, 'sub/hello.txt')).toString(), HELLO_V0)
    await assert.rejects(store.resolve(root, 'sub/nope'), { name: 'NotFoundError' })
  })

  it('an unreachable gateway is an IpfsConnectionError after retry_count retries', async () => {
    const url = await closedPortUrl()
    const store = new GatewayStore({ url, retries: 2, backoffMs: 5 })
    await assert.rejects(store.get(HELLO_V0 as never), () => true) // not a CID object: any error
    const { CID } = await import('multiformats/cid')
    await assert.rejects(store.get(CID.parse(HELLO_V0)), (err: Error & { context?: { attempts?: unknown[] } }) => {
      assert.equal(err.name, 'IpfsConnectionError')
      assert.equal(err.context?.attempts?.length, 3)
      assert.match(err.message, /ECONNREFUSED|fetch failed/)
      return true
    })
  })

  it('probeLocalGateway answers true for a live gateway and false for a closed port', async () => {
    assert.equal(await probeLocalGateway(backend.server.url, 10_000), true)
    assert.equal(await probeLocalGateway(await closedPortUrl(), 200), false)
  })

  it('refuses a URL that is not http(s)', () => {
    assert.throws(() => new GatewayStore({ url: 'ftp://example' }), { name: 'ValidationError' })
    assert.throws(() => new GatewayStore({ url: 'not a url' }), { name: 'ValidationError' })
  })
})
