/**
 * A filesystem blockstore with blockstore-fs's on-disk layout (`<root>/<last 2 chars>/<BASE32UPPER
 * multihash>.data`, so a repository written by either can be read by the other) but a faster I/O path:
 * - get reads a whole block with one `readFile` (blockstore-fs streams it in 64 KiB pieces),
 * - get verifies the bytes against the CID by default (a corrupt file is a ContentVerificationError,
 *   never silently served),
 * - put writes a temporary file and renames it into place (atomic), creating each shard folder once,
 *   and joins concurrent writes of the same block.
 * It implements interface-blockstore, so Helia (pins, gc) uses it directly.
 */
import fs from 'node:fs/promises'
import path from 'node:path'
import type { AbortOptions } from './content-store.js'
import type { Blockstore, InputPair, Pair } from 'interface-blockstore'
import { base32upper } from 'multiformats/bases/base32'
import { CID } from 'multiformats/cid'
import { NotFoundError } from '../errors.js'
import { verifyBlock } from './cid.js'
import { concatParts } from './unixfs-layout.js'
import { collectBytes, mapOrdered, throwIfAborted } from './async-utils.js'
import { makeDirectory } from './make-directory.js'

export interface FastFsBlockstoreInit {
  /** Hash every block read and compare it with its CID (default true). */
  verifyOnRead?: boolean
  /** Concurrency of putMany/getMany/deleteMany (default 16). */
  concurrency?: number
  /** Runs first when the store opens (HeliaStore takes the repository lock there). */
  prepare?: () => Promise<void>
}

const EXTENSION = '.data'
const BASE32_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'
const PREFIX_LENGTH = 2

let tmpCounter = 0

function isNodeError (err: unknown, code: string): boolean {
  return (err as NodeJS.ErrnoException)?.code === code
}

export class FastFsBlockstore implements Blockstore {
  readonly path: string
  readonly verifyOnRead: boolean
  private readonly concurrency: number
  private readonly knownDirs = new Set<string>()
  private readonly writing = new Map<string, Promise<void>>()
  private readonly prepare: (() => Promise<void>) | undefined
  private opening: Promise<void> | undefined
  private opened = false
  private closed = false

  constructor (location: string, init: FastFsBlockstoreInit = {}) {
    this.path = path.resolve(location)
    this.verifyOnRead = init.verifyOnRead ?? true
    this.concurrency = init.concurrency ?? 16
    this.prepare = init.prepare
  }

  /** Opens the store (once); every other method opens it on first use. */
  async open (): Promise<void> {
    if (this.closed) throw new Error(`FastFsBlockstore ${this.path} is closed`)
    this.opening ??= this.load()
    try {
      await this.opening
      this.opened = true
    } catch (err) {
      this.opening = undefined
      throw err
    }
  }

  private async ready (): Promise<void> {
    if (!this.opened) await this.open()
  }

  /**
   * Creates the repository folder and the 128 shard folders sha2-256 blocks land in (the last base32
   * character of a 34-byte multihash carries 2 bits: A, I, Q or Y). Creating them up front, once, matters
   * on ext4: a file written into a folder created just before it was measured 10x slower to write.
   */
  private async load (): Promise<void> {
    await this.prepare?.()
    await makeDirectory(this.path)
    const present = new Set(await fs.readdir(this.path))
    const missing: string[] = []
    for (const a of BASE32_ALPHABET) {
      for (const b of 'AIQY') if (!present.has(a + b)) missing.push(a + b)
    }
    await Promise.all(missing.map(async name => await fs.mkdir(path.join(this.path, name)).catch((err: unknown) => {
      if (!isNodeError(err, 'EEXIST')) throw err
    })))
    for (const name of [...present, ...missing]) this.knownDirs.add(path.join(this.path, name))
  }

  async close (): Promise<void> {
    this.closed = true
    await this.opening?.catch(() => {})
    await Promise.allSettled(this.writing.values())
  }

  /** Where a block lives on disk (the multihash decides, as in blockstore-fs). */
  locate (cid: CID): { dir: string, file: string } {
    const name = base32upper.encoder.encode(cid.multihash.bytes)
    const dir = path.join(this.path, name.substring(name.length - PREFIX_LENGTH))
    return { dir, file: path.join(dir, name + EXTENSION) }
  }

  /** Where a block's bytes are (for tools and tests), or undefined. */
  async where (cid: CID): Promise<{ file: string, offset: number, length: number } | undefined> {
    const { file } = this.locate(cid)
    try {
      return { file, offset: 0, length: (await fs.stat(file)).size }
    } catch {
      return undefined
    }
  }

  /** Stores one block. The caller vouches that `bytes` match `cid` (the importer hashed them). */
  async put (cid: CID, bytes: Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>, options?: AbortOptions): Promise<CID> {
    throwIfAborted(options?.signal, 'put')
    const block = bytes instanceof Uint8Array ? bytes : await collectBytes(bytes)
    await this.putBlock(cid, block)
    return cid
  }

  /** Same as put with a Uint8Array, without the generality. */
  async putBlock (cid: CID, bytes: Uint8Array | Uint8Array[]): Promise<void> {
    await this.ready()
    const block = Array.isArray(bytes) ? concatParts(bytes) : bytes
    const { dir, file } = this.locate(cid)
    const inFlight = this.writing.get(file)
    if (inFlight !== undefined) return await inFlight
    const write = this.write(dir, file, block).finally(() => this.writing.delete(file))
    this.writing.set(file, write)
    await write
  }

  private async write (dir: string, file: string, block: Uint8Array): Promise<void> {
    if (!this.knownDirs.has(dir)) {
      await makeDirectory(dir)
      this.knownDirs.add(dir)
    }
    const tmp = `${file}.${process.pid}-${++tmpCounter}.tmp`
    try {
      await fs.writeFile(tmp, block)
      await fs.rename(tmp, file)
    } catch (err) {
      await fs.rm(tmp, { force: true }).catch(() => {})
      if (isNodeError(err, 'ENOENT')) {
        // the shard folder was removed behind our back: forget it and try once more
        this.knownDirs.delete(dir)
        await makeDirectory(dir)
        await fs.writeFile(tmp, block)
        await fs.rename(tmp, file)
        this.knownDirs.add(dir)
        return
      }
      throw err
    }
  }

  /** Nothing to do: a put resolves once its file is renamed into place. */
  async flush (): Promise<void> {}

  async * putMany (source: Iterable<InputPair> | AsyncIterable<InputPair>, options?: AbortOptions): AsyncGenerator<CID> {
    yield * mapOrdered(source, this.concurrency, async ({ cid, bytes }) => await this.put(cid, bytes, options))
  }

  /** One whole block, verified unless `verifyOnRead` is false. NotFoundError when absent. */
  async getBlock (cid: CID, options?: AbortOptions): Promise<Uint8Array> {
    throwIfAborted(options?.signal, 'get')
    await this.ready()
    const { file } = this.locate(cid)
    const inFlight = this.writing.get(file)
    if (inFlight !== undefined) await inFlight
    let bytes: Uint8Array
    try {
      bytes = await fs.readFile(file, { signal: options?.signal })
    } catch (err) {
      if (isNodeError(err, 'ENOENT')) {
        throw new NotFoundError(`block ${cid.toString()} is not in the local store`, { context: { cid: cid.toString() } })
      }
      if ((err as Error).name === 'AbortError') throwIfAborted(options?.signal, 'get')
      throw err
    }
    if (this.verifyOnRead) verifyBlock(cid, bytes, `local store ${file}`)
    return bytes
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
    const { file } = this.locate(cid)
    if (this.writing.has(file)) return true
    try {
      await fs.access(file)
      return true
    } catch {
      return false
    }
  }

  async delete (cid: CID, options?: AbortOptions): Promise<void> {
    throwIfAborted(options?.signal, 'delete')
    await this.ready()
    const { file } = this.locate(cid)
    try {
      await fs.unlink(file)
    } catch (err) {
      if (!isNodeError(err, 'ENOENT')) throw err
    }
  }

  async * deleteMany (source: Iterable<CID> | AsyncIterable<CID>, options?: AbortOptions): AsyncGenerator<CID> {
    yield * mapOrdered(source, this.concurrency, async (cid) => { await this.delete(cid, options); return cid })
  }

  /** Every stored block (as CIDv0/CIDv1-raw-agnostic keys: the CID is rebuilt from the multihash, as blockstore-fs does). */
  async * getAll (options?: AbortOptions): AsyncGenerator<Pair> {
    for await (const { cid, file } of this.list(options)) {
      const verify = this.verifyOnRead
      yield {
        cid,
        bytes: (async function * () {
          const bytes = await fs.readFile(file)
          if (verify) verifyBlock(cid, bytes, `local store ${file}`)
          yield bytes
        })()
      }
    }
  }

  /** Every stored block's key and file, without reading the blocks. */
  async * list (options?: AbortOptions): AsyncGenerator<{ cid: CID, file: string }> {
    await this.ready()
    let shards: string[]
    try {
      shards = await fs.readdir(this.path)
    } catch (err) {
      if (isNodeError(err, 'ENOENT')) return
      throw err
    }
    for (const shard of shards.sort()) {
      throwIfAborted(options?.signal, 'list')
      let names: string[]
      try {
        names = await fs.readdir(path.join(this.path, shard))
      } catch (err) {
        if (isNodeError(err, 'ENOENT') || isNodeError(err, 'ENOTDIR')) continue
        throw err
      }
      for (const name of names) {
        if (!name.endsWith(EXTENSION)) continue
        let cid: CID
        try {
          cid = CID.decode(base32upper.decoder.decode(name.slice(0, -EXTENSION.length)))
        } catch {
          continue // not a block file
        }
        yield { cid, file: path.join(this.path, shard, name) }
      }
    }
  }
}
