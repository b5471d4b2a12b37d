/**
 * The embedded store on a disk that fills up (ENOSPC), fails (EIO) or was left with torn tails by a
 * killed process: operations fail with the disk's reason, no pin outlives its blocks, the repository
 * can be stopped and reopened, and what was pinned before stays readable. Faults are injected in
 * process on FileHandle writes (fault-fs.ts).
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { appendFile, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import type { CID } from 'multiformats/cid'
import { HeliaStore } from '../../src/content/helia-store.js'
import { publishModel, pullModel } from '../../src/content/model-pack.js'
import { seededBytes } from './seeded-bytes.js'
import { faultsUnsupported, withFaults } from './fault-fs.js'

async function pinsOf (store: HeliaStore): Promise<string[]> {
  const out: string[] = []
  for await (const cid of store.pins()) out.push(cid.toString())
  return out.sort()
}

async function same (store: HeliaStore, cid: CID, bytes: Uint8Array): Promise<void> {
  assert.ok(Buffer.from(await store.get(cid)).equals(Buffer.from(bytes)), `${cid.toString()} reads back wrong`)
}

describe('the embedded store on a full or failing disk', { skip: faultsUnsupported }, () => {
  let dir: string
  const kept = seededBytes(2 << 20, 1)
  before(async () => { dir = await mkdtemp(path.join(tmpdir(), 'ipfs-accelerate-crash-disk-')) })
  after(async () => { await rm(dir, { recursive: true, force: true }) })

  /** A repository holding `kept`, pinned; returns the open store and the CID. */
  async function repoWithPin (name: string): Promise<{ repo: string, store: HeliaStore, keptCid: CID }> {
    const repo = path.join(dir, name)
    const store = new HeliaStore({ repo })
    return { repo, store, keptCid: await store.put(kept) }
  }

  for (const code of ['ENOSPC', 'EIO']) {
    it(`an add whose pack index cannot be written (${code}) fails, and pins nothing that is lost on restart`, async () => {
      const { repo, store, keptCid } = await repoWithPin(`index-${code}`)
      const index = path.join(repo, 'packs', 'index')
      const bytes = seededBytes(4 << 20, 2)
      await withFaults(({ op, file }) => op === 'write' && file === index ? { fail: code } : undefined, async () => {
        await assert.rejects(store.put(bytes), { code })
      })
      assert.deepEqual(await pinsOf(store), [keptCid.toString()])
      await store.stop()
      const again = new HeliaStore({ repo })
      await same(again, keptCid, kept)
      const cid = await again.put(bytes)
      await again.stop()
      const third = new HeliaStore({ repo })
      await same(third, cid, bytes)
      assert.deepEqual(await pinsOf(third), [cid.toString(), keptCid.toString()].sort())
      await third.stop()
    })
  }

  it('a pack write cut short by a filling disk goes on: the add completes, or fails with ENOSPC (not an unexplained short write)', async () => {
    const { repo, store, keptCid } = await repoWithPin('pack-short')
    const packs = path.join(repo, 'packs')
    const bytes = seededBytes(4 << 20, 3)
    let calls = 0
    const cid = await withFaults(({ op, file }) => op === 'writev' && file.startsWith(packs) && calls++ === 0 ? { short: true } : undefined, async () => await store.put(bytes))
    await same(store, cid, bytes)
    calls = 0
    const more = seededBytes(4 << 20, 4)
    await withFaults(({ op, file }) => op === 'writev' && file.startsWith(packs) ? (calls++ === 0 ? { short: true } : { fail: 'ENOSPC' }) : undefined, async () => {
      await assert.rejects(store.put(more), { code: 'ENOSPC' })
    })
    await store.stop()
    const again = new HeliaStore({ repo })
    await same(again, keptCid, kept)
    await same(again, cid, bytes)
    await same(again, await again.put(more), more)
    await again.stop()
  })

  it('a pin that cannot be recorded (disk full) fails; stop still releases the repository, which reopens with the earlier pins', async () => {
    const { repo, store, keptCid } = await repoWithPin('pin-full')
    const journal = path.join(repo, 'datastore', 'journal')
    const bytes = seededBytes(1 << 20, 5)
    await withFaults(({ op, file }) => op === 'write' && file === journal ? { fail: 'ENOSPC' } : undefined, async () => {
      await assert.rejects(store.put(bytes), { code: 'ENOSPC' })
      await assert.rejects(store.unpin(keptCid), { code: 'ENOSPC' })
    })
    // the disk is still full when the store stops with writes pending (a block put straight into the blockstore)
    const index = path.join(repo, 'packs', 'index')
    await withFaults(({ op, file }) => op === 'write' && (file === journal || file === index) ? { fail: 'ENOSPC' } : undefined, async () => {
      const block = await store.getBlock(keptCid)
      await store.blockstore.delete(keptCid)
      await store.blockstore.putBlock(keptCid, block)
      await assert.rejects(store.stop(), { code: 'ENOSPC' })
    })
    const again = new HeliaStore({ repo }) // not "in use by another HeliaStore in this process"
    await same(again, keptCid, kept)
    assert.deepEqual(await pinsOf(again), [keptCid.toString()])
    assert.deepEqual((await again.gc()).unreadable, [])
    await same(again, keptCid, kept)
    await again.stop()
  })

  it('gc whose pack compaction hits a full disk fails with ENOSPC and loses no pinned block', async () => {
    const { repo, store, keptCid } = await repoWithPin('gc-full')
    const garbage = await store.put(seededBytes(8 << 20, 6), { pin: false })
    const packs = path.join(repo, 'packs')
    await withFaults(({ op, file }) => op === 'writev' && file.startsWith(packs) ? { fail: 'ENOSPC' } : undefined, async () => {
      await assert.rejects(store.gc(), { code: 'ENOSPC' })
    })
    await same(store, keptCid, kept)
    assert.equal(await store.has(garbage), false)
    await store.stop()
    const again = new HeliaStore({ repo })
    await same(again, keptCid, kept)
    assert.equal(await again.has(garbage), false)
    await again.gc()
    await same(again, keptCid, kept)
    await again.stop()
  })

  it('a pull onto a full disk fails with ENOSPC and leaves the model cache as it was', async () => {
    const folder = path.join(dir, 'model')
    await mkdir(folder, { recursive: true })
    await writeFile(path.join(folder, 'config.json'), JSON.stringify({ model_type: 'bert' }))
    await writeFile(path.join(folder, 'weights.bin'), seededBytes(3 << 20, 7))
    const { store } = await repoWithPin('pull-full')
    const { cid } = await publishModel(store, folder)
    const cache = path.join(dir, 'cache')
    await withFaults(({ op, file }) => op === 'write' && file.startsWith(cache) ? { fail: 'ENOSPC' } : undefined, async () => {
      await assert.rejects(pullModel(store, cid, { cacheDir: cache }), { code: 'ENOSPC' })
    })
    assert.deepEqual(await readdir(path.join(cache, 'ipfs')), [])
    await pullModel(store, cid, { cacheDir: cache })
    await store.stop()
  })

  it('torn or garbage tails in a pack, the index and the datastore (a kill mid-append) are ignored; new writes survive', async () => {
    const { repo, store, keptCid } = await repoWithPin('tails')
    await store.stop()
    const packs = (await readdir(path.join(repo, 'packs'))).filter(n => n.endsWith('.pack')).sort()
    await appendFile(path.join(repo, 'packs', packs[packs.length - 1]), Buffer.concat([Buffer.from([0xb1, 34, 0, 0, 4, 0]), seededBytes(1000, 8)]))
    await appendFile(path.join(repo, 'packs', 'index'), Buffer.from([1, 59, 0, 0, 0, 16, 0, 0]))
    await appendFile(path.join(repo, 'datastore', 'journal'), Buffer.from('not a record'))
    const again = new HeliaStore({ repo })
    await same(again, keptCid, kept)
    const bytes = seededBytes(1 << 20, 9)
    const cid = await again.put(bytes)
    await again.stop()
    const third = new HeliaStore({ repo })
    await same(third, keptCid, kept)
    await same(third, cid, bytes)
    assert.deepEqual(await pinsOf(third), [cid.toString(), keptCid.toString()].sort())
    await third.stop()
  })
})
