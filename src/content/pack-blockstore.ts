/**
 * A blockstore that appends blocks to large pack files and keeps an index in a journal, instead of one
 * file per block. Measured on this project's 2-core ext4 machine, creating a file per 256 KiB block
 * costs ~0.3-0.6 ms of kernel time, so writing 256 MiB as 1024 block files took 2-4x as long as hashing
 * those bytes (0.6-0.7 s vs ~0.18 s), while appending them to one file took ~0.13 s: a file per block
 * caps an add at ~0.3x the sha-256 rate; packs let it run near the hashing rate. Reads are one `pread`
 * per block on a cached file handle (no open/fstat/close).
 *
 *   <dir>/<8 hex digits>.pack  records: [0xB1][multihash length u8][block length u32 LE][multihash][block]
 *   <dir>/index                journal (journal.ts): base32 multihash -> pack u32, offset f64, length u32
 *
 * A block is written to its pack before its index record, so a crash leaves at most unreferenced bytes.
 * Blocks are keyed by multihash (as blockstore-fs does). Reads verify by default; a block that fails
 * verification is marked corrupt (every read of it is a ContentVerificationError, `has` says false, and
 * the next put or fetch of it writes it again). Deleting a block only drops its index record; `compact()` rewrites packs
 * that are mostly garbage (HeliaStore.gc calls it). Packs are not fsynced per block (blockstore-fs does
 * not fsync either); `close()` fsyncs the open pack and the index.
 */
import fs from 'node:fs/promises'
import path from 'node:path'
import type { Blockstore, InputPair, Pair } from 'interface-blockstore'
import { base32upper } from 'multiformats/bases/base32'
import { CID } from 'multiformats/cid'
import { ContentVerificationError, NotFoundError } from '../errors.js'
import type { AbortOptions } from './content-store.js'
import { verifyBlock } from './cid.js'
import { collectBytes, mapOrdered, throwIfAborted } from './async-utils.js'
import { Journal } from './journal.js'
import { CoalescingWriter } from './coalescing-writer.js'

export interface PackBlockstoreInit {
  /** Hash every block read and compare it with its CID (default true). */
  verifyOnRead?: boolean
  /** A pack is closed for appends once it reaches this size (default 256 MiB). */
  packSize?: number
  /** Pack file handles kept open for reads (default 32). */
  openPacks?: number
  /** Concurrency of putMany/getMany/deleteMany (default 16). */
  concurrency?: number
  /** Runs first when the store opens (HeliaStore takes the repository lock there). */
  prepare?: () => Promise<void>
}

export const DEFAULT_PACK_SIZE = 256 * 1024 * 1024
const RECORD_MAGIC = 0xb1
const RECORD_HEADER = 6
const ENTRY_BYTES = 16

interface Location {
  pack: number
  /** Offset of the block's bytes (after the record header). */
  offset: number
  length: number
}

function encodeLocation (loc: Location): Uint8Array {
  const out = Buffer.allocUnsafe(ENTRY_BYTES)
  out.writeUInt32LE(loc.pack, 0)
  out.writeDoubleLE(loc.offset, 4)
  out.writeUInt32LE(loc.length, 12)
  return out
}

function decodeLocation (bytes: Uint8Array): Location {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  return { pack: b.readUInt32LE(0), offset: b.readDoubleLE(4), length: b.readUInt32LE(12) }
}

function packName (pack: number): string {
  return `${pack.toString(16).padStart(8, '0')}.pack`
}

function keyOf (cid: CID): string {
  return base32upper.encoder.encode(cid.multihash.bytes)
}

/** Open pack handles with reference counts, so a pack retired by compaction closes after its last read. */
class HandleCache {
  private readonly open = new Map<number, { handle: Promise<fs.FileHandle>, users: number, retired: boolean }>()

  constructor (private readonly dir: string, private readonly limit: number) {}

  async use<T> (pack: number, fn: (handle: fs.FileHandle) => Promise<T>): Promise<T> {
    let entry = this.open.get(pack)
    if (entry === undefined || entry.retired) {
      entry = { handle: fs.open(path.join(this.dir, packName(pack)), 'r'), users: 0, retired: false }
      entry.handle.catch(() => this.open.delete(pack))
      this.open.set(pack, entry)
      this.evict()
    } else {
      // most recently used last
      this.open.delete(pack)
      this.open.set(pack, entry)
    }
    const held = entry
    held.users++
    try {
      return await fn(await held.handle)
    } finally {
      held.users--
      if (held.retired && held.users === 0) await (await held.handle).close().catch(() => {})
    }
  }

  private evict (): void {
    for (const [pack, entry] of this.open) {
      if (this.open.size <= this.limit) return
      if (entry.users > 0) continue
      this.open.delete(pack)
      void entry.handle.then(async h => await h.close()).catch(() => {})
    }
  }

  /** Closes `pack`'s handle once no read uses it. */
  retire (pack: number): void {
    const entry = this.open.get(pack)
    if (entry === undefined) return
    this.open.delete(pack)
    entry.retired = true
    if (entry.users === 0) void entry.handle.then(async h => await h.close()).catch(() => {})
  }

  async closeAll (): Promise<void> {
    const entries = [...this.open.values()]
    this.open.clear()
    await Promise.allSettled(entries.map(async e => { await (await e.handle).close() }))
  }
}

export class PackBlockstore implements Blockstore {
  readonly path: string
  readonly verifyOnRead: boolean
  private readonly packSize: number
  private readonly concurrency: number
  private readonly index: Journal
  private readonly handles: HandleCache
  private readonly writing = new Map<string, Promise<void>>()
  /** Appends of one import merged into few writev calls (see coalescing-writer.ts). */
  private readonly writer = new CoalescingWriter()
  /** Keys whose stored bytes failed verification (until written again). */
  private readonly corrupted = new Set<string>()
  /** Bytes referenced by the index, per pack. */
  private readonly live = new Map<number, number>()
  /** Bytes written, per pack (file sizes). */
  private readonly sizes = new Map<number, number>()
  private active = -1
  private activeSize = 0
  private activeHandle: Promise<fs.FileHandle> | undefined
  private rolling: Promise<void> = Promise.resolve()
  private opened = false
  private opening: Promise<void> | undefined
  private closed = false
  private readonly prepare: (() => Promise<void>) | undefined

  constructor (location: string, init: PackBlockstoreInit = {}) {
    this.path = path.resolve(location)
    this.verifyOnRead = init.verifyOnRead ?? true
    this.packSize = init.packSize ?? DEFAULT_PACK_SIZE
    this.concurrency = init.concurrency ?? 16
    this.index = new Journal(path.join(this.path, 'index'))
    this.handles = new HandleCache(this.path, init.openPacks ?? 32)
    this.prepare = init.prepare
  }

  /** Loads the index and finds the pack to append to; every other method opens the store on first use. */
  async open (): Promise<void> {
    if (this.closed) throw new Error(`PackBlockstore ${this.path} is closed`)
    this.opening ??= this.load()
    try {
      await this.opening
    } catch (err) {
      this.opening = undefined
      throw err
    }
  }

  private async ready (): Promise<void> {
    if (!this.opened) await this.open()
  }

  private async load (): Promise<void> {
    await this.prepare?.()
    await fs.mkdir(this.path, { recursive: true })
    await this.index.open()
    for (const name of await fs.readdir(this.path)) {
      const m = /^([0-9a-f]{8})\.pack$/.exec(name)
      if (m === null) continue
      const pack = parseInt(m[1], 16)
      this.sizes.set(pack, (await fs.stat(path.join(this.path, name))).size)
      this.active = Math.max(this.active, pack)
    }
    for (const [, value] of this.index.entries()) {
      const loc = decodeLocation(value)
      this.live.set(loc.pack, (this.live.get(loc.pack) ?? 0) + loc.length)
    }
    if (this.active < 0 || (this.sizes.get(this.active) ?? 0) >= this.packSize) this.startPack(this.active + 1)
    else {
      this.activeSize = this.sizes.get(this.active) ?? 0
      // not 'a': on Linux, pwrite on an O_APPEND file ignores the position
      this.activeHandle = fs.open(path.join(this.path, packName(this.active)), 'r+')
    }
    this.opened = true
  }

  private startPack (pack: number): void {
    const previous = this.activeHandle
    this.active = pack
    this.activeSize = 0
    this.sizes.set(pack, 0)
    this.activeHandle = fs.open(path.join(this.path, packName(pack)), 'wx+')
    if (previous !== undefined) {
      // close the old pack for appends once its writes are done
      this.rolling = this.rolling.then(async () => {
        await Promise.allSettled(this.writing.values())
        await (await previous).close()
      }).catch(() => {})
    }
  }

  async close (): Promise<void> {
    this.closed = true
    await this.opening?.catch(() => {})
    if (!this.opened) return
    this.opened = false
    await Promise.allSettled(this.writing.values())
    await this.rolling
    const h = await this.activeHandle?.catch(() => undefined)
    await h?.sync().catch(() => {})
    await h?.close().catch(() => {})
    this.activeHandle = undefined
    await this.handles.closeAll()
    await this.index.close()
  }

  /** Where a block's bytes are (for tools and tests), or undefined. */
  async where (cid: CID): Promise<{ file: string, offset: number, length: number } | undefined> {
    await this.ready()
    return this.index.has(keyOf(cid)) ? this.locate(cid) : undefined
  }

  /** Sync form of `where` (the store must be open); NotFoundError when the block is not here. */
  locate (cid: CID): { file: string, offset: number, length: number } {
    const value = this.index.get(keyOf(cid))
    if (value === undefined) throw new NotFoundError(`block ${cid.toString()} is not in the local store`, { context: { cid: cid.toString() } })
    const loc = decodeLocation(value)
    return { file: path.join(this.path, packName(loc.pack)), offset: loc.offset, length: loc.length }
  }

  async put (cid: CID, bytes: Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>, options?: AbortOptions): Promise<CID> {
    throwIfAborted(options?.signal, 'put')
    await this.putBlock(cid, bytes instanceof Uint8Array ? bytes : await collectBytes(bytes))
    return cid
  }

  /**
   * Stores one block, whole or as parts written back to back (the caller vouches that it matches
   * `cid`); a block already stored is not rewritten.
   */
  async putBlock (cid: CID, block: Uint8Array | Uint8Array[]): Promise<void> {
    await this.ready()
    const key = keyOf(cid)
    if (this.index.has(key) && !this.corrupted.has(key)) return
    const inFlight = this.writing.get(key)
    if (inFlight !== undefined) return await inFlight
    const write = this.append(key, cid, block).finally(() => this.writing.delete(key))
    this.writing.set(key, write)
    await write
  }

  private async append (key: string, cid: CID, block: Uint8Array | Uint8Array[]): Promise<void> {
    if (!this.opened) throw new Error(`PackBlockstore ${this.path} is not open`)
    const parts = Array.isArray(block) ? block : [block]
    const length = parts.reduce((sum, p) => sum + p.byteLength, 0)
    const mh = cid.multihash.bytes
    const header = Buffer.allocUnsafe(RECORD_HEADER + mh.byteLength)
    header.writeUInt8(RECORD_MAGIC, 0)
    header.writeUInt8(mh.byteLength, 1)
    header.writeUInt32LE(length, 2)
    header.set(mh, RECORD_HEADER)
    if (this.activeSize > 0 && this.activeSize + header.byteLength + length > this.packSize) this.startPack(this.active + 1)
    // reserve the range now (synchronously), write it whenever the thread pool gets to it
    const pack = this.active
    const at = this.activeSize
    this.activeSize += header.byteLength + length
    this.sizes.set(pack, this.activeSize)
    await this.writer.write(this.activeHandle as Promise<fs.FileHandle>, at, [header, ...parts])
    this.dropKey(key) // a block moved by compact() or rewritten over a corrupt copy: the old one is garbage
    this.index.set(key, encodeLocation({ pack, offset: at + header.byteLength, length }))
    this.live.set(pack, (this.live.get(pack) ?? 0) + length)
  }

  async * putMany (source: Iterable<InputPair> | AsyncIterable<InputPair>, options?: AbortOptions): AsyncGenerator<CID> {
    yield * mapOrdered(source, this.concurrency, async ({ cid, bytes }) => await this.put(cid, bytes, options))
  }

  /** One whole block, verified unless `verifyOnRead` is false. NotFoundError when absent. */
  async getBlock (cid: CID, options?: AbortOptions): Promise<Uint8Array> {
    throwIfAborted(options?.signal, 'get')
    await this.ready()
    const key = keyOf(cid)
    const inFlight = this.writing.get(key)
    if (inFlight !== undefined) await inFlight
    const value = this.index.get(key)
    if (value === undefined) throw new NotFoundError(`block ${cid.toString()} is not in the local store`, { context: { cid: cid.toString() } })
    if (this.corrupted.has(key)) return this.corrupt(cid, key, 'it failed verification before')
    const loc = decodeLocation(value)
    const bytes = Buffer.allocUnsafe(loc.length)
    const read = await this.readAt(loc, bytes)
    if (read !== loc.length) return this.corrupt(cid, key, `pack ${packName(loc.pack)} ends inside the block`)
    if (this.verifyOnRead) {
      try {
        verifyBlock(cid, bytes, `local store ${packName(loc.pack)}`)
      } catch (err) {
        return this.corrupt(cid, key, (err as Error).message)
      }
    }
    return bytes
  }

  private async readAt (loc: Location, into: Buffer): Promise<number> {
    if (loc.pack === this.active && this.activeHandle !== undefined) {
      // the pack being appended to: read through its own handle
      const h = await this.activeHandle
      const { bytesRead } = await h.read(into, 0, loc.length, loc.offset)
      return bytesRead
    }
    return await this.handles.use(loc.pack, async h => (await h.read(into, 0, loc.length, loc.offset)).bytesRead)
  }

  /** Marks a block corrupt (so the next put writes it again) and reports it. */
  private corrupt (cid: CID, key: string, why: string): never {
    this.corrupted.add(key)
    throw new ContentVerificationError(`block ${cid.toString()} in the local store is corrupt (${why})`, { context: { cid: cid.toString(), store: this.path } })
  }

  private dropKey (key: string): void {
    const value = this.index.get(key)
    if (value === undefined) return
    const loc = decodeLocation(value)
    this.index.delete(key)
    this.corrupted.delete(key)
    this.live.set(loc.pack, (this.live.get(loc.pack) ?? 0) - loc.length)
  }

  async * get (cid: CID, options?: AbortOptions): AsyncGenerator<Uint8Array> {
    yield await this.getBlock(cid, options)
  }

  async * getMany (source: Iterable<CID> | AsyncIterable<CID>, options?: AbortOptions): AsyncGenerator<Pair> {
    yield * mapOrdered(source, this.concurrency, async (cid) => {
      const bytes = await this.getBlock(cid, options)
      return { cid, bytes: (function * () { yield bytes })() }
    })
  }

  async has (cid: CID, options?: AbortOptions): Promise<boolean> {
    throwIfAborted(options?.signal, 'has')
    await this.ready()
    const key = keyOf(cid)
    return (this.index.has(key) && !this.corrupted.has(key)) || this.writing.has(key)
  }

  async delete (cid: CID, options?: AbortOptions): Promise<void> {
    throwIfAborted(options?.signal, 'delete')
    await this.ready()
    this.dropKey(keyOf(cid))
  }

  async * deleteMany (source: Iterable<CID> | AsyncIterable<CID>, options?: AbortOptions): AsyncGenerator<CID> {
    for await (const cid of source) {
      await this.delete(cid, options)
      yield cid
    }
  }

  /** Every stored block; CIDs are rebuilt from the multihash (CIDv0 for sha2-256), as blockstore-fs does. */
  async * getAll (options?: AbortOptions): AsyncGenerator<Pair> {
    await this.ready()
    const store = this
    for (const key of this.index.keys()) {
      throwIfAborted(options?.signal, 'getAll')
      if (!this.index.has(key)) continue
      const cid = CID.decode(base32upper.decoder.decode(key))
      yield { cid, bytes: (async function * () { yield await store.getBlock(cid, options) })() }
    }
  }

  /** Flushes the index to its file (not fsynced). */
  async flush (): Promise<void> {
    await this.index.flush()
  }

  /**
   * Rewrites packs whose live bytes are under `minLiveRatio` of their size (default 0.5) into the active
   * pack and deletes them; packs with nothing live are just deleted. Returns the bytes reclaimed.
   */
  async compact (options: AbortOptions & { minLiveRatio?: number } = {}): Promise<{ reclaimedBytes: number, packsRemoved: number }> {
    await this.ready()
    const minLive = options.minLiveRatio ?? 0.5
    let reclaimed = 0
    let removed = 0
    for (const [pack, size] of [...this.sizes]) {
      throwIfAborted(options.signal, 'compact')
      if (pack === this.active || size === 0) continue
      const live = Math.max(0, this.live.get(pack) ?? 0)
      if (live > 0 && live >= size * minLive) continue
      if (live > 0) {
        for (const [key, value] of this.index.entries()) {
          const loc = decodeLocation(value)
          if (loc.pack !== pack) continue
          const bytes = Buffer.allocUnsafe(loc.length)
          await this.handles.use(pack, async h => await h.read(bytes, 0, loc.length, loc.offset))
          // copied first, then re-pointed: readers never see the block missing
          await this.append(key, CID.decode(base32upper.decoder.decode(key)), bytes)
        }
      }
      await this.index.flush()
      this.handles.retire(pack)
      await fs.rm(path.join(this.path, packName(pack)), { force: true })
      this.sizes.delete(pack)
      this.live.delete(pack)
      reclaimed += size - live
      removed++
    }
    return { reclaimedBytes: reclaimed, packsRemoved: removed }
  }
}
