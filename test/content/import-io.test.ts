import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdir, mkdtemp, rm, truncate, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { READ_SPAN_CHUNKS, listFolder, readFileChunks } from '../../src/content/import-io.js'
import { ChunkPool, KUBO_CHUNK_SIZE } from '../../src/content/unixfs-layout.js'
import { seededBytes } from './seeded-bytes.js'

describe('readFileChunks', () => {
  let dir: string
  before(async () => { dir = await mkdtemp(path.join(tmpdir(), 'ipfs-accelerate-import-io-')) })
  after(async () => { await rm(dir, { recursive: true, force: true }) })

  it('yields the file in Kubo-sized chunks, several spans of reads, the last one short', async () => {
    const size = (2 * READ_SPAN_CHUNKS + 3) * KUBO_CHUNK_SIZE + 12_345
    const bytes = seededBytes(size, 1)
    const file = path.join(dir, 'whole.bin')
    await writeFile(file, bytes)
    const hash = createHash('sha256')
    const sizes: number[] = []
    for await (const chunk of readFileChunks(file, new ChunkPool())) {
      sizes.push(chunk.byteLength)
      hash.update(chunk)
    }
    assert.equal(sizes.length, 2 * READ_SPAN_CHUNKS + 4)
    assert.ok(sizes.slice(0, -1).every(n => n === KUBO_CHUNK_SIZE))
    assert.equal(sizes.at(-1), 12_345)
    assert.equal(hash.digest('hex'), createHash('sha256').update(bytes).digest('hex'))
  })

  it('a file that shrinks while it is read is a ValidationError naming it', async () => {
    const file = path.join(dir, 'shrinks.bin')
    await writeFile(file, seededBytes(5 * READ_SPAN_CHUNKS * KUBO_CHUNK_SIZE, 2))
    await assert.rejects(async () => {
      let first = true
      for await (const _ of readFileChunks(file, new ChunkPool())) {
        if (first) await truncate(file, READ_SPAN_CHUNKS * KUBO_CHUNK_SIZE)
        first = false
      }
    }, { name: 'ValidationError', message: /shrank while it was being added/ })
  })
})

describe('listFolder', () => {
  let dir: string
  before(async () => { dir = await mkdtemp(path.join(tmpdir(), 'ipfs-accelerate-list-')) })
  after(async () => { await rm(dir, { recursive: true, force: true }) })

  it('lists names that start with dots (..hidden, ..., .x): only `..` as a whole segment would escape', async () => {
    await mkdir(path.join(dir, '..d'))
    for (const name of ['..hidden', '...', '.x', 'a..b', '..d/..inner']) await writeFile(path.join(dir, name), name)
    const listed = await listFolder(dir)
    assert.deepEqual(listed.map(e => e.relative), ['...', '..d', '..d/..inner', '..hidden', '.x', 'a..b'])
    assert.equal(listed.find(e => e.relative === '..hidden')?.size, '..hidden'.length)
    assert.equal(listed.find(e => e.relative === '..d')?.size, undefined)
  })
})
