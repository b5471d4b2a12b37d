import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile, mkdir, symlink, readdir, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { CID } from 'multiformats/cid'
import { HeliaStore, defaultRepoPath } from '../../src/content/helia-store.js'
import { runStoreCompliance, HELLO, HELLO_V0, missingCid } from './store-compliance.js'
import { seededBytes, seededChunks } from './seeded-bytes.js'
import { damageBlock } from './damage-block.js'

async function tempDir (): Promise<string> {
  return await mkdtemp(path.join(tmpdir(), 'ipfs-accelerate-helia-'))
}


/** Bytes of all pack files of the repository at `repo`. */
async function packBytes (repo: string): Promise<number> {
  let total = 0
  for (const name of await readdir(path.join(repo, 'packs'))) {
    if (name.endsWith('.pack')) total += (await stat(path.join(repo, 'packs', name))).size
  }
  return total
}

for (const layout of ['pack', 'fs'] as const) {
  runStoreCompliance(`HeliaStore (${layout} layout)`, async () => {
    const dir = await tempDir()
    const store = new HeliaStore({ repo: dir, layout })
    await store.start()
    assert.equal(store.layout, layout)
    return {
      store,
      add: async (bytes, cidVersion) => await store.put(bytes, { cidVersion }),
      corrupt: async (cid) => {
        await damageBlock(store.blockstore, cid)
        return { store, cached: async () => false }
      },
      close: async () => { await store.stop(); await rm(dir, { recursive: true, force: true }) }
    }
  }, { gaps: { unresponsive: 'the embedded store makes no network calls' } })
}

describe('HeliaStore', () => {
  let dir: string
  let store: HeliaStore
  before(async () => {
    dir = await tempDir()
    store = new HeliaStore({ repo: dir })
  })
  after(async () => {
    await store.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('keeps content and pins across a restart', async () => {
    const cid = await store.put(HELLO)
    assert.equal(cid.toString(), HELLO_V0)
    await store.stop()
    store = new HeliaStore({ repo: dir })
    assert.equal(await store.has(cid), true)
    assert.equal(await store.isPinned(cid), true)
    assert.deepEqual(Buffer.from(await store.get(cid)), Buffer.from(HELLO))
  })

  it('gc removes unpinned blocks only', async () => {
    const kept = await store.put(seededBytes(600_000, 1))
    const dropped = await store.put(seededBytes(600_000, 2), { pin: false })
    const unpinned = await store.put(seededBytes(600_000, 3))
    await store.unpin(unpinned)
    const { removed } = await store.gc()
    assert.ok(removed >= 8, `removed ${removed}`) // 2 files x (3 leaves + root)
    assert.equal(await store.has(kept), true)
    assert.equal(await store.has(dropped), false)
    assert.equal(await store.has(unpinned), false)
    assert.equal(Buffer.from(await store.get(kept)).equals(Buffer.from(seededBytes(600_000, 1))), true)
  })

  it('pins content that shares blocks with another pin independently', async () => {
    const a = await store.put(seededBytes(300_000, 11))
    const b = await store.put(seededBytes(300_000, 11), { cidVersion: 1 }) // same leaf bytes, other CIDs
    await store.unpin(a)
    await store.gc()
    assert.equal(await store.has(a), false)
    assert.equal(await store.has(b), true)
    assert.equal((await store.get(b)).byteLength, 300_000)
  })

  it('pin() of an existing DAG and of a missing CID', async () => {
    const cid = await store.put(seededBytes(700_000, 12), { pin: false })
    await store.pin(cid)
    assert.equal(await store.isPinned(cid), true)
    await store.pin(cid) // twice is fine
    await assert.rejects(store.pin(missingCid()), { name: 'NotFoundError' })
  })

  it('streams a put from an async iterable without holding it (same CID as bytes)', async () => {
    const size = 3 * 1024 * 1024 + 5
    const fromBytes = await store.put(seededBytes(size, 21), { pin: false })
    const fromStream = await store.put((async function * () { yield * seededChunks(size, 21, 100_000) })(), { pin: false })
    assert.equal(fromStream.toString(), fromBytes.toString())
  })

  it('addFile reads a file from disk with the same CID', async () => {
    const file = path.join(dir, 'input.bin')
    const bytes = seededBytes(1_000_003, 31)
    await writeFile(file, bytes)
    const expected = await store.put(bytes, { pin: false })
    assert.equal((await store.addFile(file)).toString(), expected.toString())
    assert.equal((await store.addFile(file, { cidVersion: 1 })).toString(), (await store.put(bytes, { cidVersion: 1, pin: false })).toString())
    await assert.rejects(store.addFile(path.join(dir, 'nope')), { name: 'ValidationError' })
  })

  it('reports progress of a put', async () => {
    const seen: number[] = []
    await store.put(seededBytes(600_000, 41), { pin: false, onProgress: p => seen.push(p.bytes) })
    assert.equal(seen.at(-1), 600_000)
  })

  it('rejects things that are not bytes', async () => {
    await assert.rejects(store.put('hello' as unknown as Uint8Array), { name: 'ValidationError' })
  })

  it('stat and get of a raw block', async () => {
    const cid = await store.put(HELLO, { cidVersion: 1 })
    assert.deepEqual(await store.stat(cid), { type: 'raw', size: HELLO.byteLength })
    assert.deepEqual(Buffer.from(await store.getBlock(cid)), Buffer.from(HELLO))
  })

  it('reads an identity CID without storage', async () => {
    const id = CID.parse('bafkqaddimvwgy3zao5xxe3debi') // identity, raw: 'hello world\n'
    assert.equal(await store.has(id), true)
    assert.deepEqual(Buffer.from(await store.get(id)), Buffer.from(HELLO))
  })

  describe('addDirectory', () => {
    let folder: string
    before(async () => {
      folder = path.join(dir, 'pack')
      await mkdir(path.join(folder, 'sub', 'empty'), { recursive: true })
      await writeFile(path.join(folder, 'a.txt'), 'hello world\n')
      await writeFile(path.join(folder, 'sub', 'b.bin'), seededBytes(400_000, 51))
    })

    it('imports a folder as a UnixFS directory that resolves by path', async () => {
      const root = await store.addDirectory(folder)
      assert.deepEqual(await store.stat(root), { type: 'directory', size: 0 })
      const a = await store.resolve(root, 'a.txt')
      assert.equal(a.toString(), HELLO_V0)
      const b = await store.resolve(root, 'sub/b.bin')
      assert.ok(Buffer.from(await store.get(b)).equals(Buffer.from(seededBytes(400_000, 51))))
      assert.equal((await store.stat(await store.resolve(root, 'sub/empty'))).type, 'directory')
      await assert.rejects(store.resolve(root, 'missing.txt'), { name: 'NotFoundError' })
      await assert.rejects(store.get(root), { name: 'ValidationError' }) // a directory is not a file
      assert.equal(await store.isPinned(root), true)
      // the same folder gives the same CID
      assert.equal((await store.addDirectory(folder)).toString(), root.toString())
    })

    it('refuses symbolic links and non-directories', async () => {
      const linked = path.join(dir, 'linked')
      await mkdir(linked)
      await writeFile(path.join(linked, 'ok.txt'), 'x')
      await symlink('/etc/passwd', path.join(linked, 'escape'))
      await assert.rejects(store.addDirectory(linked), (err: Error & { context?: { file?: string } }) => {
        assert.equal(err.name, 'ValidationError')
        assert.match(err.message, /symbolic link/)
        return true
      })
      await assert.rejects(store.addDirectory(path.join(folder, 'a.txt')), { name: 'ValidationError' })
    })

    it('imports an empty folder as the empty directory', async () => {
      const empty = path.join(dir, 'empty-folder')
      await mkdir(empty)
      assert.equal((await store.addDirectory(empty)).toString(), 'QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn')
    })
  })

  it('keeps blocks in pack files by default, and in blockstore-fs\'s layout with layout: fs', async () => {
    const cid = await store.put(HELLO, { pin: false })
    assert.equal(store.layout, 'pack')
    assert.ok((await store.blockstore.where(cid))?.file.startsWith(path.join(dir, 'packs')))
    const fsRepo = path.join(dir, 'fs-layout')
    const fsStore = new HeliaStore({ repo: fsRepo, layout: 'fs' })
    try {
      await fsStore.put(HELLO, { pin: false })
      const file = (await fsStore.blockstore.where(cid))?.file as string
      assert.ok(file.startsWith(path.join(fsRepo, 'blocks')))
      assert.ok((await readdir(path.dirname(file))).includes(path.basename(file)))
      // blockstore-fs itself reads it
      const { FsBlockstore } = await import('blockstore-fs')
      const reference = new FsBlockstore(path.join(fsRepo, 'blocks'))
      const chunks: Uint8Array[] = []
      for await (const c of reference.get(cid)) chunks.push(c)
      assert.equal(Buffer.concat(chunks).byteLength, 20)
    } finally {
      await fsStore.stop()
    }
    // a repository keeps its layout, whatever a later init asks for
    const again = new HeliaStore({ repo: fsRepo, layout: 'pack' })
    assert.equal(again.layout, 'fs')
    await again.stop()
  })

  it('a corrupt block keeps failing verification until a later put repairs it', async () => {
    const bytes = seededBytes(300_000, 61)
    const cid = await store.put(bytes, { cidVersion: 1 })
    const leaf = (await import('../../src/content/unixfs-reader.js')).walkDag
    let victim: CID | undefined
    for await (const block of leaf(cid, async c => await store.getBlock(c))) victim = block.cid
    await damageBlock(store.blockstore, victim as CID)
    await assert.rejects(store.get(cid), { name: 'ContentVerificationError' })
    await assert.rejects(store.get(cid), { name: 'ContentVerificationError' })
    assert.equal(await store.has(victim as CID), false)
    await store.put(bytes, { cidVersion: 1 })
    assert.ok(Buffer.from(await store.get(cid)).equals(Buffer.from(bytes)))
  })

  it('gc reclaims the space of packs that became garbage', async () => {
    const packed = new HeliaStore({ repo: path.join(dir, 'small-packs'), layout: 'pack' })
    try {
      const keep = await packed.put(seededBytes(1_000_000, 71))
      const drop = await packed.put(seededBytes(3_000_000, 72), { pin: false })
      const result = await packed.gc()
      assert.ok(result.removed >= 12)
      assert.equal(await packed.has(drop), false)
      assert.ok(Buffer.from(await packed.get(keep)).equals(Buffer.from(seededBytes(1_000_000, 71))))
    } finally {
      await packed.stop()
    }
  })

  it('gc gives back the space of removed blocks in the pack being appended to, and the repo reopens', async () => {
    const repo = path.join(dir, 'gc-active')
    let packed = new HeliaStore({ repo })
    try {
      const keep = await packed.put(seededBytes(300_000, 81))
      const drop = await packed.put(seededBytes(4_000_000, 82))
      await packed.unpin(drop)
      const before = await packBytes(repo)
      const result = await packed.gc()
      const after = await packBytes(repo)
      assert.ok(result.removed >= 16, `removed ${result.removed}`)
      assert.deepEqual(result.unreadable, [])
      assert.equal(result.reclaimedBytes, before - after)
      assert.ok(after < 300_000 + 10_000, `packs hold ${after} bytes for a 300 kB pin`)
      assert.ok(Buffer.from(await packed.get(keep)).equals(Buffer.from(seededBytes(300_000, 81))))
      // a second gc has nothing left to give back
      assert.deepEqual(await packed.gc(), { removed: 0, reclaimedBytes: 0, unreadable: [] })
      await packed.stop()
      packed = new HeliaStore({ repo })
      assert.ok(Buffer.from(await packed.get(keep)).equals(Buffer.from(seededBytes(300_000, 81))))
      assert.equal(await packed.has(drop), false)
    } finally {
      await packed.stop()
    }
  })

  it('re-adding a file repairs a block a read found damaged, even in a later process', async () => {
    const repo = path.join(dir, 'repair')
    const bytes = new TextEncoder().encode('one small block\n')
    let s = new HeliaStore({ repo })
    const cid = await s.put(bytes)
    await damageBlock(s.blockstore, cid)
    await s.stop()
    s = new HeliaStore({ repo }) // `ipfs cat`: fails, and the damage is remembered
    await assert.rejects(s.get(cid), { name: 'ContentVerificationError' })
    await s.stop()
    s = new HeliaStore({ repo }) // `ipfs add` of the same file
    assert.equal((await s.put(bytes)).toString(), cid.toString())
    await s.stop()
    s = new HeliaStore({ repo })
    try {
      assert.deepEqual(Buffer.from(await s.get(cid)), Buffer.from(bytes))
    } finally {
      await s.stop()
    }
  })

  it('pin and gc name a damaged pinned block; gc then deletes nothing, and runs in full once it is repaired', async () => {
    const repo = path.join(dir, 'gc-damaged')
    const bytes = seededBytes(700_000, 91) // CIDv0: dag-pb leaves, which gc reads
    let s = new HeliaStore({ repo })
    const root = await s.put(bytes)
    const loose = await s.put(seededBytes(100_000, 92), { pin: false })
    const leaf = (await import('@ipld/dag-pb')).decode(await s.getBlock(root)).Links[1].Hash
    await damageBlock(s.blockstore, leaf)
    await s.stop()
    s = new HeliaStore({ repo })
    try {
      const result = await s.gc()
      assert.equal(result.removed, 0)
      assert.deepEqual(result.unreadable.map(u => [u.cid, u.pin]), [[leaf.toString(), root.toString()]])
      assert.match(result.unreadable[0].reason, /corrupt/)
      assert.equal(await s.has(loose), true, 'nothing deleted while a pin cannot be walked')
      await assert.rejects(s.pin(root), (err: Error & { context?: Record<string, unknown> }) => {
        assert.match(err.message, new RegExp(`cannot pin ${root.toString()}: block ${leaf.toString()}`))
        assert.equal(err.context?.block, leaf.toString())
        return true
      })
      // adding the file again stores a good copy; gc then runs in full
      await s.put(bytes)
      const after = await s.gc()
      assert.deepEqual(after.unreadable, [])
      assert.ok(after.removed >= 1)
      assert.equal(await s.has(loose), false)
      assert.ok(Buffer.from(await s.get(root)).equals(Buffer.from(bytes)))
    } finally {
      await s.stop()
    }
  })

  it('one store per repository: a second one is refused until the first stops; a stale lock is taken over', async () => {
    const repo = path.join(dir, 'locked')
    const first = new HeliaStore({ repo })
    await first.put(HELLO, { pin: false })
    const second = new HeliaStore({ repo })
    await assert.rejects(second.get(CID.parse(HELLO_V0)), (err: Error & { context?: { field?: string } }) => {
      assert.equal(err.name, 'ValidationError')
      assert.equal(err.context?.field, 'ipfs.repo')
      assert.match(err.message, /in use/)
      return true
    })
    await second.stop()
    await first.stop()
    await writeFile(path.join(repo, 'repo.lock'), '999999999 stale') // a process that is gone
    const third = new HeliaStore({ repo })
    assert.deepEqual(Buffer.from(await third.get(CID.parse(HELLO_V0))), Buffer.from(HELLO))
    await third.stop()
  })

  it('refuses calls after stop', async () => {
    const other = new HeliaStore({ repo: path.join(dir, 'other') })
    await other.stop()
    await assert.rejects(other.get(missingCid()), { name: 'AbortError' })
  })
})

describe('defaultRepoPath', () => {
  it('prefers IPFS_ACCELERATE_HOME, then XDG_CACHE_HOME, then ~/.cache', () => {
    assert.equal(defaultRepoPath({ IPFS_ACCELERATE_HOME: '/data/ia' }, '/home/u'), '/data/ia/ipfs')
    assert.equal(defaultRepoPath({ XDG_CACHE_HOME: '/xdg' }, '/home/u'), '/xdg/ipfs-accelerate/ipfs')
    assert.equal(defaultRepoPath({}, '/home/u'), '/home/u/.cache/ipfs-accelerate/ipfs')
  })
})
