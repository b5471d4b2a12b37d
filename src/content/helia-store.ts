/**
 * The embedded content store: a light Helia node (no libp2p, so it contacts nothing) over a filesystem
 * repository that survives restarts:
 *
 *   <repo>/packs      blocks in pack files + index (PackBlockstore; the default for a new repository), or
 *   <repo>/blocks     blocks in blockstore-fs's layout, a file each (FastFsBlockstore; `layout: 'fs'`)
 *   <repo>/datastore  pins (root records, see pin-set.ts) and Helia's datastore: one append-only journal
 *                     (JournalDatastore)
 *
 * Imports reproduce Kubo's CIDs (see unixfs-layout.ts) and write blocks straight into the blockstore;
 * reads verify every block against its CID. Helia is loaded lazily, the first time something needs it
 * (`node`, networking); reading, writing, pinning and gc do not. One store per repository at a time
 * (`<repo>/repo.lock`, see repo-lock.ts).
 *
 * Networking (a later issue): pass `init.network`, a function that receives the light Helia node before
 * it starts and returns it extended (e.g. `helia => withBitswap(withLibp2pLight(helia, {...}))`).
 */
import { randomBytes } from 'node:crypto'
import fs from 'node:fs/promises'
import { homedir } from 'node:os'
import path from 'node:path'
import type { Helia, HeliaInit } from 'helia'
import type { CID } from 'multiformats/cid'
import { AbortError, NotFoundError, ValidationError } from '../errors.js'
import { silentLogger, type Logger } from '../logging/logger.js'
import type { AbortOptions, ContentStore, ProgressOptions, PutOptions } from './content-store.js'
import { assertSupportedCid, identityBytes, verifyBlock } from './cid.js'
import { createLocalBlockstore, detectLayout, type BlockstoreLayout, type LocalBlockstore } from './local-blockstore.js'
import { collectBytes, throwIfAborted } from './async-utils.js'
import { RwLock } from './rw-lock.js'
import { JournalDatastore } from './journal-datastore.js'
import { PinSet, blockKey } from './pin-set.js'
import { ChunkPool, kuboImporterOptions, type CidVersion } from './unixfs-layout.js'
import { WRITE_BEHIND_BLOCKS, WriteBehind, listFolder, readFileChunks } from './import-io.js'
import { blockLinks, readUnixfsFile, resolveIpfsPath, statUnixfs, type ReadFileOptions, type UnixfsEntryType } from './unixfs-reader.js'
import { installPromiseWithResolvers } from './polyfills.js'
import { lockRepo } from './repo-lock.js'
import { makeDirectory } from './make-directory.js'

/** Environment variable naming the data folder; the repository is its `ipfs` subfolder. */
export const HOME_ENV = 'IPFS_ACCELERATE_HOME'

/**
 * The default repository: `$IPFS_ACCELERATE_HOME/ipfs`, else `$XDG_CACHE_HOME/ipfs-accelerate/ipfs`,
 * else `~/.cache/ipfs-accelerate/ipfs`.
 */
export function defaultRepoPath (env: Record<string, string | undefined> = process.env, home: string = homedir()): string {
  if (env[HOME_ENV] !== undefined && env[HOME_ENV] !== '') return path.join(env[HOME_ENV], 'ipfs')
  const cache = env.XDG_CACHE_HOME !== undefined && env.XDG_CACHE_HOME !== '' ? env.XDG_CACHE_HOME : path.join(home, '.cache')
  return path.join(cache, 'ipfs-accelerate', 'ipfs')
}

/** Extends the light node before it starts (the networking extension point). */
export type HeliaExtension = (helia: Helia) => Helia | Promise<Helia>

export interface HeliaStoreInit {
  /** Repository folder (`ipfs.repo`); `~/` is expanded. Default: `defaultRepoPath()`. */
  repo?: string
  /** CID version of imports when a call does not say (`ipfs.cid_version`). Default 0. */
  cidVersion?: CidVersion
  /** Verify blocks read from disk against their CID (default true). */
  verifyOnRead?: boolean
  /**
   * Block layout of a new repository: 'pack' (default, fast) or 'fs' (blockstore-fs's, a file per
   * block). An existing repository keeps its own.
   */
  layout?: BlockstoreLayout
  /** Blocks read ahead of the consumer per DAG level while catting (default 8). */
  readAhead?: number
  logger?: Logger
  /** Networking extension point, see the module comment. */
  network?: HeliaExtension
}

export interface AddDirectoryOptions extends ProgressOptions {
  cidVersion?: CidVersion
  pin?: boolean
  /** Compute the CID only: nothing is stored or pinned. */
  onlyHash?: boolean
}

/** One entry of `addEntries`: a file (with content) or a directory (without), at a relative path. */
export interface AddEntry {
  /** `a.txt`, `dir/b.txt`: `/`-separated, no `.`, `..` or empty segments. */
  path: string
  content?: AsyncIterable<Uint8Array>
}

/** An entry imported by `addEntries`: its path, CID and cumulative DAG size (Kubo's `Size`). */
export interface AddedEntry {
  path: string
  cid: CID
  size: bigint
}

export interface AddEntriesOptions extends PutOptions {
  /** Wrap the entries in a directory (`ipfs add -w`): its CID is returned, with path ''. */
  wrapWithDirectory?: boolean
  /** Each file and directory as it is imported, the wrapping directory last. */
  onEntry?: (entry: AddedEntry) => void
}

/** A pinned block gc could not read, so it deleted nothing (see `HeliaStore.gc`). */
export interface GcUnreadable {
  /** The block. */
  cid: string
  /** The pin holding it. */
  pin: string
  /** What reading it said (corrupt, or missing). */
  reason: string
}

export interface GcResult {
  /** Blocks removed. */
  removed: number
  /** Disk space given back: pack files deleted less what was copied out of them, or the block files deleted ('fs'). */
  reclaimedBytes: number
  /** Pinned blocks that could not be read; when there are any, nothing was removed. */
  unreadable: GcUnreadable[]
}

export interface StatResult {
  type: UnixfsEntryType
  /** File size in bytes (0 for directories). */
  size: number
}

type ImportCandidate = { path: string, content?: AsyncIterable<Uint8Array> }

function expandHome (p: string): string {
  return p === '~' || p.startsWith('~/') ? path.join(homedir(), p.slice(1)) : p
}

function isByteSource (value: unknown): value is Uint8Array | AsyncIterable<Uint8Array> | Iterable<Uint8Array> {
  if (value instanceof Uint8Array) return true
  if (value === null || typeof value !== 'object') return false
  return Symbol.asyncIterator in value || Symbol.iterator in value
}

export class HeliaStore implements ContentStore {
  readonly name = 'helia'
  /** Absolute repository folder. */
  readonly repo: string
  private readonly blocks: LocalBlockstore
  /** The block layout in use ('pack' or 'fs'). */
  readonly layout: BlockstoreLayout
  private readonly cidVersion: CidVersion
  private readonly readAhead: number | undefined
  private readonly log: Logger
  private readonly network: HeliaExtension | undefined
  private readonly lock = new RwLock()
  private opening: Promise<void> | undefined
  private starting: Promise<Helia> | undefined
  private helia: Helia | undefined
  private datastore: JournalDatastore | undefined
  private pinning: Promise<PinSet> | undefined
  private unlock: (() => Promise<void>) | undefined
  private stopped = false
  /** Folders under `<repo>/staging` in use by this store (see `stagingDir`). */
  private readonly staging = new Set<string>()

  constructor (init: HeliaStoreInit = {}) {
    this.repo = path.resolve(expandHome(init.repo ?? defaultRepoPath()))
    this.layout = detectLayout(this.repo) ?? init.layout ?? 'pack'
    this.blocks = createLocalBlockstore(this.repo, this.layout, {
      verifyOnRead: init.verifyOnRead ?? true,
      // whoever opens the blockstore first (this store, or a user of `blockstore`) takes the repository lock
      prepare: async () => { this.unlock = await lockRepo(this.repo) }
    })
    this.cidVersion = init.cidVersion ?? 0
    this.readAhead = init.readAhead
    this.log = (init.logger ?? silentLogger()).child({ ns: 'ipfs-accelerate:content:helia' })
    this.network = init.network
  }

  /**
   * The blockstore (interface-blockstore), for the HTTP gateway and Kubo RPC routes and as the cache of
   * the network stores. Usable at once (it opens itself on first use).
   */
  get blockstore (): LocalBlockstore {
    return this.blocks
  }

  /** Opens the repository without starting Helia (reads and writes need no more). */
  async open (): Promise<void> {
    await this.ensureOpen()
  }

  /** The Helia node, once started (`await store.start()` first); for the networking layer. */
  get node (): Helia {
    if (this.helia === undefined) throw new AbortError('HeliaStore is not started', { context: { repo: this.repo } })
    return this.helia
  }

  /** Opens the repository and starts the Helia node (idempotent). */
  async start (): Promise<void> {
    await this.ensureHelia()
  }

  async stop (): Promise<void> {
    this.stopped = true
    const release = await this.lock.write()
    try {
      const starting = this.starting
      this.starting = undefined
      this.helia = undefined
      if (starting !== undefined) {
        const helia = await starting.catch(() => undefined)
        await helia?.stop()
      }
      await this.pinning?.catch(() => {})
      this.pinning = undefined
      // Each step runs even when one before it fails (a write the disk refused): the lock must go,
      // or this process could not open the repository again. The first failure is rethrown.
      const failures: unknown[] = []
      const step = async (fn: () => Promise<void> | undefined): Promise<void> => { try { await fn() } catch (err) { failures.push(err) } }
      await step(async () => await this.datastore?.close())
      this.datastore = undefined
      await this.opening?.catch(() => {})
      await step(async () => await this.blocks.close())
      await step(async () => await this.unlock?.())
      this.unlock = undefined
      if (failures.length > 0) throw failures[0]
    } finally {
      release()
    }
    this.log.debug({ repo: this.repo }, 'stopped')
  }

  private assertRunning (): void {
    if (this.stopped) throw new AbortError('HeliaStore is stopped', { context: { repo: this.repo } })
  }

  private async ensureOpen (): Promise<LocalBlockstore> {
    this.assertRunning()
    this.opening ??= this.blocks.open()
    try {
      await this.opening
    } catch (err) {
      this.opening = undefined
      throw err
    }
    return this.blocks
  }

  private async ensureHelia (): Promise<Helia> {
    await this.ensureOpen()
    this.starting ??= this.createHelia()
    try {
      return await this.starting
    } catch (err) {
      this.starting = undefined
      throw err
    }
  }

  /** The datastore and the pins in it (opened once; no Helia needed). */
  private async ensurePins (): Promise<PinSet> {
    await this.ensureOpen()
    this.pinning ??= (async () => {
      const datastore = new JournalDatastore(path.join(this.repo, 'datastore'))
      await datastore.open()
      this.datastore = datastore
      const pins = new PinSet(datastore, async (cid, options) => blockLinks(cid, await this.getBlock(cid, options)))
      const moved = await pins.migrateHeliaPins()
      if (moved > 0) this.log.info({ pins: moved }, 'carried over pins recorded by Helia')
      return pins
    })()
    try {
      return await this.pinning
    } catch (err) {
      this.pinning = undefined
      throw err
    }
  }

  private async createHelia (): Promise<Helia> {
    installPromiseWithResolvers()
    const createHeliaLight = await loadHeliaLight()
    await this.ensurePins()
    let helia = createHeliaLight({ blockstore: await this.ensureOpen(), datastore: this.datastore as JournalDatastore })
    if (this.network !== undefined) helia = await this.network(helia)
    await helia.start()
    this.helia = helia
    this.log.debug({ repo: this.repo }, 'started')
    return helia
  }

  /** One block's bytes (verified), e.g. for `?format=raw` and `block/get`. NotFoundError when absent. */
  async getBlock (cid: CID, options: AbortOptions = {}): Promise<Uint8Array> {
    const inline = identityBytes(cid)
    if (inline !== undefined) return inline
    const blocks = await this.ensureOpen()
    return await blocks.getBlock(cid, options)
  }

  /** Stores one block after checking it matches `cid` (`source` names where it came from in the error). */
  async putBlock (cid: CID, bytes: Uint8Array, options: AbortOptions & { pin?: boolean, source?: string } = {}): Promise<CID> {
    assertSupportedCid(cid)
    verifyBlock(cid, bytes, options.source ?? 'block/put')
    if (identityBytes(cid) !== undefined) return cid
    const blocks = await this.ensureOpen()
    const release = await this.lock.read()
    try {
      await blocks.putBlock(cid, bytes)
      await blocks.flush() // stored means found after a restart; a failed index write is reported here
      if (options.pin === true) await this.pinUnlocked(cid, new Map([[cid.toString(), blockLinks(cid, bytes)]]), options)
    } finally {
      release()
    }
    return cid
  }

  async has (cid: CID, options: AbortOptions = {}): Promise<boolean> {
    if (identityBytes(cid) !== undefined) return true
    const blocks = await this.ensureOpen()
    return await blocks.has(cid, options)
  }

  cat (cid: CID, options: ReadFileOptions = {}): AsyncIterable<Uint8Array> {
    const getBlock = this.getBlock.bind(this)
    const readAhead = options.readAhead ?? this.readAhead
    return readUnixfsFile(cid, getBlock, { ...options, readAhead })
  }

  async get (cid: CID, options: ProgressOptions = {}): Promise<Uint8Array> {
    return await collectBytes(this.cat(cid, options))
  }

  /** Type and size of the entry at `cid` (one block read). */
  async stat (cid: CID, options: AbortOptions = {}): Promise<StatResult> {
    const s = await statUnixfs(cid, this.getBlock.bind(this), options)
    return { type: s.type, size: Number(s.size) }
  }

  /** The CID at `path` below `cid` (directories, including HAMT shards). */
  async resolve (cid: CID, path: string, options: AbortOptions = {}): Promise<CID> {
    return await resolveIpfsPath(cid, path, this.getBlock.bind(this), options)
  }

  /**
   * Adds bytes, or a stream of them (memory stays bounded by the chunk size times the write
   * concurrency), as a UnixFS file with Kubo's layout; pins it unless `pin: false`.
   */
  async put (bytes: Uint8Array | AsyncIterable<Uint8Array>, options: PutOptions = {}): Promise<CID> {
    if (!isByteSource(bytes)) throw ValidationError.field('content', 'expected a Uint8Array or an (async) iterable of Uint8Array')
    const total = bytes instanceof Uint8Array ? bytes.byteLength : undefined
    const content = this.trackSource(bytes, options, total)
    // a Uint8Array stays the caller's until put returns: leaves can be views of it
    return await this.importCandidates([{ path: '', content }], false, options, new ChunkPool(), bytes instanceof Uint8Array)
  }

  /**
   * Imports files and directories given by path (what `ipfs add` over the RPC API receives, part by
   * part). Entries are asked for one at a time, and a file's content is read to its end before the next
   * entry is asked for, so a source that can only produce them in order (a multipart body) works. The
   * root is the wrapping directory with `wrapWithDirectory`, else the last top-level entry; with `pin`,
   * every top-level entry is pinned, as Kubo's `add` pins each.
   */
  async addEntries (entries: Iterable<AddEntry> | AsyncIterable<AddEntry>, options: AddEntriesOptions = {}): Promise<CID> {
    const checked = (async function * () {
      for await (const entry of entries) {
        const segments = entry.path.split('/')
        if (entry.path === '' || segments.some(s => s === '' || s === '.' || s === '..')) {
          throw ValidationError.field('path', `${JSON.stringify(entry.path)} is not a relative path (no empty, . or .. segments)`)
        }
        yield entry
      }
    })()
    return await this.importCandidates(checked, options.wrapWithDirectory === true, { ...options, sequential: true }, new ChunkPool())
  }

  /** Adds a file from disk, streamed (read straight into chunk buffers, a few reads ahead). */
  async addFile (file: string, options: PutOptions = {}): Promise<CID> {
    const stat = await fs.stat(file).catch((cause: unknown) => {
      throw ValidationError.field('file', `${file} cannot be read: ${(cause as Error).message}`, { file })
    })
    if (!stat.isFile()) throw ValidationError.field('file', `${file} is not a regular file`, { file })
    const pool = new ChunkPool()
    const content = this.trackSource(readFileChunks(file, pool), options, stat.size)
    return await this.importCandidates([{ path: '', content }], false, options, pool)
  }

  /**
   * Imports a folder as a UnixFS directory (what `ipfs add -r` gives for it). Symbolic links, special
   * files and names that would escape the folder are refused with a ValidationError before anything
   * is written.
   */
  async addDirectory (folder: string, options: AddDirectoryOptions = {}): Promise<CID> {
    const root = path.resolve(folder)
    const rootStat = await fs.lstat(root).catch((cause: unknown) => {
      throw ValidationError.field('folder', `${folder} cannot be read: ${(cause as Error).message}`, { file: folder })
    })
    if (!rootStat.isDirectory()) throw ValidationError.field('folder', `${folder} is not a directory`, { file: folder })
    const entries = await listFolder(root, options.signal)
    const total = entries.reduce((n, e) => n + (e.size ?? 0), 0)
    let done = 0
    const pool = new ChunkPool()
    const candidates: ImportCandidate[] = entries.map(e => {
      if (e.size === undefined) return { path: e.relative }
      const file = path.join(root, e.relative)
      return {
        path: e.relative,
        content: (async function * () {
          for await (const chunk of readFileChunks(file, pool)) {
            throwIfAborted(options.signal, 'addDirectory')
            done += chunk.byteLength
            options.onProgress?.({ bytes: done, total })
            yield chunk
          }
        })()
      }
    })
    return await this.importCandidates(candidates, true, options, pool)
  }

  private trackSource (source: Uint8Array | AsyncIterable<Uint8Array> | Iterable<Uint8Array>, options: ProgressOptions, total: number | undefined): AsyncIterable<Uint8Array> {
    const { signal, onProgress } = options
    return (async function * () {
      let bytes = 0
      throwIfAborted(signal, 'put')
      onProgress?.({ bytes, total })
      const chunks = source instanceof Uint8Array ? [source] : source
      for await (const chunk of chunks) {
        if (!(chunk instanceof Uint8Array)) throw ValidationError.field('content', 'stream yielded something that is not a Uint8Array')
        throwIfAborted(signal, 'put')
        yield chunk
        bytes += chunk.byteLength
        onProgress?.({ bytes, total })
      }
    })()
  }

  /**
   * Runs the importer over `candidates` into the pack store (or nowhere, with `onlyHash`). `directory`:
   * wrap them in a directory, whose CID is returned (and pinned); otherwise the last top-level entry's
   * (every top-level entry is pinned). `sequential`:
   * one file at a time, each read to its end before the next candidate is asked for.
   */
  private async importCandidates (candidates: ImportCandidate[] | AsyncIterable<ImportCandidate>, directory: boolean,
    options: PutOptions & { sequential?: boolean, onEntry?: (entry: AddedEntry) => void }, pool: ChunkPool, inputStays = false): Promise<CID> {
    const blocks = await this.ensureOpen()
    const onlyHash = options.onlyHash === true
    const pin = !onlyHash && (options.pin ?? true)
    const cidVersion = options.cidVersion ?? this.cidVersion
    if (cidVersion !== 0 && cidVersion !== 1) throw ValidationError.field('cidVersion', 'must be 0 or 1')
    const { importer } = await import('ipfs-unixfs-importer')
    const writes = new WriteBehind(blocks, WRITE_BEHIND_BLOCKS, pool)
    const signal = options.signal
    const sink = onlyHash
      ? {
          // nothing is kept: the chunk buffers go back to the pool at once
          async put (cid: CID, bytes: Uint8Array) { throwIfAborted(signal, 'put'); pool.release(bytes); return cid },
          async putParts (_cid: CID, parts: Uint8Array[]) { throwIfAborted(signal, 'put'); for (const part of parts) pool.release(part) }
        }
      : {
          async put (cid: CID, bytes: Uint8Array) {
            throwIfAborted(signal, 'put')
            await writes.put(cid, bytes)
            return cid
          },
          async putParts (cid: CID, parts: Uint8Array[]) {
            throwIfAborted(signal, 'put')
            await writes.put(cid, parts)
          }
        }
    const release = await this.lock.read()
    try {
      let root: CID | undefined
      const importOptions = {
        ...kuboImporterOptions(cidVersion, pool, inputStays),
        wrapWithDirectory: directory,
        ...(options.sequential === true ? { fileImportConcurrency: 1 } : {})
      }
      const source = directory && Array.isArray(candidates) && candidates.length === 0 ? [{ path: '' }] : candidates
      // eslint-disable-next-line @typescript-eslint/consistent-type-assertions
      const entries = importer(source, sink as any, importOptions)
      let any = false
      // Unwrapped, every top-level entry is a root of its own: Kubo's `add` pins each one (`a.txt b.txt`
      // pins both), and an entry left unpinned here would be reported as added and then lost to a gc.
      const tops = new Map<string, CID>()
      try {
        for await (const entry of entries) {
          any = true
          options.onEntry?.({ path: entry.path ?? '', cid: entry.cid, size: entry.size })
          if (directory ? entry.path === '' : !(entry.path ?? '').includes('/')) {
            root = entry.cid
            if (!directory) tops.set(entry.cid.toV1().toString(), entry.cid)
          }
        }
      } finally {
        await writes.settle()
      }
      if (!any && directory && !Array.isArray(candidates)) throw ValidationError.field('content', 'nothing to import')
      if (onlyHash) {
        if (root === undefined) throw new ValidationError('nothing was imported', [{ path: 'content', message: 'empty import' }])
        return root
      }
      await writes.flush()
      // the blocks' index records reach the file before the pin record and before the CID is returned
      await blocks.flush()
      if (root === undefined) throw new ValidationError('nothing was imported', [{ path: 'content', message: 'empty import' }])
      // every block was just written: each pin is one record, nothing is walked
      if (pin) {
        for (const top of directory ? [root] : tops.values()) await this.pinUnlocked(top, undefined, { ...options, complete: true })
      }
      this.log.debug({ cid: root.toString(), pinned: pin }, 'imported')
      return root
    } finally {
      release()
    }
  }

  /**
   * Pins `cid` and everything below it, after checking every block is here (NotFoundError otherwise).
   * `links` (block CID string -> child CIDs), when the caller just walked the DAG, spares re-reading
   * its blocks to find their children. Pinning twice is a no-op.
   */
  async pin (cid: CID, options: AbortOptions & { links?: Map<string, CID[]> } = {}): Promise<void> {
    const release = await this.lock.read()
    try {
      await this.pinUnlocked(cid, options.links, options)
    } finally {
      release()
    }
  }

  /** `complete`: the caller just stored the whole DAG (an import), so presence is not checked again. */
  private async pinUnlocked (cid: CID, links: Map<string, CID[]> | undefined, options: AbortOptions & { complete?: boolean }): Promise<void> {
    const pins = await this.ensurePins()
    if (!(await this.has(cid, options))) throw new NotFoundError(`cannot pin ${cid.toString()}: not in the local store`, { context: { cid: cid.toString() } })
    // the blocks' index records (a block/put, a fetch) reach the file first: a pin must never outlive them
    await this.blocks.flush()
    await pins.add(cid, async c => await this.has(c, options), { ...options, links, complete: options.complete })
    await this.datastore?.flush()
  }

  /** Removes the pin on `cid` (its blocks become collectable unless another pin holds them); no-op if not pinned. */
  async unpin (cid: CID, options: AbortOptions = {}): Promise<void> {
    const pins = await this.ensurePins()
    const release = await this.lock.read()
    try {
      if (await pins.rm(cid, options)) await this.datastore?.flush()
    } finally {
      release()
    }
  }

  /** True when `cid` is pinned or is a block some pin holds. */
  async isPinned (cid: CID, options: AbortOptions = {}): Promise<boolean> {
    return await (await this.ensurePins()).isPinned(cid, options)
  }

  /** Root CIDs pinned here, spelled as they were pinned. */
  async * pins (options: AbortOptions = {}): AsyncGenerator<CID> {
    yield * (await this.ensurePins()).roots(options)
  }

  /**
   * Deletes every block no pin holds, then reclaims their space (pack layout), and removes staging
   * folders left by publishes that did not finish. Waits for imports in progress to finish (and pin)
   * first.
   *
   * A pinned dag-pb block that cannot be read (it failed verification, or is missing) is held, but what
   * lies below it is unknown, so any block not otherwise pinned might be part of that pin: gc then deletes
   * nothing (it still compacts space already freed), and lists the block and its pin in `unreadable`, with
   * a warning in the log. Adding the content again (which stores a good copy of a block found damaged)
   * or unpinning that pin lets the next gc run in full.
   */
  async gc (options: AbortOptions = {}): Promise<GcResult> {
    const pins = await this.ensurePins()
    const blocks = await this.ensureOpen()
    const release = await this.lock.write()
    let removed = 0
    let reclaimedBytes = 0
    let unreadable: GcUnreadable[] = []
    try {
      const walked = await pins.walkPins(options)
      unreadable = walked.unreadable.map(u => ({ cid: u.cid.toString(), pin: u.pin.toString(), reason: u.error.message }))
      if (unreadable.length === 0) {
        const doomed: CID[] = []
        for await (const { cid } of blocks.getAll(options)) {
          if (!walked.held.has(blockKey(cid))) doomed.push(cid)
        }
        for (const cid of doomed) {
          throwIfAborted(options.signal, 'gc')
          // 'fs': a block is a file, and deleting it frees the file's size
          if (blocks.compact === undefined) reclaimedBytes += (await blocks.where(cid))?.length ?? 0
          await blocks.delete(cid, options)
          removed++
        }
      } else {
        this.log.warn({ unreadable }, `gc deleted nothing: ${unreadable.length} pinned block(s) cannot be read, so what they hold is unknown (add the content again or unpin, then gc): ${unreadable.map(u => `${u.cid} (pin ${u.pin})`).join(', ')}`)
      }
      if (blocks.compact !== undefined) reclaimedBytes = (await blocks.compact(options)).reclaimedBytes
      await this.removeStaleStaging()
    } finally {
      release()
    }
    this.log.debug({ removed, reclaimedBytes }, 'gc')
    return { removed, reclaimedBytes, unreadable }
  }

  /**
   * A new, empty folder under `<repo>/staging` for a caller that prepares files there before importing
   * them (model publishing); remove it with `releaseStagingDir` when done. The repository lock makes this
   * store the only user of the repository, so every staging folder it did not hand out is left over from
   * a process that died (a publish killed with kill -9): those are removed here and by `gc`.
   */
  async stagingDir (prefix: string): Promise<string> {
    await this.ensureOpen() // takes the repository lock
    await this.removeStaleStaging()
    const dir = path.join(this.repo, 'staging', `${prefix}-${process.pid}-${randomBytes(6).toString('hex')}`)
    this.staging.add(dir)
    try {
      await makeDirectory(dir)
    } catch (err) {
      this.staging.delete(dir)
      throw err
    }
    return dir
  }

  /** Removes a folder from `stagingDir`. */
  async releaseStagingDir (dir: string): Promise<void> {
    try {
      await fs.rm(dir, { recursive: true, force: true })
    } finally {
      this.staging.delete(dir)
    }
  }

  private async removeStaleStaging (): Promise<void> {
    const root = path.join(this.repo, 'staging')
    const names = await fs.readdir(root).catch(() => [] as string[])
    for (const name of names) {
      const dir = path.join(root, name)
      if (this.staging.has(dir)) continue
      await fs.rm(dir, { recursive: true, force: true }).catch((err: unknown) => {
        this.log.warn({ dir, err }, 'could not remove a stale staging folder')
      })
    }
  }
}

/**
 * Helia's light-node factory. `import('helia')` costs 1-2 s here because its index pulls in bitswap,
 * libp2p, HTTP and more; the Helia class itself (what `createHeliaLight` wraps) loads in ~0.3 s, so
 * that module is imported by file URL next to helia's entry point. There is deliberately no fallback
 * to `import('helia')`: in a project that depends on ipfs-accelerate without our undici override,
 * that index loads undici 8, which crashes the process at import on Node 20 (README); a release that
 * moves the file gets a clear error instead.
 */
async function loadHeliaLight (): Promise<(init: HeliaInit) => Helia> {
  const url = new URL('./helia.js', import.meta.resolve('helia'))
  const mod = await import(url.href) as { Helia?: new (init: HeliaInit & { name: string, version: string }) => Helia }
  const HeliaClass = mod.Helia
  if (typeof HeliaClass !== 'function') throw new Error(`helia's Helia class is no longer at ${url.href}: this helia release is not supported`)
  return (init) => new HeliaClass({ name: 'helia', version: 'light', ...init })
}
