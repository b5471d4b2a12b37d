/**
 * CAR framing limits: a section (or header) claiming more bytes than a block may have is refused as its
 * length is read, before anything is buffered, whether the CAR comes from a gateway or an upload.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { limitCarSections } from '../../src/content/car-limits.js'
import { carBytes } from '../../src/content/car-stream.js'
import { collectBytes } from '../../src/content/async-utils.js'
import { GatewayStore } from '../../src/content/gateway-store.js'
import { CarBlockIterator } from '@ipld/car/iterator'
import { startBackend } from './network-harness.js'

/** An unsigned LEB128 varint, as CAR framing writes lengths. */
function varint (n: number): number[] {
  const out: number[] = []
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80)
    n = Math.floor(n / 0x80)
  }
  out.push(n)
  return out
}

async function rawBlock (text: string): Promise<{ cid: CID, bytes: Uint8Array }> {
  const bytes = new TextEncoder().encode(text)
  return { cid: CID.createV1(raw.code, await sha256.digest(bytes)), bytes }
}

/** A CAR header for `root`, then one section claiming `claimed` bytes, then zeros for ever (never buffered whole). */
async function * hostileCar (root: CID, claimed: number, piece = 7): AsyncGenerator<Uint8Array> {
  const header = await collectBytes(carBytes(root, async function * () {}))
  yield header
  const length = Uint8Array.from(varint(claimed))
  // the length split across chunks, as a network may deliver it
  for (let i = 0; i < length.byteLength; i += 2) yield length.subarray(i, i + 2)
  while (true) yield new Uint8Array(piece)
}

/**
 * `v1` wrapped as a CAR v2 (https://ipld.io/specs/transport/car/carv2/): pragma, header, `padding` zero
 * bytes, the v1 payload, then `index` (go-car writes a multihash-sorted index there).
 */
function carV2 (v1: Uint8Array, padding = 0, index = new Uint8Array(0)): Uint8Array {
  const pragma = [0x0a, 0xa1, 0x67, 0x76, 0x65, 0x72, 0x73, 0x69, 0x6f, 0x6e, 0x02] // 10, then dag-cbor { version: 2 }
  const header = Buffer.alloc(40) // characteristics (none), data offset, data size, index offset
  const dataOffset = pragma.length + header.byteLength + padding
  header.writeBigUInt64LE(BigInt(dataOffset), 16)
  header.writeBigUInt64LE(BigInt(v1.byteLength), 24)
  header.writeBigUInt64LE(BigInt(index.byteLength > 0 ? dataOffset + v1.byteLength : 0), 32)
  return new Uint8Array(Buffer.concat([Buffer.from(pragma), header, Buffer.alloc(padding), v1, index]))
}

/** Bytes that read as a length over any limit: a CAR v2's index must pass unread, never be taken for a section. */
const INDEX_LIKE = Uint8Array.from([0x81, 0x08, ...new Array<number>(9).fill(0xff), 0x01, 0, 0, 0])

/** `bytes` in pieces of `size` (a network's chunks). */
async function * pieces (bytes: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.byteLength; i += size) yield bytes.subarray(i, i + size)
}

describe('CAR section limits', () => {
  it('passes a well-formed CAR through unchanged', async () => {
    const block = await rawBlock('within the limits')
    const car = await collectBytes(carBytes(block.cid, async function * () { yield block }))
    const pieces = [car.subarray(0, 5), car.subarray(5, 40), car.subarray(40)]
    assert.deepEqual(await collectBytes(limitCarSections((async function * () { yield * pieces })())), car)
  })

  it('refuses a section claiming more than the limit as soon as its length is read', async () => {
    const { cid } = await rawBlock('x')
    await assert.rejects(collectBytes(limitCarSections(hostileCar(cid, 3 * 1024 ** 3), { source: 'test' })),
      (err: Error) => err.name === 'ContentVerificationError' && /section of at least \d+ bytes from test is over the limit of 2097408 bytes/.test(err.message))
    // a header over its own limit
    const huge = (async function * () { yield Uint8Array.from(varint(1 << 20)); while (true) yield new Uint8Array(64) })()
    await assert.rejects(collectBytes(limitCarSections(huge)), /CAR header of at least \d+ bytes is over the limit/)
  })

  it('a gateway sending a section over the block limit gets a ContentVerificationError, not an unbounded buffer', async () => {
    const { cid } = await rawBlock('asked for')
    let sent = 0
    const server = createServer((_request, response) => {
      response.writeHead(200, { 'content-type': 'application/vnd.ipld.car; version=1' })
      const source = hostileCar(cid, 1024 ** 3, 64 * 1024)
      const pump = async (): Promise<void> => {
        for await (const chunk of source) {
          if (response.destroyed) return
          sent += chunk.byteLength
          if (!response.write(chunk)) await new Promise(resolve => response.once('drain', resolve))
        }
      }
      void pump().catch(() => {})
    })
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
    try {
      const store = new GatewayStore({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, timeoutMs: 5_000, retries: 0 })
      await assert.rejects(async () => { for await (const _ of store.fetchDag(cid)) { /* drain */ } }, { name: 'ContentVerificationError' })
      // the client stopped reading at the length, not after buffering the gigabyte it announced
      assert.ok(sent < 64 * 1024 * 1024, `the gateway got to send ${sent} bytes`)
    } finally {
      server.closeAllConnections()
      await new Promise(resolve => server.close(resolve))
    }
  })

  it('a raw block answer larger than a block can be is refused before it is all read, declared or not', async () => {
    const { cid } = await rawBlock('a block')
    let sent = 0
    const server = createServer((request, response) => {
      // one answer declares a length it never finishes sending; the other streams without a length, for ever
      const declared = request.url?.includes('declared') === true
      response.writeHead(200, { 'content-type': 'application/vnd.ipld.raw', ...(declared ? { 'content-length': String(3 * 1024 ** 3) } : {}) })
      const pump = async (): Promise<void> => {
        while (!response.destroyed) {
          sent += 64 * 1024
          if (!response.write(new Uint8Array(64 * 1024))) await new Promise(resolve => response.once('drain', resolve))
        }
      }
      void pump().catch(() => {})
    })
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
    try {
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
      for (const url of [`${base}/declared`, base]) {
        sent = 0
        const store = new GatewayStore({ url, timeoutMs: 5_000, retries: 0 })
        await assert.rejects(store.getBlock(cid), (err: Error) => err.name === 'ContentVerificationError' && /more than 2097152 bytes/.test(err.message))
        assert.ok(sent < 64 * 1024 * 1024, `${url}: the gateway got to send ${sent} bytes`)
      }
    } finally {
      server.closeAllConnections()
      await new Promise(resolve => server.close(resolve))
    }
  })

  it('dag/import with allow-big-block still refuses a section over go-car\'s 32 MiB before buffering it', async () => {
    const backend = await startBackend()
    try {
      const { cid } = await rawBlock('x')
      const header = await collectBytes(carBytes(cid, async function * () {}))
      // announces 1 GiB; only a few bytes follow, so a reader that waited for them would see a cut CAR instead
      const body = new Uint8Array([...header, ...varint(1024 ** 3), ...new Uint8Array(64)])
      const form = new FormData()
      form.append('file', new Blob([Buffer.from(body)]), 'big.car')
      const res = await fetch(`${backend.server.url}/api/v0/dag/import?allow-big-block=true`, { method: 'POST', body: form })
      assert.equal(res.status, 400)
      assert.match((await res.json()).Message, /over the limit of 33554432 bytes/)
    } finally {
      await backend.close()
    }
  })

  it('block/put with allow-big-block still bounds the block it reads into memory (32 MiB)', async () => {
    const backend = await startBackend()
    try {
      const form = new FormData()
      form.append('file', new Blob([new Uint8Array(33 * 1024 * 1024)]), 'big')
      const res = await fetch(`${backend.server.url}/api/v0/block/put?allow-big-block=true`, { method: 'POST', body: form })
      assert.equal(res.status, 400)
      assert.match((await res.json()).Message, /over 33554432 bytes/)
    } finally {
      await backend.close()
    }
  })

  it('dag/import refuses an upload whose section is over the limit (400)', async () => {
    const backend = await startBackend()
    try {
      const { cid } = await rawBlock('x')
      const header = await collectBytes(carBytes(cid, async function * () {}))
      const body = new Uint8Array([...header, ...varint(3 * 1024 * 1024), ...new Uint8Array(64)])
      const form = new FormData()
      form.append('file', new Blob([Buffer.from(body)]), 'big.car')
      const res = await fetch(`${backend.server.url}/api/v0/dag/import`, { method: 'POST', body: form })
      assert.equal(res.status, 400)
      assert.match((await res.json()).Message, /over the limit/)
    } finally {
      await backend.close()
    }
  })
  it('reads a CAR v2 too: its payload is checked as a v1, its padding and index pass unread', async () => {
    const block = await rawBlock('in a CAR v2')
    const v1 = await collectBytes(carBytes(block.cid, async function * () { yield block }))
    for (const [padding, index] of [[0, new Uint8Array(0)], [13, INDEX_LIKE]] as const) {
      const v2 = carV2(v1, padding, index)
      for (const size of [1, 7, v2.byteLength]) {
        assert.deepEqual(await collectBytes(limitCarSections(pieces(v2, size))), v2, `padding ${padding}, chunks of ${size}`)
      }
      // what @ipld/car's decoder makes of it: the v1's root and block
      const car = await CarBlockIterator.fromIterable(limitCarSections(pieces(v2, 5)))
      assert.deepEqual((await car.getRoots()).map(String), [block.cid.toString()])
      const blocks = []
      for await (const b of car) blocks.push(b.cid.toString())
      assert.deepEqual(blocks, [block.cid.toString()])
    }
    // a section over the limit inside the payload, or a payload header over its own, is refused as in a v1
    const header = await collectBytes(carBytes(block.cid, async function * () {}))
    const hostile = carV2(new Uint8Array([...header, ...varint(3 * 1024 ** 3), 0, 0]))
    await assert.rejects(collectBytes(limitCarSections(pieces(hostile, 3))), /CAR section of at least \d+ bytes is over the limit/)
    const bigHeader = carV2(new Uint8Array([...varint(1 << 20), 0, 0]))
    await assert.rejects(collectBytes(limitCarSections(pieces(bigHeader, 3))), /CAR header of at least \d+ bytes is over the limit/)
    // a payload said to start inside the v2 header
    const inside = Buffer.from(carV2(v1))
    inside.writeBigUInt64LE(20n, 11 + 16)
    await assert.rejects(collectBytes(limitCarSections(pieces(inside, 64))), (err: Error) => err.name === 'ContentVerificationError' && /CAR v2 header is malformed/.test(err.message))
  })

  it('dag/import takes a CAR v2 (as go-car writes them, index included) and pins its root', async () => {
    const backend = await startBackend()
    try {
      const block = await rawBlock('imported from a CAR v2')
      const v1 = await collectBytes(carBytes(block.cid, async function * () { yield block }))
      const form = new FormData()
      // a 4 MiB index, then another part: the request only goes on if the index is read past
      form.append('file', new Blob([Buffer.from(carV2(v1, 8, Buffer.concat([INDEX_LIKE, Buffer.alloc(4 << 20)])))]), 'v2.car')
      form.append('file', new Blob([Buffer.from(v1)]), 'v1.car')
      const res = await fetch(`${backend.server.url}/api/v0/dag/import`, { method: 'POST', body: form })
      assert.equal(res.status, 200, await res.clone().text())
      assert.deepEqual(JSON.parse(await res.text()), { Root: { Cid: { '/': block.cid.toString() }, PinErrorMsg: '' } })
      assert.equal(await backend.store.isPinned(block.cid), true)
      assert.ok(Buffer.from(await backend.store.getBlock(block.cid)).equals(block.bytes))
    } finally {
      await backend.close()
    }
  })
})
