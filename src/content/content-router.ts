/**
 * Builds the content stores from the `ipfs` config section and routes calls across them:
 *
 *   helia (embedded, always) -> kubo-rpc (`local_node`) -> local-gateway (probed) -> gateway (`gateway`)
 *
 * Reads try the stores in that order and return the first verified answer; blocks fetched from the
 * network are verified and kept in the embedded store (so the next read is local). Writes go to the
 * embedded store, then (with `local_node`) are copied to the Kubo node as one CAR (`dag/import`). Every network call runs under `ipfs.timeout` per attempt with
 * `ipfs.retry_count` retries (see retry.ts). When every store fails the error says which were tried and
 * what each said (`context.attempts`): a TimeoutError if the stores that did not simply lack the content
 * ran out of time, an IpfsConnectionError otherwise.
 */
import type { CID } from 'multiformats/cid'
import type { IpfsConfig } from '../config/schema.js'
import { AccelerateError, IpfsConnectionError, NotFoundError, TimeoutError, ValidationError } from '../errors.js'
import { silentLogger, type Logger } from '../logging/logger.js'
import type { AbortOptions, ContentStore, ProgressOptions, PutOptions } from './content-store.js'
import { parseIpfsPath, toCid, type IpfsPath } from './cid.js'
import { abortReason, collectBytes } from './async-utils.js'
import { HeliaStore } from './helia-store.js'
import { blockLinks, walkDag } from './unixfs-reader.js'
import { KuboStore } from './kubo-store.js'
import { carBytes } from './car-stream.js'
import { DEFAULT_LOCAL_GATEWAY, DEFAULT_PROBE_TIMEOUT_MS, GatewayStore, gatewayBase, probeLocalGateway } from './gateway-store.js'

export interface ContentRouterInit {
  /** The resolved `ipfs` config section. */
  config: IpfsConfig
  logger?: Logger
  /** An embedded store to use instead of creating one from `config.repo` (the router will not stop it). */
  helia?: HeliaStore
  /** Where `enable_local_gateway` probes (default http://127.0.0.1:8080). */
  localGatewayUrl?: string
  /** Probe deadline, ms (default 500). */
  probeTimeoutMs?: number
}

/** What one store said when a routed call failed. */
export interface StoreAttempt {
  store: string
  error: string
  message: string
}

/** Anything naming content: a CID, or `<cid>[/path]`, `ipfs://<cid>[/path]`, `/ipfs/<cid>[/path]`. */
export type ContentRef = CID | string

function toRef (ref: ContentRef): IpfsPath {
  return typeof ref === 'string' ? parseIpfsPath(ref) : { cid: toCid(ref), path: '' }
}

function sameUrl (a: string, b: string): boolean {
  try {
    const x = new URL(gatewayBase(a))
    const y = new URL(gatewayBase(b))
    return x.protocol === y.protocol && x.host === y.host && x.pathname.replace(/\/+$/, '') === y.pathname.replace(/\/+$/, '')
  } catch {
    return false
  }
}

/** A path that does not exist in (verified) content, as `resolveIpfsPath` reports it: not a store's failure. */
function isMissingLink (err: unknown): boolean {
  return err instanceof NotFoundError && typeof err.context.link === 'string'
}

/** Blocks of a one-transfer DAG fetch being written at once. */
const MAX_DAG_WRITES = 16


export class ContentRouter implements ContentStore {
  readonly name = 'router'
  /** The embedded store. */
  readonly helia: HeliaStore
  /** Every store, in the order reads try them. */
  readonly stores: readonly ContentStore[]
  private readonly ownsHelia: boolean
  private readonly log: Logger

  private constructor (helia: HeliaStore, stores: ContentStore[], ownsHelia: boolean, log: Logger) {
    this.helia = helia
    this.stores = Object.freeze([...stores])
    this.ownsHelia = ownsHelia
    this.log = log
  }

  /** Builds the stores (probing for a local gateway when enabled). Nothing is contacted otherwise. */
  static async create (init: ContentRouterInit): Promise<ContentRouter> {
    const { config } = init
    const logger = init.logger ?? silentLogger()
    const log = logger.child({ ns: 'ipfs-accelerate:content:router' })
    const helia = init.helia ?? new HeliaStore({ repo: config.repo, cidVersion: config.cid_version, logger })
    const cache = helia.blockstore
    const net = { timeoutMs: config.timeout * 1000, retries: config.retry_count, logger, cache }
    const stores: ContentStore[] = [helia]
    if (config.local_node !== undefined) stores.push(new KuboStore({ url: config.local_node, cidVersion: config.cid_version, ...net }))
    if (config.enable_local_gateway) {
      const local = init.localGatewayUrl ?? DEFAULT_LOCAL_GATEWAY
      const alreadyConfigured = config.gateway !== undefined && sameUrl(config.gateway, local)
      if (!alreadyConfigured && await probeLocalGateway(local, init.probeTimeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS)) {
        stores.push(new GatewayStore({ url: local, name: 'local-gateway', ...net }))
        log.debug({ url: local }, 'local gateway answers; preferring it')
      }
    }
    if (config.gateway !== undefined) stores.push(new GatewayStore({ url: config.gateway, ...net }))
    log.debug({ stores: stores.map(s => s.name) }, 'content stores')
    return new ContentRouter(helia, stores, init.helia === undefined, log)
  }

  async start (): Promise<void> {
    await this.helia.start()
  }

  async stop (): Promise<void> {
    if (this.ownsHelia) await this.helia.stop()
  }

  /** Runs `fn` on each store able to, in order, until one succeeds; otherwise throws what they said. */
  private async route<T> (what: string, ref: IpfsPath, options: AbortOptions, able: (s: ContentStore) => boolean, fn: (store: ContentStore, cid: CID) => Promise<T>): Promise<T> {
    const attempts: StoreAttempt[] = []
    const causes: unknown[] = []
    for (const store of this.stores) {
      if (!able(store)) continue
      if (ref.path !== '' && store.resolve === undefined) continue
      try {
        const cid = ref.path === '' ? ref.cid : await (store.resolve as NonNullable<ContentStore['resolve']>)(ref.cid, ref.path, options)
        return await fn(store, cid)
      } catch (err) {
        if (options.signal?.aborted === true) throw abortReason(options.signal, what)
        if (err instanceof ValidationError) throw err // the request itself is wrong: every store would say so
        if (isMissingLink(err)) throw err // a verified directory lacks the name: every store would say so
        attempts.push({ store: store.name, error: (err as Error)?.name ?? 'Error', message: (err as Error)?.message ?? String(err) })
        causes.push(err)
        this.log.debug({ store: store.name, err }, `${what} failed on one store`)
      }
    }
    throw this.failure(what, ref, attempts, causes)
  }

  private failure (what: string, ref: IpfsPath, attempts: StoreAttempt[], causes: unknown[]): AccelerateError {
    const target = `${ref.cid.toString()}${ref.path === '' ? '' : `/${ref.path}`}`
    const context = { cid: ref.cid.toString(), ...(ref.path === '' ? {} : { path: ref.path }), attempts }
    const cause = new AggregateError(causes, `${what} ${target}`)
    if (attempts.length === 0) return new IpfsConnectionError(`${what} ${target}: no configured store can do this`, { cause, context })
    const said = attempts.map(a => `${a.store}: ${a.error}: ${a.message}`).join('; ')
    const definite = attempts.filter(a => a.error !== 'NotFoundError')
    if (definite.length > 0 && definite.every(a => a.error === 'TimeoutError')) {
      return new TimeoutError(`${what} ${target}: timed out (${said})`, { cause, context })
    }
    return new IpfsConnectionError(`${what} ${target}: no store could provide it (tried ${attempts.map(a => a.store).join(', ')}) — ${said}`, { cause, context })
  }

  /** Whole content of a file (or raw block) from the first store that has it. */
  async get (ref: ContentRef, options: ProgressOptions = {}): Promise<Uint8Array> {
    return await collectBytes(this.cat(ref, options))
  }

  /**
   * Streams a file from the first store that starts answering. Once bytes have been yielded a failure is
   * thrown as is (no store switch mid-stream).
   */
  async * cat (ref: ContentRef, options: ProgressOptions = {}): AsyncGenerator<Uint8Array> {
    const target = toRef(ref)
    let first: { iterator: AsyncIterator<Uint8Array>, value: IteratorResult<Uint8Array> } | undefined
    await this.route('cat', target, options, () => true, async (store, cid) => {
      const source = store.cat !== undefined ? store.cat(cid, options) : (async function * () { yield await store.get(cid, options) })()
      const iterator = source[Symbol.asyncIterator]()
      first = { iterator, value: await iterator.next() }
    })
    const { iterator, value } = first as NonNullable<typeof first>
    if (value.done === true) return
    yield value.value
    while (true) {
      const next = await iterator.next()
      if (next.done === true) return
      yield next.value
    }
  }

  async has (ref: ContentRef, options: AbortOptions = {}): Promise<boolean> {
    const target = toRef(ref)
    for (const store of this.stores) {
      if (store.has === undefined) continue
      try {
        const cid = target.path === '' ? target.cid : await store.resolve?.(target.cid, target.path, options)
        if (cid !== undefined && await store.has(cid, options)) return true
      } catch (err) {
        if (options.signal?.aborted === true) throw abortReason(options.signal, 'has')
        if (err instanceof ValidationError) throw err
        if (isMissingLink(err)) return false
      }
    }
    return false
  }

  /** The CID `ref` points to (following its path). */
  async resolve (ref: ContentRef, path = '', options: AbortOptions = {}): Promise<CID> {
    const target = toRef(ref)
    const full = { cid: target.cid, path: [target.path, path].filter(p => p !== '').join('/') }
    return await this.route('resolve', full, options, s => s.resolve !== undefined, async (_store, cid) => cid)
  }

  /** Adds to the embedded store, then copies what was added to the Kubo node when one is configured. */
  async put (bytes: Uint8Array | AsyncIterable<Uint8Array>, options: PutOptions = {}): Promise<CID> {
    const cid = await this.helia.put(bytes, options)
    if (options.onlyHash !== true) await this.replicate(cid, options)
    return cid
  }

  /** Imports a folder into the embedded store, then copies it to the Kubo node when one is configured. */
  async addDirectory (folder: string, options: PutOptions = {}): Promise<CID> {
    const cid = await this.helia.addDirectory(folder, options)
    if (options.onlyHash !== true) await this.replicate(cid, options)
    return cid
  }

  /**
   * Copies the DAG at `cid` from the embedded store to every store that takes whole DAGs (the Kubo node of
   * `ipfs.local_node`), pinned there unless `pin` is false, so that Kubo serves it to the IPFS network.
   * The copy is a CAR of the blocks as stored here, so the CIDs are the same by construction. Without
   * such a store it does nothing. A store that fails: IpfsConnectionError or TimeoutError (the content
   * stays in the embedded store, where it was already).
   */
  async replicate (cid: CID, options: AbortOptions & { pin?: boolean } = {}): Promise<void> {
    for (const store of this.stores) {
      if (store === this.helia || store.importDag === undefined) continue
      const getBlock = async (c: CID, o?: AbortOptions): Promise<Uint8Array> => await this.helia.getBlock(c, o)
      const signal = options.signal
      await store.importDag(cid, () => carBytes(cid, stop => walkDag(cid, getBlock, { signal: signal === undefined ? stop : AbortSignal.any([signal, stop]) })), { signal, pin: options.pin })
      this.log.debug({ store: store.name, cid: cid.toString() }, 'copied to the store')
    }
  }

  /** One raw block (verified) from the first store that has it. */
  async getBlock (ref: ContentRef, options: AbortOptions = {}): Promise<Uint8Array> {
    return await this.route('block/get', toRef(ref), options, s => s.getBlock !== undefined,
      async (store, cid) => await (store.getBlock as NonNullable<ContentStore['getBlock']>)(cid, options))
  }

  /**
   * Pins in the embedded store, first fetching (and so caching) every block of the DAG it lacks. When
   * the embedded store lacks the root and a store can send the whole DAG at once (`fetchDag`: a
   * gateway's CAR), its blocks are streamed in first (verified there, stored here); then a walk fetches
   * block by block whatever the transfer did not bring. A transfer that fails (network, a block that
   * does not match its CID, a wrong root) is logged and the walk does the rest: it alone decides
   * whether the pin succeeds. A block that fails verification is never stored.
   */
  async pin (ref: ContentRef, options: AbortOptions = {}): Promise<void> {
    const cid = await this.resolve(ref, '', options)
    await this.helia.pin(cid, { ...options, links: await this.fetchMissing(cid, options) })
  }

  /**
   * Makes the whole DAG at `ref` local, as `pin` does, without pinning it (blocks fetched from the
   * network are verified and kept in the embedded store until a gc); returns the CID `ref` names. For
   * exports (`ipfs get`, pulls) that read the embedded store only.
   */
  async fetchAll (ref: ContentRef, options: AbortOptions = {}): Promise<CID> {
    const cid = await this.resolve(ref, '', options)
    await this.fetchMissing(cid, options)
    return cid
  }

  /** Fetches every block below `cid` the embedded store lacks; returns the links of every block (for the pin). */
  private async fetchMissing (cid: CID, options: AbortOptions): Promise<Map<string, CID[]>> {
    // Links of the blocks fetched (or found) on the way: the pin needs them, and they spare reading
    // and hashing every block a second time.
    const links = new Map<string, CID[]>()
    if (!(await this.helia.has(cid, options))) await this.fetchWholeDag(cid, links, options)
    // The walk: below a block the transfer brought, only its children are visited; below any other
    // block the DAG is walked through getBlock (local first, then the network, verified and cached).
    const done = new Set<string>()
    const visit = async (c: CID): Promise<void> => {
      const key = c.toString()
      if (done.has(key)) return
      const children = links.get(key)
      if (children !== undefined) {
        for (const child of children) await visit(child)
      } else {
        for await (const block of walkDag(c, async (b, o) => await this.getBlock(b, o), { signal: options.signal })) {
          links.set(block.cid.toString(), blockLinks(block.cid, block.bytes))
        }
      }
      done.add(key)
    }
    await visit(cid)
    return links
  }

  /**
   * Streams the DAG below `cid` from the first store with `fetchDag` into the embedded store, noting
   * each block's links in `links`. Never throws for the transfer's own failures (only for an abort).
   */
  private async fetchWholeDag (cid: CID, links: Map<string, CID[]>, options: AbortOptions): Promise<void> {
    const store = this.stores.find(s => s.fetchDag !== undefined)
    if (store?.fetchDag === undefined) return
    const blockstore = this.helia.blockstore
    let blocks = 0
    let bytes = 0
    const started = performance.now()
    // writes overlap the transfer (the blockstore coalesces them); a block's links are noted once it is stored
    const writing = new Set<Promise<void>>()
    let failed: { err: unknown } | undefined
    const settle = async (): Promise<void> => {
      await Promise.all(writing)
      if (failed !== undefined) throw failed.err
    }
    try {
      for await (const block of store.fetchDag(cid, options)) {
        // verified by fetchDag before it was yielded
        const children = blockLinks(block.cid, block.bytes)
        const write: Promise<void> = blockstore.putBlock(block.cid, block.bytes)
          .then(() => { links.set(block.cid.toString(), children) }, (err: unknown) => { failed ??= { err } })
          .finally(() => writing.delete(write))
        writing.add(write)
        blocks++
        bytes += block.bytes.byteLength
        if (failed !== undefined) throw failed.err
        if (writing.size >= MAX_DAG_WRITES) await Promise.race(writing)
      }
      await settle()
      this.log.debug({ store: store.name, cid: cid.toString(), blocks, bytes, ms: Math.round(performance.now() - started) }, 'fetched the DAG in one transfer')
    } catch (err) {
      await Promise.all(writing)
      if (options.signal?.aborted === true) throw abortReason(options.signal, 'pin')
      this.log.warn({ store: store.name, cid: cid.toString(), blocks, bytes, err }, 'fetching the DAG in one transfer failed; fetching the rest block by block')
    }
  }

  async unpin (ref: ContentRef, options: AbortOptions = {}): Promise<void> {
    await this.helia.unpin(await this.resolve(ref, '', options), options)
  }

  async gc (options: AbortOptions = {}): Promise<{ removed: number }> {
    return await this.helia.gc(options)
  }
}
