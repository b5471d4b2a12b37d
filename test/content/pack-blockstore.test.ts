import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm, readdir, readlink, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { createHash } from 'node:crypto'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { PackBlockstore } from '../../src/content/pack-blockstore.js'
import { seededBytes } from './seeded-bytes.js'
import { damageBlock } from './damage-block.js'

function block (i: number, size = 100_000): { cid: CID, bytes: Uint8Array } {
  const bytes = seededBytes(size, i)
  return { cid: CID.createV1(0x55, Digest.create(0x12, createHash('sha256').update(bytes).digest())), bytes }
}

async function packs (dir: string): Promise<string[]> {
  return (await readdir(dir)).filter(n => n.endsWith('.pack')).sort()
}

/** Bytes of all pack files in `dir`. */
async function packBytes (dir: string): Promise<number> {
  let total = 0
  for (const name of await packs(dir)) total += (await stat(path.join(dir, name))).size
  return total
}

/** Descriptors this process holds on `dir`'s pack files (Linux only: read from /proc/self/fd). */
async function packFds (dir: string): Promise<number> {
  let n = 0
  for (const fd of await readdir('/proc/self/fd')) {
    const target = await readlink(`/proc/self/fd/${fd}`).catch(() => '')
    if (target.startsWith(dir + path.sep) && target.endsWith('.pack')) n++
  }
  return n
}

function same (a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a).equals(Buffer.from(b))
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

  it('compacts the pack being appended to, and reports the bytes actually freed', async () => {
    const location = path.join(dir, 'active')
    const store = new PackBlockstore(location) // one 256 MiB pack: everything lands in the active pack
    const kept = Array.from({ length: 3 }, (_, i) => block(400 + i))
    const dropped = Array.from({ length: 30 }, (_, i) => block(500 + i))
    for (const b of [...kept, ...dropped]) await store.putBlock(b.cid, b.bytes)
    assert.equal((await packs(location)).length, 1)
    for (const b of dropped) await store.delete(b.cid)
    const before = await packBytes(location)
    const { reclaimedBytes, packsRemoved } = await store.compact()
    const after = await packBytes(location)
    assert.equal(packsRemoved, 1)
    assert.equal(reclaimedBytes, before - after)
    assert.ok(after < 3 * 100_000 + 1000, `packs hold ${after} bytes for 300 kB live`)
    for (const b of kept) assert.ok(same(await store.getBlock(b.cid), b.bytes))
    // appends go on in the new pack; nothing more to reclaim
    const extra = block(600)
    await store.putBlock(extra.cid, extra.bytes)
    assert.deepEqual(await store.compact(), { reclaimedBytes: 0, packsRemoved: 0 })
    await store.close()
    const again = new PackBlockstore(location)
    for (const b of [...kept, extra]) assert.ok(same(await again.getBlock(b.cid), b.bytes))
    for (const b of dropped) assert.equal(await again.has(b.cid), false)
    await again.close()
  })

  it('leaves a pack of small blocks alone when they are all live (record headers count as live)', async () => {
    const location = path.join(dir, 'small')
    const store = new PackBlockstore(location)
    for (let i = 0; i < 20; i++) await store.putBlock(block(650 + i, 10).cid, block(650 + i, 10).bytes)
    assert.deepEqual(await store.compact(), { reclaimedBytes: 0, packsRemoved: 0 })
    assert.deepEqual(await packs(location), ['00000000.pack'])
    await store.close()
  })

  it('compaction while blocks are being written loses none of them', async () => {
    const location = path.join(dir, 'busy')
    const store = new PackBlockstore(location)
    const old = Array.from({ length: 10 }, (_, i) => block(700 + i, 50_000))
    for (const b of old) await store.putBlock(b.cid, b.bytes)
    for (const b of old.slice(2)) await store.delete(b.cid)
    const fresh = Array.from({ length: 20 }, (_, i) => block(800 + i, 50_000))
    const writes = Promise.all(fresh.map(async b => await store.putBlock(b.cid, b.bytes)))
    const reads = Promise.all(old.slice(0, 2).map(async b => same(await store.getBlock(b.cid), b.bytes)))
    await store.compact()
    await writes
    assert.deepEqual(await reads, [true, true])
    await store.compact()
    await store.close()
    const again = new PackBlockstore(location)
    for (const b of [...old.slice(0, 2), ...fresh]) assert.ok(same(await again.getBlock(b.cid), b.bytes))
    await again.close()
  })

  it('compacting the active pack leaves alone the packs opened while it runs, and the puts in them', async () => {
    const location = path.join(dir, 'rolled')
    const store = new PackBlockstore(location, { packSize: 1_000_000 })
    const gone = block(1000, 600_000)
    await store.putBlock(gone.cid, gone.bytes)
    await store.delete(gone.cid) // the active pack: 600 kB, nothing live, so compaction seals it
    const fresh = Array.from({ length: 12 }, (_, i) => block(1001 + i, 200_000))
    const puts = [store.putBlock(fresh[0].cid, fresh[0].bytes)] // under way when the compaction starts
    const compacting = store.compact()
    // the rest are put while it waits for that append (no I/O completes between these microtask
    // turns): four fit in a pack, so the pack it opened fills and rolls over, twice, with appends in
    // flight in each; none of those packs may be judged by this compaction (their appends are not in
    // the index yet) or deleted under the puts
    for (const b of fresh.slice(1)) {
      for (let t = 0; t < 3; t++) await Promise.resolve()
      puts.push(store.putBlock(b.cid, b.bytes))
    }
    const { packsRemoved } = await compacting
    await Promise.all(puts)
    for (const b of fresh) assert.ok(same(await store.getBlock(b.cid), b.bytes))
    assert.equal(packsRemoved, 1) // the sealed pack only
    const files = new Set<string>()
    for (const b of fresh) files.add(path.basename((await store.where(b.cid))?.file ?? 'missing'))
    assert.ok(!files.has('missing') && !files.has('00000000.pack') && files.size >= 3, [...files].join(' '))
    assert.equal(await store.has(gone.cid), false)
    await store.close()
    const again = new PackBlockstore(location, { packSize: 1_000_000 })
    for (const b of fresh) assert.ok(same(await again.getBlock(b.cid), b.bytes))
    await again.close()
  })

  it('reads more packs at once than it keeps handles for: a handle in use is never the one closed', async () => {
    const location = path.join(dir, 'handles')
    const store = new PackBlockstore(location, { packSize: 100_000, openPacks: 2 })
    const blocks = Array.from({ length: 6 }, (_, i) => block(1100 + i, 80_000)) // one per pack
    for (const b of blocks) await store.putBlock(b.cid, b.bytes)
    assert.equal((await packs(location)).length, 6)
    for (let round = 0; round < 5; round++) {
      const got = await Promise.all(blocks.map(async b => await store.getBlock(b.cid)))
      got.forEach((bytes, i) => assert.ok(same(bytes, blocks[i].bytes)))
    }
    if (process.platform === 'linux') {
      // back to the bound once the reads are done: two cached read handles and the active pack's
      let fds = await packFds(location)
      // closes go through libuv's thread pool, which a loaded machine may hold up: a deadline, not a count
      const deadline = Date.now() + 10_000
      while (fds > 3 && Date.now() < deadline) {
        await new Promise(resolve => setTimeout(resolve, 10))
        fds = await packFds(location)
      }
      assert.ok(fds <= 3, `${fds} pack descriptors open`)
    }
    await store.close()
  })

  it('a block found damaged is dropped from the index for good, so the next put stores it again', async () => {
    const location = path.join(dir, 'damaged')
    const first = new PackBlockstore(location)
    const b = block(900, 50_000)
    const other = block(901, 50_000)
    await first.putBlock(b.cid, b.bytes)
    await first.putBlock(other.cid, other.bytes)
    await damageBlock(first, b.cid)
    await first.close()

    // a new process knows nothing of the damage until it reads the block
    const second = new PackBlockstore(location)
    assert.equal(await second.has(b.cid), true)
    await assert.rejects(second.getBlock(b.cid), { name: 'ContentVerificationError' })
    await assert.rejects(second.getBlock(b.cid), { name: 'ContentVerificationError', message: /dropped from the index/ })
    assert.equal(await second.has(b.cid), false)
    await second.close()

    // the next process: not here, so a put writes it (an `ipfs add` of the same file repairs it)
    const third = new PackBlockstore(location)
    assert.equal(await third.has(b.cid), false)
    await assert.rejects(third.getBlock(b.cid), { name: 'NotFoundError' })
    await third.putBlock(b.cid, b.bytes)
    assert.ok(same(await third.getBlock(b.cid), b.bytes))
    assert.ok(same(await third.getBlock(other.cid), other.bytes))
    // the damaged copy is garbage that compaction gives back
    const before = await packBytes(location)
    const { reclaimedBytes } = await third.compact({ minLiveRatio: 0.9 })
    assert.ok(reclaimedBytes >= 50_000)
    assert.equal(await packBytes(location), before - reclaimedBytes)
    assert.ok(same(await third.getBlock(b.cid), b.bytes))
    await third.close()
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
