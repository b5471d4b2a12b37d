import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm, readFile, writeFile, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { Key } from 'interface-datastore'
import { JournalDatastore } from '../../src/content/journal-datastore.js'

describe('JournalDatastore', () => {
  let dir: string
  before(async () => { dir = await mkdtemp(path.join(tmpdir(), 'ipfs-accelerate-journal-')) })
  after(async () => { await rm(dir, { recursive: true, force: true }) })

  it('persists puts and deletes across reopen, and queries by prefix', async () => {
    const location = path.join(dir, 'a')
    const ds = new JournalDatastore(location)
    await ds.open()
    ds.put(new Key('/pin/one'), Uint8Array.of(1))
    ds.put(new Key('/pin/two'), Uint8Array.of(2))
    ds.put(new Key('/other/x'), Uint8Array.of(3))
    ds.delete(new Key('/pin/one'))
    await ds.close()
    const again = new JournalDatastore(location)
    await again.open()
    assert.equal(await again.has(new Key('/pin/one')), false)
    assert.deepEqual([...await again.get(new Key('/pin/two'))], [2])
    const keys: string[] = []
    for await (const { key } of again.query({ prefix: '/pin/' })) keys.push(key.toString())
    assert.deepEqual(keys, ['/pin/two'])
    assert.throws(() => again.get(new Key('/missing')), { name: 'NotFoundError' })
    await again.close()
  })

  it('drops a torn last record and keeps the ones before it', async () => {
    const location = path.join(dir, 'b')
    const ds = new JournalDatastore(location)
    await ds.open()
    ds.put(new Key('/k/1'), Uint8Array.of(1))
    ds.put(new Key('/k/2'), Uint8Array.of(2))
    await ds.close()
    const file = path.join(location, 'journal')
    const bytes = await readFile(file)
    await writeFile(file, bytes.subarray(0, bytes.length - 3)) // a crash in the middle of the last write
    const again = new JournalDatastore(location)
    await again.open()
    assert.equal(await again.has(new Key('/k/1')), true)
    assert.equal(await again.has(new Key('/k/2')), false)
    again.put(new Key('/k/3'), Uint8Array.of(3))
    await again.close()
    const third = new JournalDatastore(location)
    await third.open()
    assert.equal(await third.has(new Key('/k/3')), true)
    await third.close()
  })

  it('compacts superseded records', async () => {
    const location = path.join(dir, 'c')
    const ds = new JournalDatastore(location)
    await ds.open()
    for (let i = 0; i < 25_000; i++) ds.put(new Key('/same'), Uint8Array.of(i & 0xff))
    await ds.flush()
    await ds.close()
    const size = (await stat(path.join(location, 'journal'))).size
    assert.ok(size < 25_000 * 20, `journal of ${size} bytes was not compacted`)
    const again = new JournalDatastore(location)
    await again.open()
    assert.deepEqual([...await again.get(new Key('/same'))], [24_999 & 0xff])
    await again.close()
  })
})
