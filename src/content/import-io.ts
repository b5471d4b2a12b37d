/**
 * The I/O around an import into the embedded store: reading files straight into chunk buffers, writing
 * blocks behind the hashing, and listing a folder safely (no links, no special files, nothing escaping).
 */
import type { Dirent } from 'node:fs'
import fs from 'node:fs/promises'
import path from 'node:path'
import type { CID } from 'multiformats/cid'
import { ValidationError } from '../errors.js'
import { throwIfAborted } from './async-utils.js'
import type { LocalBlockstore } from './local-blockstore.js'
import { KUBO_CHUNK_SIZE, type ChunkPool } from './unixfs-layout.js'

/** Blocks an import may have waiting to be written (the hashing runs ahead of the disk by this much). */
export const WRITE_BEHIND_BLOCKS = 64
/** Chunks filled by one read call while adding a file from disk. */
export const READ_SPAN_CHUNKS = 16
/** Read calls in flight while adding a file from disk. */
export const FILE_READ_AHEAD = 2

/**
 * Lets an import hash the next blocks while earlier ones are still being written: `put` returns as
 * soon as the write is started, unless `limit` writes are already in flight (then it waits for one).
 * A written block's buffer goes back to the import's chunk pool. `flush` waits for all and rethrows the
 * first failure.
 */
export class WriteBehind {
  private inFlight = 0
  private readonly waiting: Array<() => void> = []
  private failure: unknown

  constructor (private readonly blocks: LocalBlockstore, private readonly limit: number, private readonly pool?: ChunkPool) {}

  /** `bytes`: the block, or its parts in order (written back to back). */
  async put (cid: CID, bytes: Uint8Array | Uint8Array[]): Promise<void> {
    while (this.failure === undefined && this.inFlight >= this.limit) await new Promise<void>(resolve => this.waiting.push(resolve))
    if (this.failure !== undefined) throw this.failure
    this.inFlight++
    this.blocks.putBlock(cid, bytes).then(
      () => { for (const part of Array.isArray(bytes) ? bytes : [bytes]) this.pool?.release(part) },
      (err: unknown) => { this.failure ??= err }
    ).finally(() => {
      this.inFlight--
      this.waiting.shift()?.()
      if (this.inFlight === 0) for (const wake of this.waiting.splice(0)) wake()
    }).catch(() => {})
  }

  /** Waits for every write, successful or not. */
  async settle (): Promise<void> {
    while (this.inFlight > 0) await new Promise<void>(resolve => this.waiting.push(resolve))
  }

  async flush (): Promise<void> {
    await this.settle()
    if (this.failure !== undefined) throw this.failure
  }
}

/**
 * A file's bytes in KUBO_CHUNK_SIZE pieces read straight into chunk buffers (no copy), several chunks
 * per `readv` call and a few calls ahead: one thread-pool hop per READ_SPAN_CHUNKS chunks instead of one
 * per chunk.
 */
export async function * readFileChunks (file: string, pool: ChunkPool): AsyncGenerator<Uint8Array> {
  const handle = await fs.open(file, 'r')
  try {
    const { size } = await handle.stat()
    const spans: Array<Promise<Uint8Array[]>> = []
    let position = 0
    const next = (): void => {
      if (position >= size) return
      const chunks: Uint8Array[] = []
      const at = position
      while (chunks.length < READ_SPAN_CHUNKS && position < size) {
        const length = Math.min(KUBO_CHUNK_SIZE, size - position)
        chunks.push(pool.allocate(length))
        position += length
      }
      const read = readSpan(handle, file, chunks, at)
      read.catch(() => {})
      spans.push(read)
    }
    for (let i = 0; i < FILE_READ_AHEAD; i++) next()
    try {
      while (spans.length > 0) {
        const chunks = await (spans.shift() as Promise<Uint8Array[]>)
        next()
        yield * chunks
      }
    } finally {
      await Promise.allSettled(spans)
    }
  } finally {
    await handle.close()
  }
}

/** Fills `chunks` from `at` on; a short read continues where it stopped, end of file is an error. */
async function readSpan (handle: fs.FileHandle, file: string, chunks: Uint8Array[], at: number): Promise<Uint8Array[]> {
  const total = chunks.reduce((sum, c) => sum + c.byteLength, 0)
  let got = (await handle.readv(chunks, at)).bytesRead
  while (got < total) {
    // rare (signals, special filesystems): finish chunk by chunk
    let skip = got
    const i = chunks.findIndex(c => { if (skip < c.byteLength) return true; skip -= c.byteLength; return false })
    const { bytesRead } = await handle.read(chunks[i], skip, chunks[i].byteLength - skip, at + got)
    if (bytesRead === 0) throw new ValidationError(`${file} shrank while it was being added`, [{ path: 'file', message: 'changed during add' }], { context: { file } })
    got += bytesRead
  }
  return chunks
}

export interface FolderEntry {
  relative: string
  /** Undefined for directories. */
  size?: number
}

/** Lists a folder recursively (files and empty-or-not directories), refusing links and special files. */
export async function listFolder (root: string, signal?: AbortSignal): Promise<FolderEntry[]> {
  const out: FolderEntry[] = []
  async function visit (dir: string): Promise<void> {
    throwIfAborted(signal, 'addDirectory')
    const children: Dirent[] = await fs.readdir(dir, { withFileTypes: true })
    children.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    for (const child of children) {
      const full = path.join(dir, child.name)
      const relative = path.relative(root, full)
      // `..` as a whole segment leaves the folder; a name that merely starts with dots (`..hidden`, `...`) does not
      const escapes = relative === '..' || relative.startsWith(`..${path.sep}`) || path.isAbsolute(relative)
      if (relative === '' || escapes || child.name.includes('/') || child.name === '.' || child.name === '..') {
        throw ValidationError.field('folder', `${full} escapes ${root}`, { file: full })
      }
      const posix = relative.split(path.sep).join('/')
      if (child.isSymbolicLink()) throw ValidationError.field('folder', `${full} is a symbolic link (refused)`, { file: full })
      if (child.isDirectory()) {
        out.push({ relative: posix })
        await visit(full)
      } else if (child.isFile()) {
        const stat = await fs.lstat(full)
        out.push({ relative: posix, size: stat.size })
      } else {
        throw ValidationError.field('folder', `${full} is not a regular file or directory (refused)`, { file: full })
      }
    }
  }
  await visit(root)
  return out
}
