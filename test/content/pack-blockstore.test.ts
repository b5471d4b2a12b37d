import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm, readdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { createHash } from 'node:crypto'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { PackBlockstore } from '../../src/content/pack-blockstore.js'
import { seededBytes } from './seeded-bytes.js'

function block (i: number, size = 100_000): { cid: CID, bytes: Uint8Array } {
  const bytes = seededBytes(size, i)
  return { cid: CID.createV1(0x55, Digest.create(0x12, createHash('sha256').update(bytes).digest())), bytes }
}

async function packs (dir: string): Promise<string[]> {
  return (await readdir(dir)).filter(n => n.endsWith('.pack')).sort()
}

describe('PackBlockstore', () => {
  let dir: string
  before(async () => { dir = await mkdtemp(path.join(tmpdir(), 'ipfs-accelerate-packs-')) })
  after(async () => { await rm(dir, { recursive: true, force: true }) })

  it('stores concurrently, rolls to new packs, and reads everything back after reopening', async () => {
    const location = path.join(dir, 'a')
    const store = new PackBlockstore(location, { packSize: 1_000_000 })
    const blocks = Array.from({ length: 40 }, (_, i) => block(i))
    await Promise.all(blocks.map(async b => await store.putBlock(b.cid, b.bytes)))
    await Promise.all(blocks.slice(0, 5).map(async b => await store.putBlock(b.cid, b.bytes))) // already there: no rewrite
    assert.ok((await packs(location)).length >= 4)
    for (const b of blocks) assert.ok(Buffer.from(await store.getBlock(b.cid)).equals(Buffer.from(b.bytes)))
    await store.close()

    const again = new PackBlockstore(location, { packSize: 1_000_000 })
    for (const b of blocks) assert.equal(await again.has(b.cid), true)
    const extra = block(100)
    await again.putBlock(extra.cid, extra.bytes) // appends to the last pack at its end
    for (const b of [...blocks, extra]) assert.ok(Buffer.from(await again.getBlock(b.cid)).equals(Buffer.from(b.bytes)))
    let count = 0
    for await (const pair of again.getAll()) {
      assert.ok(pair.cid.multihash.bytes.byteLength === 34)
      count++
    }
    assert.equal(count, 41)
    await again.close()
  })

  it('deletes, compacts mostly-garbage packs, and keeps the rest readable', async () => {
    const location = path.join(dir, 'b')
    const store = new PackBlockstore(location, { packSize: 1_000_000 })
    const blocks = Array.from({ length: 30 }, (_, i) => block(200 + i))
    for (const b of blocks) await store.putBlock(b.cid, b.bytes)
    const before = await packs(location)
    for (const b of blocks.filter((_, i) => i % 5 !== 0)) await store.delete(b.cid)
    assert.equal(await store.has(blocks[1].cid), false)
    await assert.rejects(store.getBlock(blocks[1].cid), { name: 'NotFoundError' })
    const { reclaimedBytes, packsRemoved } = await store.compact()
    assert.ok(packsRemoved >= 2, `removed ${packsRemoved} of ${before.length} packs`)
    assert.ok(reclaimedBytes > 1_000_000)
    for (const b of blocks.filter((_, i) => i % 5 === 0)) assert.ok(Buffer.from(await store.getBlock(b.cid)).equals(Buffer.from(b.bytes)))
    await store.close()
    const again = new PackBlockstore(location)
    for (const b of blocks.filter((_, i) => i % 5 === 0)) assert.ok(Buffer.from(await again.getBlock(b.cid)).equals(Buffer.from(b.bytes)))
    assert.equal(await again.has(blocks[2].cid), false)
    await again.close()
  })

  it('opens itself on first use, and refuses use after close', async () => {
    const store = new PackBlockstore(path.join(dir, 'c'))
    const b = block(300, 10)
    await store.put(b.cid, b.bytes)
    assert.equal(await store.has(b.cid), true)
    await store.close()
    await assert.rejects(store.getBlock(b.cid))
  })
})
