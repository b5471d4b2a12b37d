import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import fs, { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { CoalescingWriter } from '../../src/content/coalescing-writer.js'
import { seededBytes } from './seeded-bytes.js'

/** A real file handle whose writev calls are counted. */
async function countingHandle (file: string): Promise<{ handle: Promise<fs.FileHandle>, calls: number[], close: () => Promise<void> }> {
  const real = await fs.open(file, 'w+')
  const calls: number[] = []
  const counted = new Proxy(real, {
    get (target, prop) {
      if (prop === 'writev') {
        return async (buffers: Uint8Array[], position: number) => {
          calls.push(buffers.length)
          return await target.writev(buffers, position)
        }
      }
      const value = Reflect.get(target, prop) as unknown
      return typeof value === 'function' ? value.bind(target) : value
    }
  })
  return { handle: Promise.resolve(counted), calls, close: async () => { await real.close() } }
}

describe('CoalescingWriter', () => {
  let dir: string
  before(async () => { dir = await mkdtemp(path.join(tmpdir(), 'ipfs-accelerate-writer-')) })
  after(async () => { await rm(dir, { recursive: true, force: true }) })

  it('merges contiguous writes queued behind one another into few writev calls, bytes in place', async () => {
    const file = path.join(dir, 'merged.bin')
    const { handle, calls, close } = await countingHandle(file)
    const writer = new CoalescingWriter()
    const pieces = Array.from({ length: 200 }, (_, i) => seededBytes(1000 + i, i))
    let at = 0
    const writes = pieces.map(piece => {
      const header = new Uint8Array([piece.byteLength & 0xff])
      const w = writer.write(handle, at, [header, piece])
      at += 1 + piece.byteLength
      return w
    })
    await Promise.all(writes)
    await close()
    assert.ok(calls.length < 10, `${calls.length} writev calls for 200 writes`)
    const expected = Buffer.concat(pieces.flatMap(p => [Buffer.from([p.byteLength & 0xff]), Buffer.from(p)]))
    assert.ok((await readFile(file)).equals(expected))
  })

  it('does not merge across a gap or another file, and a failed call fails only its own writes', async () => {
    const a = await countingHandle(path.join(dir, 'a.bin'))
    const broken = Promise.resolve({ writev: async () => { throw new Error('disk on fire') } } as unknown as fs.FileHandle)
    const writer = new CoalescingWriter()
    const results = await Promise.allSettled([
      writer.write(a.handle, 0, [new Uint8Array([1, 2])]),
      writer.write(a.handle, 10, [new Uint8Array([3])]), // gap: its own call
      writer.write(broken, 0, [new Uint8Array([4])]),
      writer.write(broken, 1, [new Uint8Array([5])]),
      writer.write(a.handle, 11, [new Uint8Array([6])])
    ])
    await a.close()
    assert.deepEqual(results.map(r => r.status), ['fulfilled', 'fulfilled', 'rejected', 'rejected', 'fulfilled'])
    assert.match(String((results[2] as PromiseRejectedResult).reason), /disk on fire/)
    const bytes = await readFile(path.join(dir, 'a.bin'))
    assert.deepEqual([...bytes.subarray(0, 2)], [1, 2])
    assert.deepEqual([...bytes.subarray(10, 12)], [3, 6])
  })
})
