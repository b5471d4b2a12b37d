import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { CID } from 'multiformats/cid'
import { KuboStore } from '../../src/content/kubo-store.js'
import { NotFoundError } from '../../src/errors.js'
import { runStoreCompliance, HELLO, HELLO_V0, HELLO_V1, missingCid } from './store-compliance.js'
import { startBackend, startCorruptingServer, startSilentServer, closedPortUrl, type Backend } from './network-harness.js'
import { seededBytes, seededChunks } from './seeded-bytes.js'
import { TWO_LEVEL_SIZE } from './store-compliance.js'
import { carBytes } from '../../src/content/car-stream.js'
import { walkDag } from '../../src/content/unixfs-reader.js'
import { collectBytes } from '../../src/content/async-utils.js'

runStoreCompliance('KuboStore', async () => {
  const backend = await startBackend()
  const store = new KuboStore({ url: backend.server.url, cache: backend.cache.blockstore, timeoutMs: 10_000, retries: 1, backoffMs: 10 })
  return {
    store,
    add: async (bytes, cidVersion) => await store.put(bytes, { cidVersion }),
    corrupt: async (cid) => {
      const bad = await startCorruptingServer(backend.store, cid)
      const corrupted = new KuboStore({ url: bad.url, cache: backend.cache.blockstore, retries: 0 })
      return { store: corrupted, cached: async () => await backend.cache.has(cid), close: bad.close }
    },
    unresponsive: async () => {
      const silent = await startSilentServer()
      return { store: new KuboStore({ url: silent.url, timeoutMs: 200, retries: 1, backoffMs: 10 }), close: silent.close }
    },
    close: backend.close
  }
})

describe('KuboStore', () => {
  let backend: Backend
  let store: KuboStore
  before(async () => {
    backend = await startBackend()
    store = new KuboStore({ url: backend.server.url })
  })
  after(async () => { await backend.close() })

  it('adds with Kubo\'s options: the node stores and pins what we add', async () => {
    const cid = await store.put(HELLO)
    assert.equal(cid.toString(), HELLO_V0)
    assert.equal(await backend.store.isPinned(cid), true)
    const unpinned = await store.put(seededBytes(300_000, 4), { pin: false, cidVersion: 1 })
    assert.equal(await backend.store.isPinned(unpinned), false)
    assert.equal(await store.has(unpinned), true)
    assert.equal(await store.has(missingCid()), false)
  })

  it('streams an add and reports progress', async () => {
    const seen: number[] = []
    const cid = await store.put((async function * () { yield * seededChunks(1_000_000, 9, 65_536) })(), { onProgress: p => seen.push(p.bytes) })
    assert.equal(cid.toString(), (await backend.store.put(seededBytes(1_000_000, 9), { pin: false })).toString())
    assert.ok(seen.length > 0)
  })

  it('pins through pin/add', async () => {
    const cid = await backend.store.put(seededBytes(10_000, 6), { pin: false })
    await store.pin(cid)
    assert.equal(await backend.store.isPinned(cid), true)
    await assert.rejects(store.pin(missingCid()), { name: 'NotFoundError' })
  })

  it('resolves paths with verified block/get', async () => {
    const { mkdir, writeFile } = await import('node:fs/promises')
    const path = await import('node:path')
    const folder = path.join(backend.dir, 'k-folder')
    await mkdir(folder, { recursive: true })
    await writeFile(path.join(folder, 'hello.txt'), HELLO)
    const root = await backend.store.addDirectory(folder)
    assert.equal((await store.resolve(root, 'hello.txt')).toString(), HELLO_V0)
  })

  it('an unreachable node is an IpfsConnectionError after retry_count retries', async () => {
    const down = new KuboStore({ url: await closedPortUrl(), retries: 2, backoffMs: 5 })
    await assert.rejects(down.get(CID.parse(HELLO_V1)), (err: Error & { context?: { attempts?: unknown[] } }) => {
      assert.equal(err.name, 'IpfsConnectionError')
      assert.equal(err.context?.attempts?.length, 3)
      return true
    })
    await assert.rejects(down.put(HELLO), { name: 'IpfsConnectionError' })
  })

  it('copies a whole DAG with dag/import (one CAR, pinned there), with the same CIDs', async () => {
    // a three-level file and a folder, made in another store, copied over as they are stored there
    const file = await backend.cache.put(seededBytes(TWO_LEVEL_SIZE + 300_000, 21), { pin: false, cidVersion: 1 })
    const car = (root: CID) => () => carBytes(root, stop => walkDag(root, async c => await backend.cache.getBlock(c), { signal: stop }))
    assert.equal(await backend.store.has(file), false)
    await store.importDag(file, car(file))
    assert.equal(await backend.store.isPinned(file), true)
    assert.deepEqual(await backend.store.get(file), seededBytes(TWO_LEVEL_SIZE + 300_000, 21))
    const loose = await backend.cache.put(seededBytes(1000, 22), { pin: false })
    await store.importDag(loose, car(loose), { pin: false })
    assert.equal(await backend.store.has(loose), true)
    assert.equal(await backend.store.isPinned(loose), false)
    // a CAR lacking blocks: the node cannot pin the root, which is an error here (never a silent half copy)
    const partial = await backend.cache.put(seededBytes(TWO_LEVEL_SIZE, 23), { pin: false, cidVersion: 1 })
    const once = new KuboStore({ url: backend.server.url, retries: 0 })
    await assert.rejects(once.importDag(partial, () => carBytes(partial, stop => walkDag(partial, async c => await backend.cache.getBlock(c), { signal: stop, scope: 'block' }))),
      (err: Error) => err.name === 'IpfsConnectionError' && /pinning .* failed/.test(err.message))
    assert.equal(await backend.store.isPinned(partial), false)
  })

  it('importDag: a CAR that cannot be made here (a block missing locally) is that error, not a retried Kubo failure', async () => {
    const root = await backend.cache.put(seededBytes(1000, 25), { pin: false, cidVersion: 1 })
    const header = await collectBytes(carBytes(root, async function * () {}))
    let made = 0
    const failing = (): AsyncIterable<Uint8Array> => (async function * () {
      made++
      yield header
      throw new NotFoundError(`block ${root.toString()} is not in the local store`)
    })()
    const retrying = new KuboStore({ url: backend.server.url, retries: 2, backoffMs: 1 })
    await assert.rejects(retrying.importDag(root, failing), (err: Error) => err.name === 'NotFoundError' && /not in the local store/.test(err.message))
    assert.equal(made, 1, 'not sent again: sending again cannot bring the block')
    assert.equal(await backend.store.isPinned(root), false)
  })

  it('dag/import refuses a CAR that is not one, or whose block does not match its CID, and pins nothing', async () => {
    const post = async (body: Uint8Array): Promise<{ status: number, message: string }> => {
      const form = new FormData()
      form.append('file', new Blob([Buffer.from(body)]), 'x.car')
      const res = await fetch(`${backend.server.url}/api/v0/dag/import`, { method: 'POST', body: form })
      return { status: res.status, message: (await res.json()).Message }
    }
    const notCar = await post(new TextEncoder().encode('not a car'))
    assert.equal(notCar.status, 400)
    assert.match(notCar.message, /not a CAR/)
    const root = await backend.cache.put(seededBytes(1000, 24), { pin: false, cidVersion: 1 })
    const good = await collectBytes(carBytes(root, async function * () { yield { cid: root, bytes: await backend.cache.getBlock(root) } }))
    const bad = new Uint8Array(good)
    bad[bad.length - 1] ^= 0xff // the block's last byte
    const refused = await post(bad)
    assert.equal(refused.status, 400)
    assert.match(refused.message, /does not match its CID/)
    assert.equal(await backend.store.isPinned(root), false)
    assert.equal(await backend.store.has(root), false)
  })

  it('a stream add gets one attempt (it cannot be replayed)', async () => {
    const down = new KuboStore({ url: await closedPortUrl(), retries: 3, backoffMs: 5 })
    await assert.rejects(down.put((async function * () { yield HELLO })()), (err: Error & { context?: { attempts?: unknown[] } }) => {
      assert.equal(err.context?.attempts?.length, 1)
      return true
    })
  })
})
