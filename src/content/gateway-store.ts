/**
 * A read-only store over an HTTP gateway (`ipfs.gateway`), used trustlessly: it asks for raw blocks
 * (`GET {gateway}/ipfs/{cid}?format=raw`, `Accept: application/vnd.ipld.raw`), verifies each against its
 * CID before using it, and walks the UnixFS DAG itself. In `mode: 'car'` a file comes as one CAR
 * (`?format=car`, order=dfs, dups=y) read block by block with @ipld/car's CarBlockIterator, each block
 * verified. Only verified blocks reach `cache` (typically the embedded store's blockstore).
 *
 * `probeLocalGateway()` tells whether a gateway answers on localhost (`enable_local_gateway`).
 */
import type { CID } from 'multiformats/cid'
import { AccelerateError, ContentVerificationError, IpfsConnectionError, NotFoundError, TimeoutError, ValidationError } from '../errors.js'
import { silentLogger, type Logger } from '../logging/logger.js'
import type { AbortOptions, ContentStore, ProgressOptions } from './content-store.js'
import { identityBytes, verifyBlock } from './cid.js'
import { abortReason, collectBytes, throwIfAborted } from './async-utils.js'
import { blockLinks, readUnixfsFile, resolveIpfsPath, statUnixfs, type BlockGetter, type DagBlock, type ReadFileOptions } from './unixfs-reader.js'
import { limitCarSections } from './car-limits.js'
import { MAX_BLOCK_BYTES, boundedBody, discardBody } from './bounded-body.js'
import { resolveNetwork, withRetry, type NetworkInit, type ResolvedNetwork } from './retry.js'

/** Where verified blocks fetched from the network are kept (e.g. `HeliaStore.blockstore`). */
export interface BlockCache {
  putBlock: (cid: CID, bytes: Uint8Array) => Promise<unknown>
}

export interface GatewayStoreInit extends NetworkInit {
  /** Gateway base URL (`ipfs.gateway`), e.g. `https://ipfs.io` or `http://127.0.0.1:8080`. */
  url: string
  /** Store name in errors and logs (default 'gateway'). */
  name?: string
  /** 'raw' (default): one request per block. 'car': one CAR request per file read. */
  mode?: 'raw' | 'car'
  /** Verified blocks are written here. */
  cache?: BlockCache
  /** Blocks requested ahead per DAG level in raw mode (default 8). */
  readAhead?: number
  logger?: Logger
}

/** The empty identity CID: every gateway can answer it without storage. */
export const PROBE_CID = 'bafkqaaa'
export const DEFAULT_LOCAL_GATEWAY = 'http://127.0.0.1:8080'
export const DEFAULT_PROBE_TIMEOUT_MS = 500

/**
 * The gateway's root URL. The seed writes gateways as `http://localhost:8080/ipfs/` (the path prefix
 * included), others write `http://localhost:8080`: both mean the same gateway, and requests add `/ipfs/`.
 */
export function gatewayBase (url: string): string {
  return url.replace(/\/+$/, '').replace(/\/ipfs$/, '')
}

/** True when a gateway answers `GET {url}/ipfs/bafkqaaa` with 200 within `timeoutMs`. */
export async function probeLocalGateway (url = DEFAULT_LOCAL_GATEWAY, timeoutMs = DEFAULT_PROBE_TIMEOUT_MS): Promise<boolean> {
  try {
    const res = await fetch(`${gatewayBase(url)}/ipfs/${PROBE_CID}`, { signal: AbortSignal.timeout(timeoutMs) })
    await discardBody(res)
    return res.status === 200
  } catch {
    return false
  }
}

class HttpStatusError extends Error {
  constructor (readonly status: number, message: string) {
    super(message)
    this.name = 'HttpStatusError'
  }
}

const CAR_ACCEPT = 'application/vnd.ipld.car; version=1; order=dfs; dups=y'
/** Blocks kept from a CAR stream in case the walk asks for one again (dups=n gateways). */
const CAR_RECENT = 32

export class GatewayStore implements ContentStore {
  readonly name: string
  readonly url: string
  private readonly net: ResolvedNetwork
  private readonly mode: 'raw' | 'car'
  private readonly cache: BlockCache | undefined
  private readonly readAhead: number | undefined
  private readonly log: Logger

  constructor (init: GatewayStoreInit) {
    let parsed: URL
    try {
      parsed = new URL(init.url)
    } catch {
      throw ValidationError.field('ipfs.gateway', `not a URL: ${JSON.stringify(init.url)}`)
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw ValidationError.field('ipfs.gateway', 'must be an http(s) URL')
    this.url = gatewayBase(init.url)
    this.name = init.name ?? 'gateway'
    this.net = resolveNetwork(init)
    this.mode = init.mode ?? 'raw'
    this.cache = init.cache
    this.readAhead = init.readAhead
    this.log = (init.logger ?? silentLogger()).child({ ns: `ipfs-accelerate:content:${this.name}` })
  }

  private where (): { store: string, target: string } {
    return { store: this.name, target: this.url }
  }

  /** One block, fetched (with retries), verified, then cached. */
  async getBlock (cid: CID, options: AbortOptions = {}): Promise<Uint8Array> {
    const inline = identityBytes(cid)
    if (inline !== undefined) return inline
    const url = `${this.url}/ipfs/${cid.toString()}?format=raw`
    const bytes = await withRetry(`GET ${url}`, this.where(), this.net, options.signal, async (signal) => {
      const res = await fetch(url, { headers: { accept: 'application/vnd.ipld.raw' }, signal })
      if (res.status === 404 || res.status === 410) {
        await discardBody(res)
        throw new NotFoundError(`${this.name} at ${this.url} has no block ${cid.toString()}`, { context: { cid: cid.toString(), store: this.name } })
      }
      if (!res.ok) {
        await discardBody(res)
        throw new HttpStatusError(res.status, `HTTP ${res.status} ${res.statusText}`)
      }
      // an identity-free block is at most Kubo's block limit: more is refused before it is all read
      return await boundedBody(res, MAX_BLOCK_BYTES, `GET ${url}`)
    })
    this.verify(cid, bytes, `${this.name} ${this.url}`)
    await this.cache?.putBlock(cid, bytes)
    return bytes
  }

  async has (cid: CID, options: AbortOptions = {}): Promise<boolean> {
    if (identityBytes(cid) !== undefined) return true
    const url = `${this.url}/ipfs/${cid.toString()}?format=raw`
    return await withRetry(`HEAD ${url}`, this.where(), this.net, options.signal, async (signal) => {
      const res = await fetch(url, { method: 'HEAD', headers: { accept: 'application/vnd.ipld.raw' }, signal })
      if (res.status === 404 || res.status === 410) return false
      if (!res.ok) throw new HttpStatusError(res.status, `HTTP ${res.status} ${res.statusText}`)
      return true
    })
  }

  cat (cid: CID, options: ReadFileOptions = {}): AsyncIterable<Uint8Array> {
    if (this.mode === 'car' && options.offset === undefined && options.length === undefined) return this.catCar(cid, options)
    return readUnixfsFile(cid, this.getBlock.bind(this), { ...options, readAhead: options.readAhead ?? this.readAhead })
  }

  async get (cid: CID, options: ProgressOptions = {}): Promise<Uint8Array> {
    return await collectBytes(this.cat(cid, options))
  }

  async stat (cid: CID, options: AbortOptions = {}): Promise<{ type: string, size: number }> {
    const s = await statUnixfs(cid, this.getBlock.bind(this), options)
    return { type: s.type, size: Number(s.size) }
  }

  async resolve (cid: CID, path: string, options: AbortOptions = {}): Promise<CID> {
    return await resolveIpfsPath(cid, path, this.getBlock.bind(this), options)
  }

  /**
   * Every block of the DAG below `cid` (`dag-scope=all`) from one CAR response (`GET
   * /ipfs/{cid}?format=car&dag-scope=all`), in the CAR's depth-first order, each verified against its
   * CID before it is yielded. The CAR's root must be `cid`, and every block must be linked from one
   * sent before it (order=dfs): anything else is a ContentVerificationError naming this store. A 404 is
   * a NotFoundError; a stream that breaks (reset, truncated, malformed, idle past `timeoutMs`) an
   * IpfsConnectionError (TimeoutError when idle). Blocks are not cached here: the caller stores them.
   */
  async * fetchDag (cid: CID, options: AbortOptions = {}): AsyncGenerator<DagBlock> {
    const inline = identityBytes(cid)
    if (inline !== undefined) {
      yield { cid, bytes: inline }
      return
    }
    const source = `${this.name} ${this.url} (CAR)`
    // children of the blocks seen so far: a block nobody linked to is not part of this DAG
    const expected = new Set<string>([cid.toString()])
    yield * this.withCar(cid, 'all', options.signal, 'fetchDag', async function * (blocks) {
      for await (const block of blocks) {
        const key = block.cid.toString()
        if (!expected.has(key)) {
          throw new ContentVerificationError(`${source} sent ${key}, which no earlier block of ${cid.toString()} links to`, { context: { cid: key, store: this.name } })
        }
        this.verify(block.cid, block.bytes, source)
        for (const link of blockLinks(block.cid, block.bytes)) expected.add(link.toString())
        yield { cid: block.cid, bytes: block.bytes }
      }
    })
  }

  private verify (cid: CID, bytes: Uint8Array, source: string): void {
    try {
      verifyBlock(cid, bytes, source)
    } catch (err) {
      this.log.warn({ cid: cid.toString(), url: this.url }, 'gateway sent a block that does not match its CID')
      throw err
    }
  }

  /**
   * One CAR request for `cid` (`dag-scope`), shared by catCar and fetchDag: the response head under
   * withRetry (per-attempt deadline, retries, 404 -> NotFoundError), the CAR's root checked against
   * `cid`, then `consume` given the CAR's blocks (not yet verified) and what it yields passed on. The
   * body streams under the caller's signal, and a gap of `timeoutMs` between chunks ends it. Errors that
   * are not ours become AbortError (caller's signal), TimeoutError (idle) or IpfsConnectionError.
   */
  private async * withCar<T> (cid: CID, scope: 'all' | 'entity', callerSignal: AbortSignal | undefined, what: string,
    consume: (this: GatewayStore, blocks: AsyncIterable<DagBlock>) => AsyncIterable<T>): AsyncGenerator<T> {
    const url = `${this.url}/ipfs/${cid.toString()}?format=car&dag-scope=${scope}`
    const controller = new AbortController()
    const signal = callerSignal === undefined ? controller.signal : AbortSignal.any([callerSignal, controller.signal])
    let idle = false
    let timer: NodeJS.Timeout | undefined
    try {
      const res = await withRetry(`GET ${url}`, this.where(), this.net, callerSignal, async (attemptSignal) => {
        // The per-attempt deadline covers the response head only: once the head is in, the body streams
        // under the caller's signal and the idle timer below, so the deadline is detached then.
        const head = new AbortController()
        const onDeadline = (): void => { head.abort(attemptSignal.reason) }
        attemptSignal.addEventListener('abort', onDeadline, { once: true })
        let r: Response
        try {
          r = await fetch(url, { headers: { accept: CAR_ACCEPT }, signal: AbortSignal.any([signal, head.signal]) })
        } finally {
          attemptSignal.removeEventListener('abort', onDeadline)
        }
        if (r.status === 404 || r.status === 410) {
          await discardBody(r)
          throw new NotFoundError(`${this.name} at ${this.url} has no ${cid.toString()}`, { context: { cid: cid.toString(), store: this.name } })
        }
        if (!r.ok || r.body === null) {
          await discardBody(r)
          throw new HttpStatusError(r.status, `HTTP ${r.status} ${r.statusText}`)
        }
        return r
      })
      const body = res.body as unknown as AsyncIterable<Uint8Array>
      const timeoutMs = this.net.timeoutMs
      const arm = (): void => {
        timer = setTimeout(() => { idle = true; controller.abort() }, timeoutMs)
      }
      const { CarBlockIterator } = await import('@ipld/car/iterator')
      // a section over Kubo's block limit is refused before it is buffered (the gateway is not trusted)
      const blocks = await CarBlockIterator.fromIterable(limitCarSections((async function * () {
        // only the wait for the network counts, not the time the consumer takes
        const chunks = body[Symbol.asyncIterator]()
        while (true) {
          arm()
          const next = await chunks.next()
          clearTimeout(timer)
          if (next.done === true) return
          yield next.value
        }
      })(), { source: `${this.name} ${this.url}` }))
      const roots = await blocks.getRoots()
      if (roots.length === 0 || !roots[0].equals(cid)) {
        throw new ContentVerificationError(`${this.name} sent a CAR for ${roots[0]?.toString() ?? 'nothing'} instead of ${cid.toString()}`, { context: { cid: cid.toString(), store: this.name } })
      }
      yield * consume.call(this, blocks)
    } catch (err) {
      if (callerSignal?.aborted === true) throw abortReason(callerSignal, what)
      if (idle) {
        throw new TimeoutError(`GET ${url}: the CAR stream from ${this.name} at ${this.url} stalled for ${this.net.timeoutMs} ms`, { cause: err, context: { store: this.name, target: this.url, cid: cid.toString() } })
      }
      if (err instanceof AccelerateError) throw err
      // the stream broke (connection reset, truncated or malformed CAR)
      throw new IpfsConnectionError(`GET ${url}: the CAR stream from ${this.name} at ${this.url} failed: ${(err as Error)?.message ?? String(err)}`, { cause: err, context: { store: this.name, target: this.url, cid: cid.toString() } })
    } finally {
      clearTimeout(timer)
      controller.abort()
    }
  }

  /** A file read through one CAR response; blocks verified as they arrive, walked in DFS order. */
  private async * catCar (cid: CID, options: ReadFileOptions): AsyncGenerator<Uint8Array> {
    if (identityBytes(cid) !== undefined) {
      yield * readUnixfsFile(cid, this.getBlock.bind(this), options)
      return
    }
    yield * this.withCar(cid, 'entity', options.signal, 'cat', async function * (blocks) {
      const iterator = blocks[Symbol.asyncIterator]()
      const recent = new Map<string, Uint8Array>()
      const source = `${this.name} ${this.url} (CAR)`
      const next: BlockGetter = async (want) => {
        const inline = identityBytes(want)
        if (inline !== undefined) return inline
        const key = want.toString()
        const kept = recent.get(key)
        if (kept !== undefined) return kept
        throwIfAborted(options.signal, 'cat')
        const { value, done } = await iterator.next()
        if (done === true) throw new ContentVerificationError(`${source} ended before block ${key}`, { context: { cid: key, store: this.name } })
        if (!value.cid.equals(want)) {
          throw new ContentVerificationError(`${source} sent ${value.cid.toString()} where ${key} was due (not order=dfs)`, { context: { cid: key, store: this.name } })
        }
        verifyBlock(want, value.bytes, source)
        await this.cache?.putBlock(want, value.bytes)
        recent.set(key, value.bytes)
        if (recent.size > CAR_RECENT) recent.delete(recent.keys().next().value as string)
        return value.bytes
      }
      // readAhead 1: blocks are asked for in exactly the CAR's depth-first order
      yield * readUnixfsFile(cid, next, { ...options, readAhead: 1 })
    })
  }
}
