/**
 * The trustless gateway and the Kubo RPC routes against what the specs and real clients expect:
 * conditional requests, content negotiation, CAR Etags and `entity-bytes`, identity blocks, a body
 * sent to a read-only route, and a web page's request to the RPC API.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { CarBlockIterator } from '@ipld/car/iterator'
import * as dagPb from '@ipld/dag-pb'
import { UnixFS } from 'ipfs-unixfs'
import { importer } from 'ipfs-unixfs-importer'
import { CID } from 'multiformats/cid'
import { identity } from 'multiformats/hashes/identity'
import { sha256 } from 'multiformats/hashes/sha2'
import Fastify from 'fastify'
import { HeliaStore } from '../../src/content/helia-store.js'
import { GatewayStore } from '../../src/content/gateway-store.js'
import { verifyBlock } from '../../src/content/cid.js'
import { readUnixfsFile } from '../../src/content/unixfs-reader.js'
import { createIpfsServer, type IpfsServer } from '../../src/server/create-ipfs-server.js'
import { registerGatewayRoutes } from '../../src/server/ipfs-routes.js'
import { HELLO, HELLO_V0, TWO_LEVEL_SIZE } from '../content/store-compliance.js'
import { seededBytes } from '../content/seeded-bytes.js'

const LEAF = 262_144

describe('gateway and RPC against the specs', () => {
  let dir: string
  let store: HeliaStore
  let server: IpfsServer
  let big: CID
  let bigBytes: Uint8Array
  let three: CID
  let threeBytes: Uint8Array
  let folder: CID
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'ipfs-accelerate-gateway-spec-'))
    store = new HeliaStore({ repo: path.join(dir, 'repo') })
    server = await createIpfsServer({ store })
    await store.put(HELLO)
    bigBytes = seededBytes(TWO_LEVEL_SIZE, 7)
    big = await store.put(bigBytes)
    threeBytes = seededBytes(2 * LEAF + 100, 8)
    three = await store.put(threeBytes, { cidVersion: 1 })
    // a directory with an identity-CID entry next to a stored file
    const inline = CID.createV1(0x55, identity.digest(new TextEncoder().encode('inline')))
    const node = dagPb.encode(dagPb.prepare({
      Data: new UnixFS({ type: 'directory' }).marshal(),
      Links: [{ Name: 'hello', Hash: CID.parse(HELLO_V0), Tsize: 20 }, { Name: 'inline', Hash: inline, Tsize: 6 }]
    }))
    folder = CID.createV1(0x70, await sha256.digest(node))
    await store.putBlock(folder, node)
  })
  after(async () => {
    await server.close()
    await store.stop()
    await rm(dir, { recursive: true, force: true })
  })

  async function carBlocks (url: string, headers: Record<string, string> = {}): Promise<{ roots: string[], blocks: Map<string, Uint8Array>, order: string[] }> {
    const res = await fetch(`${server.url}${url}`, { headers })
    assert.equal(res.status, 200, `${url}: ${res.status}`)
    const car = await CarBlockIterator.fromIterable(res.body as unknown as AsyncIterable<Uint8Array>)
    const blocks = new Map<string, Uint8Array>()
    const order: string[] = []
    for await (const block of car) {
      verifyBlock(block.cid, block.bytes)
      blocks.set(block.cid.toString(), block.bytes)
      order.push(block.cid.toString())
    }
    return { roots: (await car.getRoots()).map(String), blocks, order }
  }

  it('a POST or PUT with a body of any type is a 405 with Allow, never a 415', async () => {
    for (const [method, type, body] of [['POST', 'application/octet-stream', 'x'], ['POST', 'text/plain', 'x'], ['PUT', 'application/json', '{}'],
      ['POST', 'multipart/form-data; boundary=XX', '--XX--\r\n']] as const) {
      const res = await fetch(`${server.url}/ipfs/${HELLO_V0}`, { method, headers: { 'content-type': type }, body })
      assert.equal(res.status, 405, `${method} ${type}`)
      assert.equal(res.headers.get('allow'), 'GET, HEAD')
      assert.equal((await res.json()).error.name, 'MethodNotAllowed')
    }
  })

  it('If-None-Match with the Etag (strong, weak or in a list) is a 304 without a body', async () => {
    for (const url of [`/ipfs/${HELLO_V0}`, `/ipfs/${HELLO_V0}?format=raw`, `/ipfs/${HELLO_V0}?format=car`]) {
      for (const method of ['GET', 'HEAD'] as const) {
        const first = await server.app.inject({ method, url })
        const etag = String(first.headers.etag)
        assert.match(etag, /^"[^"]+"$/, url)
        for (const ifNoneMatch of [etag, `W/${etag}`, `"other", ${etag}`, '*']) {
          const again = await server.app.inject({ method, url, headers: { 'if-none-match': ifNoneMatch } })
          assert.equal(again.statusCode, 304, `${method} ${url} ${ifNoneMatch}`)
          assert.equal(again.rawPayload.byteLength, 0)
          assert.equal(again.headers.etag, etag)
          assert.match(String(again.headers['cache-control']), /immutable/)
        }
        assert.equal((await server.app.inject({ method, url, headers: { 'if-none-match': '"other"' } })).statusCode, 200)
      }
    }
  })

  it('Accept is negotiated by q-value; types we cannot produce alone are a 406', async () => {
    const cases: Array<[string, number, RegExp]> = [
      ['application/vnd.ipld.raw;q=0, application/vnd.ipld.car', 200, /vnd\.ipld\.car/],
      ['application/vnd.ipld.car;q=0.5, application/vnd.ipld.raw;q=0.9', 200, /vnd\.ipld\.raw/],
      ['application/vnd.ipld.car; version=1; order=dfs; dups=y', 200, /vnd\.ipld\.car; version=1/],
      ['application/vnd.ipld.car; version=2, application/vnd.ipld.raw;q=0.5', 200, /vnd\.ipld\.raw/],
      ['application/vnd.ipld.dag-json, */*;q=0.1', 200, /octet-stream/],
      ['text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8', 200, /octet-stream/],
      ['application/vnd.ipld.car; version=2', 406, /json/],
      ['application/vnd.ipld.dag-json', 406, /json/]
    ]
    for (const [accept, status, type] of cases) {
      const res = await server.app.inject({ url: `/ipfs/${HELLO_V0}`, headers: { accept } })
      assert.equal(res.statusCode, status, accept)
      assert.match(String(res.headers['content-type']), type, accept)
      assert.equal(res.headers.vary, 'Accept', accept)
      if (status === 406) assert.equal(res.json().error.name, 'NotAcceptable')
    }
    // ?format wins over Accept
    const res = await server.app.inject({ url: `/ipfs/${HELLO_V0}?format=raw`, headers: { accept: 'application/vnd.ipld.dag-json' } })
    assert.equal(res.statusCode, 200)
    assert.equal((await server.app.inject({ url: `/ipfs/${HELLO_V0}?format=car&car-version=2` })).statusCode, 400)
  })

  it('Vary: Accept is added to the Vary the host server set', async () => {
    const host = Fastify()
    host.addHook('onRequest', async (_req, reply) => { reply.header('vary', 'Origin') })
    registerGatewayRoutes(host, { blockstore: store.blockstore, store })
    try {
      assert.equal((await host.inject({ url: `/ipfs/${HELLO_V0}` })).headers.vary, 'Origin, Accept')
    } finally {
      await host.close()
    }
  })

  it('a CAR\'s Etag differs with dag-scope, path and entity-bytes', async () => {
    const etags = new Set<string>()
    for (const url of [`/ipfs/${folder.toString()}?format=car`, `/ipfs/${folder.toString()}?format=car&dag-scope=entity`,
      `/ipfs/${folder.toString()}?format=car&dag-scope=block`, `/ipfs/${folder.toString()}/hello?format=car`,
      `/ipfs/${big.toString()}?format=car&entity-bytes=0:10`, `/ipfs/${big.toString()}?format=car&entity-bytes=0:11`]) {
      const res = await server.app.inject({ method: 'HEAD', url })
      assert.equal(res.statusCode, 200, url)
      etags.add(String(res.headers.etag))
    }
    assert.equal(etags.size, 6)
  })

  it('CARs never carry identity-CID blocks (the probe CAR of bafkqaaa has its root and no block)', async () => {
    const car = await carBlocks(`/ipfs/${folder.toString()}?format=car`)
    assert.deepEqual(car.order, [folder.toString(), HELLO_V0])
    const viaPath = await carBlocks(`/ipfs/${folder.toString()}/inline?format=car`)
    assert.deepEqual(viaPath.order, [folder.toString()])
    const probe = await carBlocks('/ipfs/bafkqaaa?format=car')
    assert.deepEqual(probe.roots, ['bafkqaaa'])
    assert.deepEqual(probe.order, [])
  })

  it('our GatewayStore (CAR mode) reads a file with an identity-CID leaf through the gateway', async () => {
    const inline = new TextEncoder().encode('inline!')
    const stored = new TextEncoder().encode('stored leaf')
    const leaf = CID.createV1(0x55, await sha256.digest(stored))
    await store.putBlock(leaf, stored)
    const node = dagPb.encode(dagPb.prepare({
      Data: new UnixFS({ type: 'file', blockSizes: [BigInt(inline.byteLength), BigInt(stored.byteLength)] }).marshal(),
      Links: [{ Hash: CID.createV1(0x55, identity.digest(inline)), Tsize: inline.byteLength }, { Hash: leaf, Tsize: stored.byteLength }]
    }))
    const file = CID.createV1(0x70, await sha256.digest(node))
    await store.putBlock(file, node)
    const gateway = new GatewayStore({ url: server.url, mode: 'car' })
    const read: Uint8Array[] = []
    for await (const chunk of gateway.cat(file)) read.push(chunk)
    assert.equal(Buffer.concat(read).toString(), 'inline!stored leaf')
  })

  it('entity-bytes sends only the blocks of the range, enough to read it', async () => {
    const size = TWO_LEVEL_SIZE
    const cases: Array<[CID, Uint8Array, string, number, number, number]> = [
      // [file, bytes, entity-bytes, first byte, last byte, blocks expected]
      [big, bigBytes, '0:0', 0, 0, 3], // root, first level-1 node, first leaf
      [big, bigBytes, '-1:*', size - 1, size - 1, 3], // root, second level-1 node, last leaf
      [big, bigBytes, `${174 * LEAF - 1}:${174 * LEAF}`, 174 * LEAF - 1, 174 * LEAF, 5], // across both level-1 nodes
      [three, threeBytes, `${LEAF}:-1`, LEAF, 2 * LEAF + 99, 3], // root, second and third leaf
      [three, threeBytes, '-200:1000000000', 2 * LEAF - 100, 2 * LEAF + 99, 3] // partly past the end: clipped
    ]
    for (const [cid, bytes, range, first, last, count] of cases) {
      const car = await carBlocks(`/ipfs/${cid.toString()}?format=car&entity-bytes=${range}`)
      assert.equal(car.order[0], cid.toString(), range)
      assert.equal(car.order.length, count, range)
      const getBlock = async (c: CID): Promise<Uint8Array> => {
        const b = car.blocks.get(c.toString())
        if (b === undefined) throw new Error(`${range}: the CAR lacks ${c.toString()}`)
        return b
      }
      const read: Uint8Array[] = []
      for await (const chunk of readUnixfsFile(cid, getBlock, { offset: first, length: last - first + 1, readAhead: 1 })) read.push(chunk)
      assert.deepEqual(Buffer.concat(read), Buffer.from(bytes.subarray(first, last + 1)), range)
    }
    // an empty range: the root alone; a directory: the parameter is ignored (its entity)
    assert.deepEqual((await carBlocks(`/ipfs/${three.toString()}?format=car&entity-bytes=10:-${2 * LEAF + 100}`)).order, [three.toString()])
    assert.deepEqual((await carBlocks(`/ipfs/${folder.toString()}?format=car&entity-bytes=0:10`)).order, [folder.toString()])
    // an empty file: 0 (or from the end) is its start, an empty range; a later start is past its end
    const empty = await store.put(new Uint8Array(0))
    for (const range of ['0:*', '-1:*', '0:0']) {
      assert.deepEqual((await carBlocks(`/ipfs/${empty.toString()}?format=car&entity-bytes=${range}`)).order, [empty.toString()], range)
    }
    const pastEmpty = await server.app.inject({ url: `/ipfs/${empty.toString()}?format=car&entity-bytes=5:*` })
    assert.equal(pastEmpty.statusCode, 400)
    for (const bad of ['zz', '10:5', '1.5:*', ':10', `${2 * LEAF + 100}:*`]) {
      const res = await server.app.inject({ url: `/ipfs/${three.toString()}?format=car&entity-bytes=${bad}` })
      assert.equal(res.statusCode, 400, bad)
      assert.match(res.json().error.message, /entity-bytes/, bad)
    }
  })

  it('dag-scope=entity of a HAMT-sharded directory sends every shard block and no entry\'s content', async () => {
    const files = Array.from({ length: 600 }, (_, i) => ({ path: `d/f${i}.txt`, content: new TextEncoder().encode(`file ${i}\n`) }))
    const sink = { put: async (cid: CID, bytes: Uint8Array) => { await store.putBlock(cid, bytes); return cid } }
    let hamt: CID | undefined
    for await (const entry of importer(files, sink as never, { shardSplitThresholdBytes: 1, cidVersion: 1, rawLeaves: true })) {
      if (entry.path === 'd') hamt = entry.cid
    }
    assert.ok(hamt !== undefined)
    const { blocks } = await carBlocks(`/ipfs/${hamt.toString()}?format=car&dag-scope=entity`)
    const shards = [...blocks.keys()].map(key => CID.parse(key))
    assert.ok(shards.length > 1, 'the root and its sub-shards')
    for (const cid of shards) {
      const node = dagPb.decode(blocks.get(cid.toString()) as Uint8Array)
      assert.equal(UnixFS.unmarshal(node.Data as Uint8Array).type, 'hamt-sharded-directory', 'only shard blocks, no file')
      // every sub-shard a shard links to is in the CAR: the directory can be listed from it alone
      for (const link of node.Links) if (link.Name?.length === 2) assert.ok(blocks.has(link.Hash.toString()), `sub-shard ${link.Name}`)
    }
  })

  it('a Range on a file is a 206 with just those bytes (suffix and open ranges too); past the end a 416', async () => {
    const url = `/ipfs/${big.toString()}`
    const size = bigBytes.byteLength
    const full = await server.app.inject({ method: 'GET', url })
    assert.equal(full.headers['accept-ranges'], 'bytes')
    const etag = String(full.headers.etag)
    const cases: Array<[string, number, number]> = [
      ['bytes=0-9', 0, 9], [`bytes=${LEAF - 5}-${LEAF + 5}`, LEAF - 5, LEAF + 5], [`bytes=${size - 10}-`, size - 10, size - 1],
      ['bytes=-7', size - 7, size - 1], [`bytes=5-${size * 2}`, 5, size - 1]
    ]
    for (const [range, start, end] of cases) {
      for (const method of ['GET', 'HEAD'] as const) {
        const res = await server.app.inject({ method, url, headers: { range } })
        assert.equal(res.statusCode, 206, range)
        assert.equal(res.headers['content-range'], `bytes ${start}-${end}/${size}`, range)
        assert.equal(Number(res.headers['content-length']), end - start + 1, range)
        if (method === 'GET') assert.deepEqual(new Uint8Array(res.rawPayload), bigBytes.subarray(start, end + 1), range)
      }
    }
    const past = await server.app.inject({ method: 'GET', url, headers: { range: `bytes=${size}-` } })
    assert.equal(past.statusCode, 416)
    assert.equal(past.headers['content-range'], `bytes */${size}`)
    assert.equal(past.json().error.name, 'RangeNotSatisfiable')
    // ignored, whole file: several ranges, another unit, an If-Range that is not this ETag
    for (const headers of [{ range: 'bytes=0-1,5-6' }, { range: 'items=0-1' }, { range: 'bytes=0-1', 'if-range': '"other"' }]) {
      const res = await server.app.inject({ method: 'GET', url, headers })
      assert.equal(res.statusCode, 200, JSON.stringify(headers))
      assert.equal(res.rawPayload.byteLength, size)
    }
    assert.equal((await server.app.inject({ method: 'GET', url, headers: { range: 'bytes=0-1', 'if-range': etag } })).statusCode, 206)
  })

  it('the RPC API refuses requests from another origin (a web page), as Kubo does', async () => {
    const added = async (origin?: string): Promise<Response> => {
      const form = new FormData()
      form.append('file', new Blob([`from ${origin ?? 'no origin'}`]), 'f')
      return await fetch(`${server.url}/api/v0/add`, { method: 'POST', body: form, headers: origin === undefined ? {} : { origin } })
    }
    const foreign = await added('https://evil.example')
    assert.equal(foreign.status, 403)
    assert.equal((await foreign.json()).Type, 'error')
    assert.equal((await added(server.url)).status, 200)
    assert.equal((await added()).status, 200)
  })

  it('cat\'s X-Content-Length is what it sends (after offset and length), as Kubo', async () => {
    for (const [query, expected] of [['', '12'], ['&offset=6', '6'], ['&offset=6&length=3', '3'], ['&offset=100', '0']]) {
      const res = await fetch(`${server.url}/api/v0/cat?arg=${HELLO_V0}${query}`, { method: 'POST' })
      assert.equal(res.headers.get('x-content-length'), expected, query)
      assert.equal(String((await res.arrayBuffer()).byteLength), expected, query)
    }
  })
})
