import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm, mkdir, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import net from 'node:net'
import { once } from 'node:events'
import { CarBlockIterator } from '@ipld/car/iterator'
import { create } from 'kubo-rpc-client'
import { CID } from 'multiformats/cid'
import { HeliaStore } from '../../src/content/helia-store.js'
import { verifyBlock } from '../../src/content/cid.js'
import { isPinnedRoot } from '../../src/content/pin-listing.js'
import Fastify from 'fastify'
import { createIpfsServer, type IpfsServer } from '../../src/server/create-ipfs-server.js'
import { registerGatewayRoutes } from '../../src/server/ipfs-routes.js'
import { HELLO, HELLO_V0, HELLO_V1, TWO_LEVEL_SIZE, missingCid } from '../content/store-compliance.js'
import { seededBytes } from '../content/seeded-bytes.js'
import { damageBlock } from '../content/damage-block.js'

describe('IPFS HTTP routes', () => {
  let dir: string
  let store: HeliaStore
  let server: IpfsServer
  let big: CID
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'ipfs-accelerate-routes-'))
    store = new HeliaStore({ repo: path.join(dir, 'repo') })
    server = await createIpfsServer({ store })
    await store.put(HELLO)
    big = await store.put(seededBytes(TWO_LEVEL_SIZE, 42))
  })
  async function pinCount (): Promise<number> {
    let n = 0
    for await (const _ of store.pins()) n++
    return n
  }
  after(async () => {
    await server.close()
    await store.stop()
    await rm(dir, { recursive: true, force: true })
  })

  describe('trustless gateway', () => {
    it('?format=raw and Accept: application/vnd.ipld.raw give the block', async () => {
      for (const request of [{ url: `/ipfs/${HELLO_V0}?format=raw` }, { url: `/ipfs/${HELLO_V0}`, headers: { accept: 'application/vnd.ipld.raw' } }]) {
        const res = await server.app.inject({ method: 'GET', ...request })
        assert.equal(res.statusCode, 200)
        assert.equal(res.headers['content-type'], 'application/vnd.ipld.raw')
        assert.match(String(res.headers['cache-control']), /immutable/)
        verifyBlock(CID.parse(HELLO_V0), res.rawPayload)
      }
    })

    it('?format=car streams every block in DFS order, each verifiable', async () => {
      const res = await fetch(`${server.url}/ipfs/${big.toString()}?format=car`)
      assert.equal(res.status, 200)
      assert.match(String(res.headers.get('content-type')), /application\/vnd\.ipld\.car/)
      const blocks = await CarBlockIterator.fromIterable(res.body as unknown as AsyncIterable<Uint8Array>)
      assert.equal((await blocks.getRoots())[0].toString(), big.toString())
      let count = 0
      let first: CID | undefined
      for await (const block of blocks) {
        verifyBlock(block.cid, block.bytes)
        first ??= block.cid
        count++
      }
      assert.equal(first?.toString(), big.toString())
      assert.equal(count, 1 + 2 + 175) // root, two level-1 nodes, 175 leaves
      const one = await server.app.inject({ url: `/ipfs/${big.toString()}?format=car&dag-scope=block` })
      assert.equal(one.statusCode, 200)
    })

    it('a CAR whose DAG holds a damaged block is cut at that block (the client sees a broken stream, never a wrong CAR)', async () => {
      const root = await store.put(seededBytes(TWO_LEVEL_SIZE, 61), { cidVersion: 1, pin: false })
      const { decode } = await import('@ipld/dag-pb')
      const leaves = decode(await store.getBlock(root)).Links.map(l => l.Hash)
      await damageBlock(store.blockstore, leaves[1])
      const res = await fetch(`${server.url}/ipfs/${root.toString()}?format=car`)
      assert.equal(res.status, 200, 'the root is fine: the answer has started')
      await assert.rejects(res.arrayBuffer(), 'the body breaks off')
    })

    it('without a format: the file bytes, with Content-Length; HEAD has no body', async () => {
      const res = await server.app.inject({ url: `/ipfs/${HELLO_V0}` })
      assert.equal(res.statusCode, 200)
      assert.equal(res.body, 'hello world\n')
      const head = await server.app.inject({ method: 'HEAD', url: `/ipfs/${big.toString()}` })
      assert.equal(head.statusCode, 200)
      assert.equal(head.headers['content-length'], String(TWO_LEVEL_SIZE))
      assert.equal(head.rawPayload.byteLength, 0)
      const empty = await server.app.inject({ url: '/ipfs/bafkqaaa' })
      assert.equal(empty.statusCode, 200)
    })

    it('paths resolve through directories; directories themselves are 501 without a format', async () => {
      const folder = path.join(dir, 'site')
      await mkdir(folder, { recursive: true })
      await writeFile(path.join(folder, 'hello.txt'), HELLO)
      const root = await store.addDirectory(folder)
      const file = await server.app.inject({ url: `/ipfs/${root.toString()}/hello.txt` })
      assert.equal(file.body, 'hello world\n')
      assert.equal((await server.app.inject({ url: `/ipfs/${root.toString()}` })).statusCode, 501)
      assert.equal((await server.app.inject({ url: `/ipfs/${root.toString()}?format=raw` })).statusCode, 200)
      assert.equal((await server.app.inject({ url: `/ipfs/${root.toString()}/nope.txt` })).statusCode, 404)
    })

    it('a path below a file is a 404, as Kubo\'s "no link named": never the file\'s bytes', async () => {
      const folder = path.join(dir, 'below-file')
      await mkdir(path.join(folder, 'sub'), { recursive: true })
      await writeFile(path.join(folder, 'a'), HELLO)
      await writeFile(path.join(folder, 'empty'), '')
      await writeFile(path.join(folder, 'sub', 'b'), HELLO)
      const root = (await store.addDirectory(folder)).toString()
      for (const p of ['a/b', 'empty/x', 'a/b/c', 'sub/b/x']) {
        for (const format of ['', '?format=raw', '?format=car']) {
          const res = await server.app.inject({ url: `/ipfs/${root}/${p}${format}` })
          assert.equal(res.statusCode, 404, `${p}${format}: ${res.body}`)
          assert.equal(res.json().error.name, 'NotFoundError')
        }
      }
      assert.equal((await server.app.inject({ url: `/ipfs/${root}/sub/b` })).body, 'hello world\n')
    })

    it('serves non-ASCII names, with X-Ipfs-Path percent-encoded (over a socket, where headers are checked)', async () => {
      const folder = path.join(dir, 'unicode')
      await mkdir(folder, { recursive: true })
      await writeFile(path.join(folder, 'ünï☃ x.txt'), HELLO)
      const root = (await store.addDirectory(folder)).toString()
      const encoded = encodeURIComponent('ünï☃ x.txt')
      for (const format of ['', '?format=raw', '?format=car']) {
        const res = await fetch(`${server.url}/ipfs/${root}/${encoded}${format}`)
        assert.equal(res.status, 200, `${format}: ${await res.clone().text()}`)
        assert.equal(res.headers.get('x-ipfs-path'), `/ipfs/${root}/${encoded}`)
        if (format === '') assert.equal(await res.text(), 'hello world\n')
        else await res.arrayBuffer()
      }
    })

    it('a wrong method is 405 with Allow; unknown routes 404; every error in the documented shape', async () => {
      for (const method of ['POST', 'PUT', 'DELETE'] as const) {
        const res = await server.app.inject({ method, url: `/ipfs/${HELLO_V0}` })
        assert.equal(res.statusCode, 405, method)
        assert.equal(res.headers.allow, 'GET, HEAD')
        assert.equal(res.json().error.name, 'MethodNotAllowed')
        assert.match(res.json().error.message, new RegExp(`method ${method} is not allowed`))
      }
      const unknown = await server.app.inject({ url: '/nope' })
      assert.equal(unknown.statusCode, 404)
      assert.deepEqual(Object.keys(unknown.json().error).sort(), ['message', 'name'])
      // fastify's own errors (a body it cannot parse) come out in the same shape
      const badJson = await server.app.inject({ method: 'POST', url: '/nope', headers: { 'content-type': 'application/json' }, payload: '{nope' })
      assert.equal(badJson.statusCode, 400)
      assert.equal(badJson.json().error.name, 'ValidationError')
      assert.equal(badJson.json().statusCode, undefined)
    })

    it('errors keep the headers the host server set (CORS), and drop only those of a success', async () => {
      const host = Fastify()
      host.addHook('onRequest', async (_req, reply) => { reply.header('access-control-allow-origin', '*') })
      registerGatewayRoutes(host, { blockstore: store.blockstore, store })
      try {
        for (const url of [`/ipfs/${HELLO_V0}`, `/ipfs/${missingCid().toString()}`, '/ipfs/not-a-cid']) {
          const res = await host.inject({ url })
          assert.equal(res.headers['access-control-allow-origin'], '*', url)
          if (res.statusCode >= 400) {
            assert.equal(res.headers.etag, undefined, url)
            assert.equal(res.headers['cache-control'], 'no-store', url)
          }
        }
      } finally {
        await host.close()
      }
    })

    it('bad input is 400, missing content 404, with a JSON error and no stack', async () => {
      const bad = await server.app.inject({ url: '/ipfs/not-a-cid' })
      assert.equal(bad.statusCode, 400)
      assert.equal(bad.json().error.name, 'ValidationError')
      const missing = await server.app.inject({ url: `/ipfs/${missingCid().toString()}?format=raw` })
      assert.equal(missing.statusCode, 404)
      assert.doesNotMatch(missing.body, /at .*\.ts:/)
      assert.equal((await server.app.inject({ url: `/ipfs/${missingCid().toString()}?format=car` })).statusCode, 404)
      assert.equal((await server.app.inject({ url: `/ipfs/${HELLO_V0}?format=tar` })).statusCode, 400)
    })
  })

  describe('Kubo RPC subset (kubo-rpc-client over a socket)', () => {
    it('add (v0/v1), cat (with offset/length), block get/put/stat, pin/add, id, version', async () => {
      const ipfs = create({ url: server.url })
      const added = await ipfs.add(HELLO)
      assert.equal(added.cid.toString(), HELLO_V0)
      assert.equal(added.size, 20)
      assert.equal((await ipfs.add(HELLO, { cidVersion: 1 })).cid.toString(), HELLO_V1)
      const parts: Uint8Array[] = []
      for await (const p of ipfs.cat(added.cid, { offset: 6, length: 5 })) parts.push(p)
      assert.equal(Buffer.concat(parts).toString(), 'world')
      verifyBlock(added.cid, await ipfs.block.get(added.cid))
      const put = await ipfs.block.put(HELLO)
      assert.equal(put.toString(), HELLO_V1)
      assert.equal((await ipfs.block.stat(put)).size, HELLO.byteLength)
      const pinned: string[] = []
      for await (const p of ipfs.pin.addAll([{ cid: put }])) pinned.push(p.toString())
      assert.deepEqual(pinned, [HELLO_V1])
      assert.equal(await store.isPinned(put), true)
      assert.match((await ipfs.id()).id.toString(), /^12D3Koo/)
      assert.match((await ipfs.version()).version, /ipfs-accelerate/)
    })

    it('add: only-hash stores nothing; paths, directories and wrap-with-directory give the CIDs of a folder add', async () => {
      const ipfs = create({ url: server.url })
      const unique = seededBytes(600_000, 31)
      const hashed = await ipfs.add(unique, { onlyHash: true })
      assert.equal(await store.has(hashed.cid), false, 'only-hash stores nothing')
      assert.equal((await ipfs.add(unique)).cid.toString(), hashed.cid.toString(), 'the same CID as a real add')

      // the same tree on disk, added as a folder, is the reference
      const folder = path.join(dir, 'tree')
      await mkdir(path.join(folder, 'dir', 'sub'), { recursive: true })
      await writeFile(path.join(folder, 'dir', 'a.txt'), 'file a')
      await writeFile(path.join(folder, 'dir', 'sub', 'b.bin'), seededBytes(300_000, 32))
      await mkdir(path.join(folder, 'dir', 'empty'))
      const reference = await store.addDirectory(folder, { pin: false })
      const entries = [
        { path: 'dir/a.txt', content: Buffer.from('file a') },
        { path: 'dir/sub/b.bin', content: seededBytes(300_000, 32) },
        { path: 'dir/empty' }
      ]
      for (const onlyHash of [true, false]) {
        const added: Array<{ path: string, cid: string }> = []
        for await (const e of ipfs.addAll(entries, { wrapWithDirectory: true, onlyHash })) added.push({ path: e.path, cid: e.cid.toString() })
        const wrapper = added.at(-1) as { path: string, cid: string }
        assert.equal(wrapper.cid, reference.toString(), `onlyHash ${String(onlyHash)}: the wrapper is the folder's CID`)
        const inner = (await store.resolve(reference, 'dir')).toString()
        assert.equal(added.find(e => e.path === 'dir')?.cid, inner)
        assert.equal(added.find(e => e.path === 'dir/a.txt')?.cid, (await store.resolve(reference, 'dir/a.txt')).toString())
        // an empty directory is reported too (the importer does not), with its own CID
        assert.equal(added.find(e => e.path === 'dir/empty')?.cid, (await store.resolve(reference, 'dir/empty')).toString())
      }
      assert.equal(await isPinnedRoot(store, reference), true, 'the real add pinned the wrapper')
      // without wrapping, each top-level entry is its own root
      const loose: string[] = []
      for await (const e of ipfs.addAll([{ path: 'x.txt', content: HELLO }, { path: 'y.txt', content: Buffer.from('y') }])) loose.push(e.cid.toString())
      assert.equal(loose[0], HELLO_V0)
      assert.equal(loose.length, 2)
      await assert.rejects(ipfs.add({ path: '../escape.txt', content: HELLO }), /not a relative path/)
    })

    it('add without wrapping pins every top-level entry (Kubo adds and pins each), not only the last', async () => {
      const ipfs = create({ url: server.url })
      const added = new Map<string, CID>()
      const entries = [
        { path: 'first.txt', content: seededBytes(5000, 61) },
        { path: 'folder/inner.txt', content: seededBytes(5000, 62) },
        { path: 'last.txt', content: seededBytes(5000, 63) }
      ]
      for await (const e of ipfs.addAll(entries)) added.set(e.path, e.cid)
      for (const top of ['first.txt', 'folder', 'last.txt']) {
        assert.equal(await isPinnedRoot(store, added.get(top) as CID), true, `${top} is pinned`)
      }
      assert.equal(await isPinnedRoot(store, added.get('folder/inner.txt') as CID), false, 'a file in a folder is held by the folder\'s pin')
    })

    it('add reports a file named "file" by its name; only a nameless one is named by its CID', async () => {
      const ipfs = create({ url: server.url })
      const named = await ipfs.add({ path: 'file', content: seededBytes(100, 64) })
      assert.equal(named.path, 'file')
      const nameless = await ipfs.add(seededBytes(100, 65))
      assert.equal(nameless.path, nameless.cid.toString())
    })

    it('pin ls (all, recursive, indirect, by path) and pin rm, as Kubo answers them', async () => {
      const ipfs = create({ url: server.url })
      // a two-level file of CIDv1 raw leaves, pinned by its own add: its root is recursive, its leaves indirect
      const root = (await ipfs.add(seededBytes(TWO_LEVEL_SIZE, 7), { cidVersion: 1 })).cid
      const leaves: CID[] = []
      const rootBlock = await store.getBlock(root)
      const { decode } = await import('@ipld/dag-pb')
      for (const link of decode(rootBlock).Links) leaves.push(link.Hash)
      assert.ok(leaves.length > 1)

      const list = async (options: Parameters<typeof ipfs.pin.ls>[0] = {}): Promise<Array<{ cid: string, type: string }>> => {
        const out: Array<{ cid: string, type: string }> = []
        for await (const p of ipfs.pin.ls(options)) out.push({ cid: p.cid.toString(), type: p.type })
        return out
      }
      const all = await list()
      assert.deepEqual(all.filter(p => p.cid === root.toString()), [{ cid: root.toString(), type: 'recursive' }])
      for (const leaf of leaves) assert.deepEqual(all.filter(p => p.cid === leaf.toString()), [{ cid: leaf.toString(), type: 'indirect' }], 'each leaf once, indirect')
      const recursive = await list({ type: 'recursive' })
      assert.ok(recursive.every(p => p.type === 'recursive'))
      assert.equal(recursive.length, await pinCount())
      assert.ok((await list({ type: 'indirect' })).every(p => p.type === 'indirect'))
      assert.deepEqual(await list({ type: 'direct' }), [])
      // by path: a root, a block under it (named with the root that holds it), a block no pin holds
      assert.deepEqual(await list({ paths: [root] }), [{ cid: root.toString(), type: 'recursive' }])
      assert.deepEqual(await list({ paths: [leaves[1]] }), [{ cid: leaves[1].toString(), type: `indirect through ${root.toString()}` }])
      const loose = await ipfs.block.put(Buffer.from('a block no pin holds'))
      await assert.rejects(list({ paths: [loose] }), /is not pinned/)
      await assert.rejects(list({ paths: [leaves[0]], type: 'recursive' }), /is not pinned/)
      // the non-streamed shape ({ Keys }) as Kubo sends it without stream=true
      const keys = await (await fetch(`${server.url}/api/v0/pin/ls?arg=${root.toString()}`, { method: 'POST' })).json()
      assert.deepEqual(keys, { Keys: { [root.toString()]: { Type: 'recursive' } } })
      await assert.rejects(list({ type: 'bogus' as 'all' }), /invalid type/)

      // pin rm: a block held only indirectly, or not at all, is refused and nothing is unpinned
      // (kubo-rpc-client sends one request per pin; one request naming two is checked whole first)
      const both = await fetch(`${server.url}/api/v0/pin/rm?arg=${root.toString()}&arg=${leaves[0].toString()}`, { method: 'POST' })
      assert.equal(both.status, 500)
      assert.match((await both.json()).Message, /not pinned or pinned indirectly/)
      assert.equal(await isPinnedRoot(store, root), true)
      assert.deepEqual((await ipfs.pin.rm(root)).toString(), root.toString())
      assert.equal((await list({ type: 'recursive' })).some(p => p.cid === root.toString()), false)
      await assert.rejects(ipfs.pin.rm(root), /not pinned or pinned indirectly/)
      await assert.rejects(ipfs.pin.rm(root, { recursive: false }), /only recursive/)
    })

    it('a wrong method on a command is 405 (as Kubo), in Kubo\'s error shape', async () => {
      for (const [method, command] of [['GET', 'add'], ['GET', 'cat'], ['PUT', 'block/put'], ['GET', 'version']] as const) {
        const res = await server.app.inject({ method, url: `/api/v0/${command}?arg=${HELLO_V0}` })
        assert.equal(res.statusCode, 405, `${method} ${command}`)
        assert.equal(res.headers.allow, 'POST')
        assert.equal(res.json().Type, 'error')
        assert.match(res.json().Message, /not allowed/)
      }
    })

    it('a malformed multipart body to add or block/put is a 400 that says why, and nothing is pinned', async () => {
      const pinsBefore = await pinCount()
      const part = (name: string, body: string): string =>
        `--XX\r\nContent-Disposition: form-data; name="file"; filename="${name}"\r\nContent-Type: application/octet-stream\r\n\r\n${body}`
      let manyParts = ''
      for (let i = 0; i < 20_001; i++) manyParts += `--XX\r\nContent-Disposition: form-data; name="f${i}"\r\n\r\nv\r\n`
      const cases: Array<[string, string, string, RegExp]> = [
        ['no boundary', 'multipart/form-data', part('f', 'hello\r\n--XX--\r\n'), /malformed multipart.*[Bb]oundary/],
        ['empty boundary', 'multipart/form-data; boundary=', 'garbage', /malformed multipart/],
        ['cut body', 'multipart/form-data; boundary=XX', part('f', 'a body cut before its closing boundary'), /malformed multipart/],
        ['too many parts', 'multipart/form-data; boundary=XX', manyParts + '--XX--\r\n', /more than 20000 parts/],
        ['bad file name', 'multipart/form-data; boundary=XX', part('%E0%A4%A', 'hello\r\n--XX--\r\n'), /not valid percent-encoding/]
      ]
      for (const [what, type, payload, message] of cases) {
        for (const command of what === 'bad file name' || what === 'too many parts' ? ['add'] : ['add', 'block/put']) {
          const res = await server.app.inject({ method: 'POST', url: `/api/v0/${command}`, headers: { 'content-type': type }, payload })
          assert.equal(res.statusCode, 400, `${command} ${what}: ${res.body}`)
          assert.equal(res.json().Type, 'error')
          assert.match(res.json().Message, message, `${command} ${what}`)
        }
      }
      assert.equal(await pinCount(), pinsBefore, 'nothing pinned from a bad upload')
    })

    it('block/put refuses formats it cannot store (never stores them as raw)', async () => {
      for (const format of ['cbor', 'dag-cbor', 'bogus']) {
        const res = await server.app.inject({
          method: 'POST',
          url: `/api/v0/block/put?format=${format}`,
          headers: { 'content-type': 'multipart/form-data; boundary=XX' },
          payload: '--XX\r\nContent-Disposition: form-data; name="file"; filename="b"\r\n\r\n\xa1\x61\x61\x01\r\n--XX--\r\n'
        })
        assert.equal(res.statusCode, 400, format)
        assert.match(res.json().Message, /unsupported block format/)
      }
    })

    it('an upload refused before its body was read closes the connection (the rest is not taken for a request)', async () => {
      const body = Buffer.concat([
        Buffer.from('--XX\r\nContent-Disposition: form-data; name="file"; filename="big"\r\n\r\n'),
        Buffer.alloc(3 * 1024 * 1024, 1),
        Buffer.from('\r\n--XX--\r\n')
      ])
      const res = await fetch(`${server.url}/api/v0/block/put`, { method: 'POST', headers: { 'content-type': 'multipart/form-data; boundary=XX' }, body })
      assert.equal(res.status, 400)
      assert.equal(res.headers.get('connection'), 'close')
      await res.text()
      // the server still answers (on a new connection)
      assert.equal((await fetch(`${server.url}/api/v0/version`, { method: 'POST' })).status, 200)
    })

    it('closes a connection that stalls mid-upload, so the store is not held', async () => {
      const idle = await createIpfsServer({ store, idleTimeoutMs: 300 })
      try {
        const { port } = new URL(idle.url)
        const socket = net.connect(Number(port), '127.0.0.1')
        await once(socket, 'connect')
        socket.write('POST /api/v0/add HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=XX\r\nTransfer-Encoding: chunked\r\n\r\n')
        const head = '--XX\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n\r\n' + 'a'.repeat(70_000)
        socket.write(`${head.length.toString(16)}\r\n${head}\r\n`)
        socket.resume()
        await once(socket, 'close') // the server gave up on it
        // gc (which waits for imports in progress) completes
        await store.gc()
      } finally {
        await idle.close()
      }
    })

    it('refuses layouts it cannot reproduce, and says "not found" as Kubo does', async () => {
      const ipfs = create({ url: server.url })
      await assert.rejects(ipfs.add(HELLO, { chunker: 'rabin' }), /chunker/)
      await assert.rejects(ipfs.add(HELLO, { cidVersion: 0, rawLeaves: true }), /raw-leaves/)
      await assert.rejects(ipfs.block.get(missingCid()), /could not find/)
      const res = await fetch(`${server.url}/api/v0/cat?arg=${missingCid().toString()}`, { method: 'POST' })
      assert.equal(res.status, 500)
      assert.equal((await res.json()).Type, 'error')
    })
  })
})
