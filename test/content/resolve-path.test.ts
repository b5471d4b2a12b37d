import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm, mkdir, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import type { CID } from 'multiformats/cid'
import { HeliaStore } from '../../src/content/helia-store.js'
import { HELLO, HELLO_V0 } from './store-compliance.js'
import { seededBytes } from './seeded-bytes.js'

/** A path must be consumed whole: a segment below a file names a link the file does not have. */
describe('resolveIpfsPath (HeliaStore.resolve)', () => {
  let dir: string
  let store: HeliaStore
  const roots: Record<'v0' | 'v1', CID> = {} as never
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'ipfs-accelerate-resolve-'))
    store = new HeliaStore({ repo: path.join(dir, 'repo') })
    const folder = path.join(dir, 'tree')
    await mkdir(path.join(folder, 'sub'), { recursive: true })
    await writeFile(path.join(folder, 'a'), HELLO)
    await writeFile(path.join(folder, 'empty'), '')
    await writeFile(path.join(folder, 'sub', 'b'), 'bee\n')
    await writeFile(path.join(folder, 'big'), seededBytes(700_000, 3)) // several blocks: a dag-pb file node with links
    roots.v0 = await store.addDirectory(folder)
    roots.v1 = await store.addDirectory(folder, { cidVersion: 1 })
  })
  after(async () => {
    await store.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('resolves names through directories', async () => {
    assert.equal((await store.resolve(roots.v0, 'a')).toString(), HELLO_V0)
    assert.equal(Buffer.from(await store.get(await store.resolve(roots.v0, 'sub/b'))).toString(), 'bee\n')
    assert.equal((await store.resolve(roots.v0, '')).toString(), roots.v0.toString())
  })

  it('a segment left below a file (dag-pb or raw leaf, empty or not) is a NotFoundError naming the link', async () => {
    for (const root of [roots.v0, roots.v1]) {
      for (const [p, link] of [['a/b', 'b'], ['big/extra', 'extra'], ['big/extra/more', 'extra'], ['empty/x', 'x'], ['a/b/c', 'b'], ['sub/b/x', 'x'], ['nope', 'nope'], ['sub/nope/b', 'nope']]) {
        await assert.rejects(store.resolve(root, p), (err: Error & { context?: { link?: string, path?: string } }) => {
          assert.equal(err.name, 'NotFoundError', `${p}: ${err.message}`)
          assert.equal(err.context?.link, link, p)
          assert.equal(err.context?.path, p)
          assert.match(err.message, new RegExp(`no link named "${link}"`))
          return true
        }, `${root.version}: ${p}`)
      }
    }
    // a file root with any path at all
    await assert.rejects(store.resolve(await store.resolve(roots.v0, 'a'), 'x'), { name: 'NotFoundError' })
  })
})
