import { describe, it, beforeEach, afterEach } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import * as dagPb from '@ipld/dag-pb'
import { Key } from 'interface-datastore'
import { base36 } from 'multiformats/bases/base36'
import type { CID } from 'multiformats/cid'
import { HeliaStore } from '../../src/content/helia-store.js'
import { JournalDatastore } from '../../src/content/journal-datastore.js'
import { seededBytes } from './seeded-bytes.js'

async function collect<T> (source: AsyncIterable<T> | Iterable<T>): Promise<T[]> {
  const out: T[] = []
  for await (const item of source) out.push(item)
  return out
}

/** The first leaf under a dag-pb root. */
async function firstLeaf (store: HeliaStore, root: CID): Promise<CID> {
  return dagPb.decode(await store.getBlock(root)).Links[0].Hash
}

describe('pins (root records, walked on demand)', () => {
  let dir: string
  let store: HeliaStore

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'ipfs-accelerate-pins-'))
    store = new HeliaStore({ repo: dir })
  })

  afterEach(async () => {
    await store.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('holds every block under a pinned root, and nothing once unpinned', async () => {
    const root = await store.put(seededBytes(700_000, 1))
    const leaf = await firstLeaf(store, root)
    assert.equal(await store.isPinned(root), true)
    assert.equal(await store.isPinned(leaf), true)
    await store.unpin(root)
    assert.equal(await store.isPinned(root), false)
    assert.equal(await store.isPinned(leaf), false)
    await store.unpin(root) // not pinned: a no-op
  })

  it('a block shared by two pins stays until both are gone', async () => {
    const a = await store.put(seededBytes(300_000, 2))
    const b = await store.put(seededBytes(300_000, 2), { pin: false })
    assert.equal(a.toString(), b.toString())
    const leaf = await firstLeaf(store, a)
    const c = await store.put(new Uint8Array([...seededBytes(262_144, 2), 1, 2, 3])) // same first leaf, other root
    assert.equal((await firstLeaf(store, c)).toString(), leaf.toString())
    await store.unpin(a)
    await store.gc()
    assert.equal(await store.has(a), false)
    assert.equal(await store.has(leaf), true, 'still held by the other pin')
    assert.equal((await store.get(c)).byteLength, 262_147)
  })

  it('refuses to pin a DAG with a missing block, and pins nothing', async () => {
    const root = await store.put(seededBytes(700_000, 3), { pin: false })
    await store.blockstore.delete(await firstLeaf(store, root))
    await assert.rejects(store.pin(root), { name: 'NotFoundError', message: /is not in the local store/ })
    assert.equal(await store.isPinned(root), false)
    assert.deepEqual(await collect(store.pins()), [])
  })

  it('lists roots as they were pinned (CIDv0 stays v0) and keeps them across a restart', async () => {
    const v0 = await store.put(seededBytes(1000, 4))
    const v1 = await store.put(seededBytes(1000, 5), { cidVersion: 1 })
    await store.stop()
    store = new HeliaStore({ repo: dir })
    const listed = (await collect(store.pins())).map(c => c.toString()).sort()
    assert.deepEqual(listed, [v0.toString(), v1.toString()].sort())
    await store.unpin(v0.toV1()) // either spelling names the same pin
    assert.deepEqual((await collect(store.pins())).map(c => c.toString()), [v1.toString()])
  })

  it('carries over pins recorded by Helia\'s pinner, and gc keeps them', async () => {
    const root = await store.put(seededBytes(700_000, 6), { pin: false })
    const loose = await store.put(seededBytes(1000, 7), { pin: false })
    await store.stop()
    // what Helia's pinner leaves in a datastore: /pin/<base36 CIDv1> and a /pinned-block/ record per block
    const datastore = new JournalDatastore(path.join(dir, 'datastore'))
    await datastore.open()
    datastore.put(new Key(`/pin/${root.toV1().toString(base36)}`), new Uint8Array([0xa0]))
    datastore.put(new Key(`/pinned-block/${base36.encode(root.multihash.bytes)}`), new Uint8Array([0xa0]))
    await datastore.close()

    store = new HeliaStore({ repo: dir })
    assert.deepEqual((await collect(store.pins())).map(c => c.toString()), [root.toV1().toString()])
    const { removed } = await store.gc()
    assert.equal(removed, 1)
    assert.equal(await store.has(loose), false)
    assert.equal((await store.get(root)).byteLength, 700_000)
    await store.stop()
    const after = new JournalDatastore(path.join(dir, 'datastore'))
    await after.open()
    try {
      const left = await collect(after.queryKeys({}))
      assert.ok(left.every(k => !k.toString().startsWith('/pin/') && !k.toString().startsWith('/pinned-block/')), left.join(','))
    } finally {
      await after.close()
    }
    store = new HeliaStore({ repo: dir })
  })
})
