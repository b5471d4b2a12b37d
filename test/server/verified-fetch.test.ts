/**
 * `@helia/verified-fetch` (the IPFS project's verifying client) fetching from our trustless gateway.
 *
 * Everything stays on 127.0.0.1: verified-fetch is given our gateway as its only gateway, no delegated
 * routers, a DNS resolver that refuses, and a libp2p node with no transports, listeners, discovery or
 * services (its defaults would contact public bootstrappers, routers and gateways). `globalThis.fetch`,
 * which verified-fetch's gateway client uses, refuses anything but 127.0.0.1 while this file runs.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { mkdtemp, rm, mkdir, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { CarBlockIterator } from '@ipld/car/iterator'
import * as dagPb from '@ipld/dag-pb'
import { CID } from 'multiformats/cid'
import { identity } from 'multiformats/hashes/identity'
import { multiaddr } from '@multiformats/multiaddr'
import type { VerifiedFetch } from '@helia/verified-fetch'
import { installPromiseWithResolvers } from '../../src/content/polyfills.js'
import { HeliaStore } from '../../src/content/helia-store.js'
import { verifyBlock } from '../../src/content/cid.js'
import { createIpfsServer, type IpfsServer } from '../../src/server/create-ipfs-server.js'
import { HELLO, HELLO_V0, missingCid } from '../content/store-compliance.js'
import { seededBytes } from '../content/seeded-bytes.js'

/** Every fetch of a test gets this long, so a failure cannot hang the run. */
const FETCH_TIMEOUT_MS = 15_000
/** A multi-block file: a root and 5 leaves of up to 256 KiB (dag-pb leaves for CIDv0, raw for CIDv1). */
const BIG_SIZE = (1 << 20) + 1

// verified-fetch's gateway client calls the global fetch: let it reach 127.0.0.1 and nothing else
const realFetch = globalThis.fetch
const fetchedUrls: string[] = []
globalThis.fetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
  const url = new URL(input instanceof Request ? input.url : input.toString())
  fetchedUrls.push(url.toString())
  if (url.hostname !== '127.0.0.1') throw new Error(`test refused a request to ${url.toString()}`)
  return await realFetch(input, init)
}

/**
 * verified-fetch's own assembly (`createVerifiedFetch`): a Helia node with bitswap, a libp2p node and
 * `gateways` as a fallback router, here with everything but the one gateway (`url`) taken out. A block
 * no gateway gives stays wanted by bitswap until the request's signal fires.
 */
async function defaultVerifiedFetch (url: string): Promise<VerifiedFetch> {
  installPromiseWithResolvers()
  const { createVerifiedFetch } = await import('@helia/verified-fetch')
  return await createVerifiedFetch({
    gateways: [url],
    routers: [],
    // our gateway is plain http on a loopback address, which verified-fetch skips by default
    allowLocal: true,
    allowInsecure: true,
    // only DNSLink names need DNS; none are used here
    dnsResolvers: [async (domain: string) => { throw new Error(`no DNS in tests (${domain})`) }],
    // replaces verified-fetch's libp2p defaults (bootstrap, mDNS, DHT, TCP/WebRTC/WebSocket listeners)
    libp2pConfig: { addresses: { listen: [] }, transports: [], peerDiscovery: [], services: {} }
  })
}

/**
 * A Helia node whose only block source is the trustless gateway at `url` (no bitswap, no libp2p),
 * under verified-fetch: a block the gateway refuses or garbles fails the request at once.
 */
async function gatewayOnlyVerifiedFetch (url: string): Promise<VerifiedFetch> {
  installPromiseWithResolvers()
  const [{ createVerifiedFetchWithHelia }, { createHeliaLight }, { withHTTP }] = await Promise.all([
    import('@helia/verified-fetch'), import('helia'), import('@helia/http')
  ])
  const helia = withHTTP(createHeliaLight(), { delegatedRouters: [], recursiveGateways: [], allowLocal: true, allowInsecure: true })
  // The gateway as an ordinary (not 'fallback') router: helia 7.1's routing waits forever when a
  // node has fallback routers only (`findProviders` of zero non-fallback routers never ends).
  const gateway = new URL(url)
  const provider = {
    id: CID.createV1(0x0920, identity.digest(new TextEncoder().encode(gateway.toString()))),
    multiaddrs: [multiaddr(`/ip4/${gateway.hostname}/tcp/${gateway.port}/http`)],
    protocols: ['transport-ipfs-gateway-http'],
    router: 'test-gateway',
    fallback: false
  }
  helia.addRouter({ name: 'test-gateway', async * findProviders () { yield provider } })
  await helia.start()
  return await createVerifiedFetchWithHelia(helia)
}

async function bytesOf (res: Response): Promise<Buffer> {
  return Buffer.from(await res.arrayBuffer())
}

/** Resolves to the response body, or to the error it failed with (status or stream). */
async function outcome (vf: VerifiedFetch, resource: string, timeoutMs = FETCH_TIMEOUT_MS): Promise<{ status: number, body?: Buffer, error?: unknown }> {
  let res: Response
  try {
    res = await vf(resource, { signal: AbortSignal.timeout(timeoutMs) })
  } catch (error) {
    return { status: 0, error }
  }
  try {
    return { status: res.status, body: await bytesOf(res) }
  } catch (error) {
    return { status: res.status, error }
  }
}

/**
 * A gateway on 127.0.0.1 that forwards every request to `upstream` and, for the CIDs in `corrupt`,
 * flips one byte of the answer (status and headers unchanged): what a lying or broken gateway sends.
 */
async function tamperingProxy (upstream: string, corrupt: Set<string>): Promise<{ url: string, hits: string[], close: () => Promise<void> }> {
  const hits: string[] = []
  const server: Server = createServer((req, res) => {
    void (async () => {
      const target = new URL(req.url ?? '/', upstream)
      hits.push(target.pathname + target.search)
      const answer = await realFetch(target, { method: req.method, headers: { accept: req.headers.accept ?? '*/*' } })
      const body = Buffer.from(await answer.arrayBuffer())
      const cid = target.pathname.split('/')[2] ?? ''
      if (corrupt.has(cid) && body.byteLength > 0) body[body.byteLength >> 1] ^= 0xff
      const headers: Record<string, string> = {}
      answer.headers.forEach((value, key) => { if (key !== 'content-encoding' && key !== 'transfer-encoding') headers[key] = value })
      res.writeHead(answer.status, headers).end(body)
    })().catch(() => { res.destroy() })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    hits,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>(resolve => server.close(() => { resolve() }))
    }
  }
}

describe('@helia/verified-fetch against our trustless gateway', () => {
  let dir: string
  let store: HeliaStore
  let server: IpfsServer
  let vf: VerifiedFetch
  let direct: VerifiedFetch
  const big = seededBytes(BIG_SIZE, 11)
  const inner = seededBytes(600 * 1024, 12)
  let bigV0: CID
  let bigV1: CID
  let folder: CID

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'ipfs-accelerate-verified-fetch-'))
    store = new HeliaStore({ repo: path.join(dir, 'repo') })
    server = await createIpfsServer({ store })
    await store.put(HELLO, { cidVersion: 0 })
    bigV0 = await store.put(big, { cidVersion: 0 })
    bigV1 = await store.put(big, { cidVersion: 1 })
    const site = path.join(dir, 'site')
    await mkdir(path.join(site, 'sub'), { recursive: true })
    await writeFile(path.join(site, 'file.txt'), HELLO)
    await writeFile(path.join(site, 'sub', 'inner.bin'), inner)
    folder = await store.addDirectory(site)
    vf = await defaultVerifiedFetch(server.url)
    direct = await gatewayOnlyVerifiedFetch(server.url)
  })

  after(async () => {
    await vf?.stop()
    await direct?.stop()
    await server?.close()
    await store?.stop()
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
    globalThis.fetch = realFetch
  })

  it('fetches a small file (CIDv0) byte for byte', async () => {
    const res = await vf(`ipfs://${HELLO_V0}`, { signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) })
    assert.equal(res.status, 200)
    assert.deepEqual(await bytesOf(res), Buffer.from(HELLO))
  })

  it('fetches a 1 MiB multi-block file as CIDv0 and as CIDv1, with and without a session', async () => {
    assert.notEqual(bigV0.toString(), bigV1.toString())
    // other bytes for the session-less fetches: the client keeps the blocks it fetched in memory
    const again = seededBytes(BIG_SIZE, 15)
    const cases = [
      { cid: bigV0, bytes: big, session: true },
      { cid: bigV1, bytes: big, session: true },
      { cid: await store.put(again, { cidVersion: 0 }), bytes: again, session: false },
      { cid: await store.put(again, { cidVersion: 1 }), bytes: again, session: false }
    ]
    for (const { cid, bytes, session } of cases) {
      const label = `${cid.toString()} session=${String(session)}`
      const asked = fetchedUrls.length
      const res = await vf(`ipfs://${cid.toString()}`, { session, signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) })
      assert.equal(res.status, 200, label)
      const body = await bytesOf(res)
      assert.equal(body.byteLength, BIG_SIZE, label)
      assert.ok(body.equals(bytes), `${label}: bytes differ`)
      // the root and its 5 leaves came from our gateway, one block per request
      const requests = fetchedUrls.slice(asked)
      assert.ok(requests.every(u => u.startsWith(`${server.url}/ipfs/`) && u.endsWith('?format=raw')), label)
      assert.ok(new Set(requests).size >= 6, `${label}: ${requests.length} requests`)
    }
  })

  it('resolves paths through a directory; a missing name is 404', async () => {
    const file = await vf(`ipfs://${folder.toString()}/file.txt`, { signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) })
    assert.equal(file.status, 200)
    assert.deepEqual(await bytesOf(file), Buffer.from(HELLO))
    const nested = await vf(`ipfs://${folder.toString()}/sub/inner.bin`, { signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) })
    assert.equal(nested.status, 200)
    assert.ok((await bytesOf(nested)).equals(inner))
    const missing = await vf(`ipfs://${folder.toString()}/nope.txt`, { signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) })
    assert.equal(missing.status, 404)
    await missing.arrayBuffer()
  })

  it('gives the raw block and a CAR it assembled from blocks it verified', async () => {
    const raw = await vf(`ipfs://${bigV0.toString()}`, { headers: { accept: 'application/vnd.ipld.raw' }, signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) })
    assert.equal(raw.status, 200)
    assert.match(String(raw.headers.get('content-type')), /application\/vnd\.ipld\.raw/)
    verifyBlock(bigV0, await bytesOf(raw))

    const car = await vf(`ipfs://${folder.toString()}`, { headers: { accept: 'application/vnd.ipld.car' }, signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) })
    assert.equal(car.status, 200)
    assert.match(String(car.headers.get('content-type')), /application\/vnd\.ipld\.car/)
    const blocks = await CarBlockIterator.fromBytes(new Uint8Array(await car.arrayBuffer()))
    assert.equal((await blocks.getRoots())[0].toString(), folder.toString())
    let count = 0
    for await (const block of blocks) {
      verifyBlock(block.cid, block.bytes)
      count++
    }
    // root, sub/, file.txt, and inner.bin's root plus its 3 leaves
    assert.equal(count, 1 + 1 + 1 + 1 + 3)
  })

  it('a gateway-only node fetches the same bytes', async () => {
    for (const [resource, expected] of [[`ipfs://${bigV0.toString()}`, big], [`ipfs://${folder.toString()}/sub/inner.bin`, inner]] as const) {
      const res = await direct(resource, { signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) })
      assert.equal(res.status, 200, resource)
      assert.ok((await bytesOf(res)).equals(expected), resource)
    }
  })

  it('a CID our gateway does not have: 404 from us, 502 at once from a gateway-only node', async () => {
    const cid = missingCid().toString()
    const before = fetchedUrls.length
    const result = await outcome(direct, `ipfs://${cid}`)
    // 502 is the gateway's answer; a request ended by its signal has no status (0)
    assert.equal(result.status, 502, String(result.error))
    assert.ok(fetchedUrls.slice(before).some(u => u.startsWith(server.url) && u.includes(cid)), 'our gateway was not asked')
  })

  it('the default assembly (bitswap too) waits for its signal on a CID nobody has', async () => {
    const result = await outcome(vf, `ipfs://${missingCid().toString()}`, 1_500)
    assert.equal(result.status, 0)
    assert.equal((result.error as Error)?.name, 'TimeoutError')
  })

  it('rejects a gateway that alters a block (whole block, or one leaf of a file), accepts it when it does not', async () => {
    // distinct content per case: blocks a client fetched once are kept in its memory blockstore
    const small = await store.put(new TextEncoder().encode('tamper me\n'), { cidVersion: 1 })
    const multi = await store.put(seededBytes(BIG_SIZE, 13), { cidVersion: 1 })
    const leaves = dagPb.decode(await store.getBlock(multi)).Links.map(link => link.Hash.toString())
    assert.equal(leaves.length, 5) // 256 KiB raw leaves
    const honestBytes = seededBytes(BIG_SIZE, 14)
    const honest = await store.put(honestBytes, { cidVersion: 1 })
    const proxy = await tamperingProxy(server.url, new Set([small.toString(), leaves[2]]))
    const client = await gatewayOnlyVerifiedFetch(proxy.url)
    const defaults = await defaultVerifiedFetch(proxy.url)
    try {
      const whole = await outcome(client, `ipfs://${small.toString()}`)
      assert.equal(whole.status, 502, 'a corrupted root block was not refused')
      assert.ok(proxy.hits.some(h => h.includes(small.toString())), 'the tampering gateway was never asked')

      // the first leaves stream before the bad one arrives: the status is 200, then the body fails
      const mid = await outcome(client, `ipfs://${multi.toString()}`)
      assert.equal(mid.status, 200)
      assert.equal(mid.body, undefined, 'a file with a corrupted leaf was served whole')
      assert.equal((mid.error as Error)?.name, 'LoadBlockFailedError')
      assert.ok(proxy.hits.some(h => h.includes(leaves[2])), 'the corrupted leaf was never asked for')

      // verified-fetch's default assembly never serves it either (it keeps waiting for a good copy)
      const hits = proxy.hits.length
      // long enough for a fresh assembly to have asked (and been answered) on a loaded machine
      const viaDefaults = await outcome(defaults, `ipfs://${small.toString()}`, 5_000)
      assert.equal(viaDefaults.status, 0, 'the default assembly answered for a corrupted block')
      assert.equal((viaDefaults.error as Error)?.name, 'TimeoutError')
      assert.ok(proxy.hits.slice(hits).some(h => h.includes(small.toString())), 'the default assembly never asked')

      const ok = await outcome(client, `ipfs://${honest.toString()}`)
      assert.equal(ok.status, 200, String(ok.error))
      assert.ok(ok.body?.equals(honestBytes))
    } finally {
      await client.stop()
      await defaults.stop()
      await proxy.close()
    }
  })

  it('contacted nothing but 127.0.0.1', () => {
    assert.ok(fetchedUrls.length > 0)
    for (const url of fetchedUrls) assert.equal(new URL(url).hostname, '127.0.0.1', url)
  })
})
