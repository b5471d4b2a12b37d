import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import * as dagPb from '@ipld/dag-pb'
import { UnixFS } from 'ipfs-unixfs'
import { importBytes, importByteStream } from 'ipfs-unixfs-importer'
import type { CID } from 'multiformats/cid'
import { allocateChunk, encodeFileLeaf, kuboImporterOptions, referenceImporterOptions, KUBO_CHUNK_SIZE } from '../../src/content/unixfs-layout.js'
import { seededBytes, seededChunks } from './seeded-bytes.js'
import { HELLO, HELLO_V0, HELLO_V1 } from './store-compliance.js'

/**
 * CIDv0 values: Debian's `ipfs_cid` (rust-ipfs's adder: Kubo's default layout) on seededBytes(size, 42).
 * CIDv1 values (`ipfs add --cid-version 1`: raw leaves): the single-block ones are the sha-256 of the
 * bytes, as Kubo gives; the multi-block ones were computed by an independent dag-pb/UnixFS builder that
 * reproduces every CIDv0 above when switched to dag-pb leaves. ipfs_cid has no raw-leaves mode.
 */
const KNOWN: Array<{ size: number, v0: string, v1: string }> = [
  { size: 0, v0: 'QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH', v1: 'bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku' },
  { size: 1, v0: 'QmXVTrA72LyuC2DwTDWQybo4q38rUzDtX3BLLWsBX57toR', v1: 'bafkreigl4xh567bbdcu4hv4o6hlij45pucesae2srbsetidkmui4733uu4' },
  { size: 262_144, v0: 'QmY9M8XCcJDwE9dMQRGgadmj5Zj4WG3yQdkq8oC3eEKnBt', v1: 'bafkreiac4asek3t6j6jn4bg34eafgmmkcuannpeaw4dsx5skzcjvrl3isq' },
  { size: 262_145, v0: 'QmZikHvpsvrPozUowh1GPZ311eppE8GhwqSFsAjPGEo2bk', v1: 'bafybeibjaastt5cu34ljxhdjv5z6xvwcz7lpurdelawqcyja5ilitinzr4' },
  { size: 174 * 262_144, v0: 'QmXcj2fymFuoKBrVK6HLg5cYpCzr1p7eez2Ep3oC5DdBiW', v1: 'bafybeihykzz5j5kmhefoqhjawushdruz4z4szsynxqcf6tjacg2x4umoeq' },
  { size: 174 * 262_144 + 1, v0: 'QmZqMU3Yd55Do7t6yG68dRQUSqUJDy9Monxbka4uX1mrps', v1: 'bafybeidm77kahxaqez4nahovd2okdkoizhoylncomcrddug7if5s6mj36a' },
  { size: 50_000_000, v0: 'QmUW41yztyWuDU9jjmeGf3MTcgkHfLuqHS4AxFGuWTTdFj', v1: 'bafybeifcui7szqbanfhaagfxwi33teskdej4yg2uj2yjsfpx6ptuakd26e' }
]

/** A blockstore that keeps nothing: only the CIDs matter here. */
const discard = { put: async (cid: CID) => cid }

describe('Kubo-compatible import layout', () => {
  for (const { size, v0, v1 } of KNOWN) {
    it(`${size} bytes: ${v0} / ${v1}`, async () => {
      const bytes = seededBytes(size, 42)
      assert.equal((await importBytes(bytes, discard, kuboImporterOptions(0))).cid.toString(), v0)
      assert.equal((await importBytes(bytes, discard, kuboImporterOptions(1))).cid.toString(), v1)
    })
  }

  it('hello world', async () => {
    assert.equal((await importBytes(HELLO, discard, kuboImporterOptions(0))).cid.toString(), HELLO_V0)
    assert.equal((await importBytes(HELLO, discard, kuboImporterOptions(1))).cid.toString(), HELLO_V1)
  })

  it('streams cut at odd sizes give the same CIDs as bytes and as the importer\'s own chunker', async () => {
    for (const version of [0, 1] as const) {
      for (const [size, pieces] of [[KUBO_CHUNK_SIZE + 101, [4, 4096]], [3 * KUBO_CHUNK_SIZE + 12_345, [1000, 65_536, KUBO_CHUNK_SIZE, 1 << 20]]] as const) {
        const expected = (await importBytes(seededBytes(size, 42), discard, await referenceImporterOptions(version))).cid.toString()
        for (const piece of pieces) {
          const got = await importByteStream(seededChunks(size, 42, piece), discard, kuboImporterOptions(version))
          assert.equal(got.cid.toString(), expected, `v${version}, ${size} bytes in pieces of ${piece}`)
        }
      }
    }
  })

  it('chunks from allocateChunk pass through and are encoded in place', async () => {
    const bytes = seededBytes(2 * KUBO_CHUNK_SIZE + 3, 8)
    const expected = (await importBytes(bytes, discard, kuboImporterOptions(0))).cid.toString()
    const chunks = (function * () {
      for (let o = 0; o < bytes.length; o += KUBO_CHUNK_SIZE) {
        const piece = bytes.subarray(o, o + KUBO_CHUNK_SIZE)
        const chunk = allocateChunk(piece.byteLength)
        chunk.set(piece)
        yield chunk
      }
    })()
    assert.equal((await importByteStream(chunks, discard, kuboImporterOptions(0))).cid.toString(), expected)
  })

  it('leaves that are views of a stable input (no copy): same CIDs, and the same block bytes whole or as parts', async () => {
    const bytes = seededBytes(3 * KUBO_CHUNK_SIZE + 777, 9)
    for (const version of [0, 1] as const) {
      const expected = (await importBytes(bytes, discard, await referenceImporterOptions(version))).cid.toString()
      const whole = new Map<string, Buffer>()
      const wholeSink = { put: async (cid: CID, block: Uint8Array) => { whole.set(cid.toString(), Buffer.from(block)); return cid } }
      assert.equal((await importBytes(bytes, wholeSink, kuboImporterOptions(version, undefined, true))).cid.toString(), expected, `v${version} whole`)
      const parted = new Map<string, Buffer>()
      const partsSink = {
        put: async (cid: CID, block: Uint8Array) => { parted.set(cid.toString(), Buffer.from(block)); return cid },
        putParts: async (cid: CID, parts: Uint8Array[]) => { parted.set(cid.toString(), Buffer.concat(parts)) }
      }
      assert.equal((await importBytes(bytes, partsSink, kuboImporterOptions(version, undefined, true))).cid.toString(), expected, `v${version} parts`)
      assert.deepEqual([...parted.keys()].sort(), [...whole.keys()].sort())
      for (const [cid, block] of whole) assert.ok(block.equals(parted.get(cid) as Buffer), cid)
    }
    assert.deepEqual([...bytes.subarray(0, 8)], [...seededBytes(8, 9)], 'the input is left as it was')
  })

  it('encodeFileLeaf gives the bytes of dag-pb + UnixFS marshal', () => {
    for (const n of [0, 1, 127, 128, 16_383, 16_384, KUBO_CHUNK_SIZE]) {
      const data = seededBytes(n, n)
      const reference = dagPb.encode({ Data: new UnixFS({ type: 'file', data }).marshal(), Links: [] })
      assert.deepEqual(Buffer.from(encodeFileLeaf(data)), Buffer.from(reference), `copied, ${n} bytes`)
      const inPlace = allocateChunk(n)
      inPlace.set(data)
      assert.deepEqual(Buffer.from(encodeFileLeaf(inPlace)), Buffer.from(reference), `in place, ${n} bytes`)
    }
  })
})
