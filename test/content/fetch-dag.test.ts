/**
 * Pulls through a gateway as one CAR (`GatewayStore.fetchDag`, `ContentRouter.pin`): a counting proxy in
 * front of the project's real gateway shows which requests a pull makes, and can alter one block of
 * the CAR, cut the CAR in the middle, or alter the raw block too.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import net from 'node:net'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { Writable } from 'node:stream'
import { CarBlockIterator, CarWriter } from '@ipld/car'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { ipfsSchema } from '../../src/config/schema.js'
import { ContentRouter } from '../../src/content/content-router.js'
import { GatewayStore } from '../../src/content/gateway-store.js'
import { sha256 } from '../../src/content/cid.js'
import { pullModel, publishModel } from '../../src/content/model-pack.js'
import { walkDag } from '../../src/content/unixfs-reader.js'
import { createLogger } from '../../src/logging/logger.js'
import { tinyModels, type TinyModels } from '../helpers/tiny-models.js'
import { startBackend, type Backend } from './network-harness.js'
import { missingCid } from './store-compliance.js'

interface ProxyBehaviour {
  /** Flip a byte of this block in CARs. */
  carBad?: CID
  /** Flip a byte of this block in raw answers. */
  rawBad?: CID
  /** Send this many bytes of a CAR, then cut the connection. */
  cutCarAt?: number
  /** Answer a CAR for this root instead. */
  carRoot?: CID
  /** Put this (valid) block into CARs right after the root. */
  carExtra?: { cid: CID, bytes: Uint8Array }
}

interface Proxy {
  url: string
  counts: { car: number, raw: number, rpc: number, other: number }
  behave: ProxyBehaviour
  reset: () => void
  close: () => Promise<void>
}

function flip (bytes: Uint8Array): Uint8Array {
  const out = Uint8Array.from(bytes)
  out[out.length >> 1] ^= 0xff
  return out
}

/** An HTTP proxy in front of `upstream` counting requests by kind, misbehaving as `behave` says. */
async function startProxy (upstream: string): Promise<Proxy> {
  const counts = { car: 0, raw: 0, rpc: 0, other: 0 }
  const behave: ProxyBehaviour = {}
  const sockets = new Set<net.Socket>()
  const server = http.createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://x')
      const accept = req.headers.accept ?? ''
      const car = url.searchParams.get('format') === 'car' || accept.includes('application/vnd.ipld.car')
      const raw = url.searchParams.get('format') === 'raw' || accept.includes('application/vnd.ipld.raw')
      if (url.pathname.startsWith('/api/v0/')) counts.rpc++
      else if (car) counts.car++
      else if (raw) counts.raw++
      else counts.other++
      const chunks: Buffer[] = []
      for await (const c of req) chunks.push(c as Buffer)
      const up = await fetch(`${upstream}${req.url ?? '/'}`, {
        method: req.method,
        headers: Object.fromEntries(Object.entries(req.headers).filter(([k]) => k !== 'host' && k !== 'content-length').map(([k, v]) => [k, String(v)])),
        body: chunks.length === 0 ? undefined : Buffer.concat(chunks)
      })
      const headers: Record<string, string> = {}
      up.headers.forEach((v, k) => { if (k !== 'content-length' && k !== 'transfer-encoding' && k !== 'connection') headers[k] = v })
      if (car && up.ok && up.body !== null && (behave.carBad !== undefined || behave.carRoot !== undefined || behave.carExtra !== undefined)) {
        res.writeHead(200, headers)
        const blocks = await CarBlockIterator.fromIterable(up.body as unknown as AsyncIterable<Uint8Array>)
        const { writer, out } = CarWriter.create([behave.carRoot ?? (await blocks.getRoots())[0]])
        const piping = (async () => { for await (const c of out) res.write(c) })()
        let first = true
        for await (const block of blocks) {
          await writer.put({ cid: block.cid, bytes: behave.carBad?.equals(block.cid) === true ? flip(block.bytes) : block.bytes })
          if (first && behave.carExtra !== undefined) await writer.put(behave.carExtra)
          first = false
        }
        await writer.close()
        await piping
        res.end()
        return
      }
      if (car && up.ok && up.body !== null && behave.cutCarAt !== undefined) {
        res.writeHead(200, headers)
        let sent = 0
        for await (const c of up.body as unknown as AsyncIterable<Uint8Array>) {
          const part = c.subarray(0, Math.max(0, behave.cutCarAt - sent))
          if (part.byteLength > 0) res.write(part)
          sent += part.byteLength
          if (sent >= behave.cutCarAt) break
        }
        // let the bytes go out, then cut the connection mid-CAR
        await new Promise(resolve => setTimeout(resolve, 50))
        res.destroy()
        return
      }
      let body = Buffer.from(await up.arrayBuffer())
      if (raw && behave.rawBad !== undefined && url.pathname.includes(behave.rawBad.toString())) body = Buffer.from(flip(body))
      res.writeHead(up.status, headers)
      res.end(body)
    })().catch(() => res.destroy())
  })
  server.on('connection', s => { sockets.add(s); s.on('close', () => sockets.delete(s)) })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as net.AddressInfo).port
  return {
    url: `http://127.0.0.1:${port}`,
    counts,
    behave,
    reset: () => {
      Object.assign(counts, { car: 0, raw: 0, rpc: 0, other: 0 })
      for (const k of Object.keys(behave)) delete behave[k as keyof ProxyBehaviour]
    },
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise<void>(resolve => server.close(() => resolve()))
    }
  }
}

/** Log lines at warn and above, parsed. */
function capturingLogger (): { logger: ReturnType<typeof createLogger>, lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = []
  const sink = new Writable({ write (chunk, _enc, cb) { lines.push(JSON.parse(String(chunk))); cb() } })
  return { logger: createLogger({ level: 'WARN' }, sink as never), lines }
}

describe('pulls as one CAR', () => {
  let backend: Backend
  let proxy: Proxy
  let models: TinyModels
  let dir: string
  let packCid: CID
  /** Every block of the pack in DFS order (duplicates included). */
  let blocks: Array<{ cid: CID, bytes: Uint8Array }>
  /** The largest leaf: a block in the middle of the weights. */
  let victim: { cid: CID, bytes: Uint8Array }
  const routers: ContentRouter[] = []

  async function router (ipfs: Record<string, unknown>, logger?: ReturnType<typeof createLogger>): Promise<ContentRouter> {
    const r = await ContentRouter.create({
      config: ipfsSchema.parse({ repo: path.join(dir, `repo-${routers.length}`), enable_local_gateway: false, retry_count: 0, timeout: 10, ...ipfs }),
      logger
    })
    routers.push(r)
    return r
  }

  async function assertHasAll (r: ContentRouter): Promise<void> {
    for (const b of blocks) assert.deepEqual(Buffer.from(await r.helia.getBlock(b.cid)), Buffer.from(b.bytes), b.cid.toString())
    assert.equal(await r.helia.isPinned(packCid), true)
  }

  before(async () => {
    backend = await startBackend()
    proxy = await startProxy(backend.server.url)
    models = await tinyModels(['bert'])
    dir = await mkdtemp(path.join(tmpdir(), 'ipfs-accelerate-fetch-dag-'))
    packCid = CID.parse((await publishModel(backend.store, models.dir('bert'))).cid)
    blocks = []
    for await (const b of walkDag(packCid, backend.store.getBlock.bind(backend.store))) blocks.push(b)
    victim = blocks.reduce((a, b) => b.bytes.byteLength > a.bytes.byteLength ? b : a)
  })
  after(async () => {
    for (const r of routers) await r.stop()
    await proxy.close()
    await backend.close()
    await rm(dir, { recursive: true, force: true })
    models.cleanup()
  })

  it('a pull through a gateway is one CAR request and no per-block request', async () => {
    proxy.reset()
    const r = await router({ gateway: proxy.url })
    await r.pin(packCid)
    assert.deepEqual(proxy.counts, { car: 1, raw: 0, rpc: 0, other: 0 })
    await assertHasAll(r)
    const cacheDir = path.join(dir, 'cache-complete')
    const pulled = await pullModel(r.helia, packCid, { cacheDir })
    assert.deepEqual(await readFile(path.join(pulled.dir, 'config.json')), await readFile(path.join(models.dir('bert'), 'config.json')))
    assert.deepEqual(await readFile(path.join(pulled.dir, 'onnx/model.onnx')), await readFile(path.join(models.dir('bert'), 'onnx/model.onnx')))
    assert.deepEqual(proxy.counts, { car: 1, raw: 0, rpc: 0, other: 0 }, 'the export reads only the local store')
    // pinning again (the root is here) asks nothing
    await r.pin(packCid)
    assert.equal(proxy.counts.car, 1)
  })

  it('a CAR with one altered block: the block is never stored, the walk fetches it honestly', async () => {
    proxy.reset()
    proxy.behave.carBad = victim.cid
    const { logger, lines } = capturingLogger()
    const r = await router({ gateway: proxy.url }, logger)
    await r.pin(packCid)
    assert.equal(proxy.counts.car, 1)
    assert.ok(proxy.counts.raw >= 1 && proxy.counts.raw < blocks.length, `raw requests: ${proxy.counts.raw} of ${blocks.length} blocks`)
    assert.ok(lines.some(l => String(l.msg).includes('one transfer failed')), 'the failed CAR is logged')
    await assertHasAll(r)
  })

  it('an altered block in the CAR and in raw answers: the pin fails and the bad bytes are never stored', async () => {
    proxy.reset()
    proxy.behave.carBad = victim.cid
    proxy.behave.rawBad = victim.cid
    const r = await router({ gateway: proxy.url })
    await assert.rejects(r.pin(packCid), (err: Error & { context?: { attempts?: Array<{ store: string, error: string }> } }) => {
      assert.equal(err.name, 'IpfsConnectionError')
      assert.ok(err.context?.attempts?.some(a => a.store === 'gateway' && a.error === 'ContentVerificationError'), JSON.stringify(err.context?.attempts))
      return true
    })
    assert.equal(await r.helia.has(victim.cid), false)
    assert.equal(await r.helia.isPinned(packCid), false)
  })

  it('a CAR cut in the middle: the pull completes block by block from where it stopped', async () => {
    proxy.reset()
    const total = blocks.reduce((n, b) => n + b.bytes.byteLength, 0)
    proxy.behave.cutCarAt = Math.floor(total / 2)
    const r = await router({ gateway: proxy.url })
    await r.pin(packCid)
    assert.equal(proxy.counts.car, 1)
    assert.ok(proxy.counts.raw >= 1 && proxy.counts.raw < blocks.length, `raw requests: ${proxy.counts.raw} of ${blocks.length} blocks`)
    await assertHasAll(r)
  })

  it('a CAR for another root is refused and the walk does the pull', async () => {
    proxy.reset()
    proxy.behave.carRoot = blocks[1].cid
    const r = await router({ gateway: proxy.url })
    await r.pin(packCid)
    assert.equal(proxy.counts.car, 1)
    assert.ok(proxy.counts.raw >= blocks.length - 1, `raw requests: ${proxy.counts.raw}`)
    await assertHasAll(r)
  })

  it('a Kubo store (no fetchDag) pulls block by block as before', async () => {
    proxy.reset()
    const r = await router({ local_node: proxy.url })
    assert.equal(r.stores.some(s => s.fetchDag !== undefined), false)
    await r.pin(packCid)
    assert.equal(proxy.counts.car, 0)
    assert.ok(proxy.counts.rpc >= blocks.length - 1, `rpc requests: ${proxy.counts.rpc}`)
    await assertHasAll(r)
  })

  describe('GatewayStore.fetchDag', () => {
    it('yields every block of the DAG in DFS order, verified', async () => {
      const store = new GatewayStore({ url: backend.server.url })
      const got: string[] = []
      for await (const b of store.fetchDag(packCid)) got.push(b.cid.toString())
      assert.deepEqual(got, blocks.map(b => b.cid.toString()))
    })

    it('a ContentVerificationError naming the store for an altered block, another root or a block outside the DAG', async () => {
      proxy.reset()
      proxy.behave.carBad = victim.cid
      const store = new GatewayStore({ url: proxy.url, name: 'gw-under-test', retries: 0 })
      await assert.rejects(async () => { for await (const _ of store.fetchDag(packCid)) { /* drain */ } },
        (err: Error) => { assert.equal(err.name, 'ContentVerificationError'); assert.match(err.message, /gw-under-test/); return true })
      proxy.reset()
      proxy.behave.carRoot = blocks[1].cid
      await assert.rejects(async () => { for await (const _ of store.fetchDag(packCid)) { /* drain */ } },
        (err: Error) => { assert.equal(err.name, 'ContentVerificationError'); assert.match(err.message, /gw-under-test sent a CAR for/); return true })
      // a valid block that the DAG does not link to
      proxy.reset()
      const strayBytes = new TextEncoder().encode('not part of the pack')
      const stray = { cid: CID.createV1(0x55, Digest.create(0x12, sha256(strayBytes))), bytes: strayBytes }
      proxy.behave.carExtra = stray
      await assert.rejects(async () => { for await (const _ of store.fetchDag(packCid)) { /* drain */ } },
        (err: Error) => { assert.equal(err.name, 'ContentVerificationError'); assert.match(err.message, /which no earlier block/); return true })
    })

    it('NotFoundError for a 404, IpfsConnectionError for a cut stream, AbortError for the caller\'s abort', async () => {
      const missing = missingCid()
      const store = new GatewayStore({ url: proxy.url, retries: 0 })
      proxy.reset()
      await assert.rejects(async () => { for await (const _ of store.fetchDag(missing)) { /* drain */ } }, { name: 'NotFoundError' })
      proxy.behave.cutCarAt = 100_000
      await assert.rejects(async () => { for await (const _ of store.fetchDag(packCid)) { /* drain */ } }, { name: 'IpfsConnectionError' })
      proxy.reset()
      const controller = new AbortController()
      await assert.rejects(async () => {
        for await (const _ of store.fetchDag(packCid, { signal: controller.signal })) controller.abort()
      }, { name: 'AbortError' })
    })
  })
})
