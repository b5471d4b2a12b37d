/**
 * A store over a Kubo node's RPC API (`ipfs.local_node`, e.g. http://127.0.0.1:5001) through
 * kubo-rpc-client. Writes use `add` with Kubo's own options (`cid-version`, raw leaves for v1), so the
 * CIDs are Kubo's. Reads never trust Kubo's `cat`: they fetch raw blocks with `block/get`, verify each
 * against its CID on our side and walk the UnixFS DAG here (so a node returning wrong bytes is caught at
 * the first wrong block). Verified blocks may be kept in `cache`.
 */
import type { CID } from 'multiformats/cid'
import type { KuboRPCClient } from 'kubo-rpc-client'
import { NotFoundError, ValidationError } from '../errors.js'
import { silentLogger, type Logger } from '../logging/logger.js'
import type { AbortOptions, ContentStore, ProgressOptions, PutOptions } from './content-store.js'
import { identityBytes, verifyBlock } from './cid.js'
import { collectBytes } from './async-utils.js'
import { readUnixfsFile, resolveIpfsPath, type ReadFileOptions } from './unixfs-reader.js'
import { resolveNetwork, withRetry, type NetworkInit, type ResolvedNetwork } from './retry.js'
import type { BlockCache } from './gateway-store.js'

export interface KuboStoreInit extends NetworkInit {
  /** RPC API URL (`ipfs.local_node`), e.g. `http://127.0.0.1:5001`. */
  url: string
  /** CID version of `put` when a call does not say (`ipfs.cid_version`, default 0). */
  cidVersion?: 0 | 1
  cache?: BlockCache
  /** Blocks requested ahead per DAG level (default 8). */
  readAhead?: number
  logger?: Logger
}

/** Kubo's wording for a block it does not have (offline or not found). */
const NOT_FOUND = /not found|could not find|no link named/i

function httpStatus (err: unknown): number | undefined {
  return (err as { response?: { status?: number } })?.response?.status
}

export class KuboStore implements ContentStore {
  readonly name = 'kubo-rpc'
  readonly url: string
  private readonly net: ResolvedNetwork
  private readonly cidVersion: 0 | 1
  private readonly cache: BlockCache | undefined
  private readonly readAhead: number | undefined
  private readonly log: Logger
  private client: Promise<KuboRPCClient> | undefined

  constructor (init: KuboStoreInit) {
    let parsed: URL
    try {
      parsed = new URL(init.url)
    } catch {
      throw ValidationError.field('ipfs.local_node', `not a URL: ${JSON.stringify(init.url)}`)
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw ValidationError.field('ipfs.local_node', 'must be an http(s) URL')
    this.url = init.url.replace(/\/+$/, '')
    this.net = resolveNetwork(init)
    this.cidVersion = init.cidVersion ?? 0
    this.cache = init.cache
    this.readAhead = init.readAhead
    this.log = (init.logger ?? silentLogger()).child({ ns: 'ipfs-accelerate:content:kubo' })
  }

  private async rpc (): Promise<KuboRPCClient> {
    this.client ??= import('kubo-rpc-client').then(({ create }) => create({ url: this.url }))
    return await this.client
  }

  private where (): { store: string, target: string } {
    return { store: this.name, target: this.url }
  }

  /** Kubo's "not found" becomes NotFoundError (final); other errors stay retryable. */
  private translate (err: unknown, cid: CID | string): unknown {
    const message = (err as Error)?.message ?? ''
    if (NOT_FOUND.test(message) && httpStatus(err) !== undefined) {
      return new NotFoundError(`${this.name} at ${this.url} has no ${cid.toString()}`, { cause: err, context: { cid: cid.toString(), store: this.name } })
    }
    if (httpStatus(err) === 400) {
      return ValidationError.field('cid', `${this.name} refused the request: ${message}`, { store: this.name })
    }
    return err
  }

  async getBlock (cid: CID, options: AbortOptions = {}): Promise<Uint8Array> {
    const inline = identityBytes(cid)
    if (inline !== undefined) return inline
    const client = await this.rpc()
    const bytes = await withRetry(`block/get ${cid.toString()}`, this.where(), this.net, options.signal, async (signal) => {
      try {
        return await client.block.get(cid, { signal })
      } catch (err) {
        throw this.translate(err, cid)
      }
    })
    try {
      verifyBlock(cid, bytes, `${this.name} ${this.url}`)
    } catch (err) {
      this.log.warn({ cid: cid.toString(), url: this.url }, 'Kubo sent a block that does not match its CID')
      throw err
    }
    await this.cache?.putBlock(cid, bytes)
    return bytes
  }

  cat (cid: CID, options: ReadFileOptions = {}): AsyncIterable<Uint8Array> {
    return readUnixfsFile(cid, this.getBlock.bind(this), { ...options, readAhead: options.readAhead ?? this.readAhead })
  }

  async get (cid: CID, options: ProgressOptions = {}): Promise<Uint8Array> {
    return await collectBytes(this.cat(cid, options))
  }

  async resolve (cid: CID, path: string, options: AbortOptions = {}): Promise<CID> {
    return await resolveIpfsPath(cid, path, this.getBlock.bind(this), options)
  }

  /** Whether the node has the block locally (`block/stat --offline`). */
  async has (cid: CID, options: AbortOptions = {}): Promise<boolean> {
    if (identityBytes(cid) !== undefined) return true
    const client = await this.rpc()
    try {
      await withRetry(`block/stat ${cid.toString()}`, this.where(), this.net, options.signal, async (signal) => {
        try {
          return await client.block.stat(cid, { signal, offline: true } as Parameters<KuboRPCClient['block']['stat']>[1])
        } catch (err) {
          throw this.translate(err, cid)
        }
      })
      return true
    } catch (err) {
      if (err instanceof NotFoundError) return false
      throw err
    }
  }

  /**
   * `add` with Kubo's options. Bytes are retried like any call; a stream cannot be replayed, so it gets
   * one attempt (`timeoutMs` then bounds a stall of the upload, not its length).
   */
  async put (bytes: Uint8Array | AsyncIterable<Uint8Array>, options: PutOptions = {}): Promise<CID> {
    const cidVersion = options.cidVersion ?? this.cidVersion
    const client = await this.rpc()
    const total = bytes instanceof Uint8Array ? bytes.byteLength : undefined
    const add = async (signal: AbortSignal, touch: () => void): Promise<CID> => {
      const source = bytes instanceof Uint8Array
        ? bytes
        : (async function * () {
            for await (const chunk of bytes) {
              touch()
              yield chunk
            }
          })()
      const result = await client.add(source, {
        cidVersion,
        rawLeaves: cidVersion === 1,
        chunker: 'size-262144',
        hashAlg: 'sha2-256',
        pin: options.pin ?? true,
        signal,
        progress: options.onProgress === undefined ? undefined : (n: number) => options.onProgress?.({ bytes: n, total })
      })
      return result.cid
    }
    const net = bytes instanceof Uint8Array ? this.net : { ...this.net, retries: 0 }
    const cid = await withRetry('add', this.where(), net, options.signal, async (signal, touch) => {
      try {
        return await add(signal, touch)
      } catch (err) {
        throw this.translate(err, 'add')
      }
    })
    this.log.debug({ cid: cid.toString() }, 'added')
    return cid
  }

  /**
   * `dag/import` of the CAR `car()` makes, pinning `root` (Kubo's `pin-roots`) unless `pin` is false. The
   * CAR is made again for each attempt; `timeoutMs` bounds a stall of the upload, not its length. Kubo
   * reporting the root's pin as failed (blocks missing from the CAR) is an IpfsConnectionError; `car()`
   * failing (the embedded store lacks or cannot read a block) is that error, at once.
   */
  async importDag (root: CID, car: () => AsyncIterable<Uint8Array>, options: AbortOptions & { pin?: boolean } = {}): Promise<void> {
    const client = await this.rpc()
    const pin = options.pin ?? true
    // The CAR failing to be made here (a block missing or corrupt in the embedded store) makes the client
    // abort the upload; that failure, not the aborted request, is the error, and it is not sent again.
    let local: { err: unknown } | undefined
    try {
      await withRetry(`dag/import ${root.toString()}`, this.where(), this.net, options.signal, async (signal, touch) => {
        const moving = (async function * () {
          try {
            for await (const chunk of car()) {
              touch()
              yield chunk
            }
          } catch (err) {
            local = { err }
            throw err
          }
        })()
        let rootSeen = false
        try {
          for await (const { root: r } of client.dag.import(moving, { pinRoots: pin, signal })) {
            if (!r.cid.equals(root)) continue
            rootSeen = true
            if (r.pinErrorMsg !== undefined && r.pinErrorMsg !== '') throw new Error(`pinning ${root.toString()} failed: ${r.pinErrorMsg}`)
          }
        } catch (err) {
          // a ValidationError is final: withRetry gives up at once, and the local error is thrown below
          if (local !== undefined) throw ValidationError.field('car', 'the CAR could not be made')
          throw this.translate(err, root)
        }
        if (pin && !rootSeen) throw new Error(`dag/import did not report the root ${root.toString()}`)
      })
    } catch (err) {
      if (local !== undefined) throw local.err
      throw err
    }
    this.log.debug({ cid: root.toString(), pinned: pin }, 'imported a DAG')
  }

  async pin (cid: CID, options: AbortOptions = {}): Promise<void> {
    const client = await this.rpc()
    await withRetry(`pin/add ${cid.toString()}`, this.where(), this.net, options.signal, async (signal) => {
      try {
        return await client.pin.add(cid, { signal })
      } catch (err) {
        throw this.translate(err, cid)
      }
    })
  }
}
