/**
 * The I/O around an import into the embedded store: reading files straight into chunk buffers, writing
 * blocks behind the hashing, and listing a folder safely (no links, no special files, nothing escaping).
 */
import type { Dirent } from 'node:fs'
import fs from 'node:fs/promises'
import path from 'node:path'
import * as dagPb from '@ipld/dag-pb'
import type { CID } from 'multiformats/cid'
import { ValidationError } from '../errors.js'
import { throwIfAborted } from './async-utils.js'
import type { LocalBlockstore } from './local-blockstore.js'
import { KUBO_CHUNK_SIZE, type ChunkPool } from './unixfs-layout.js'

/** Blocks an import may have waiting to be written (the hashing runs ahead of the disk by this much). */
export const WRITE_BEHIND_BLOCKS = 32
/** Chunk reads in flight while adding a file from disk. */
export const FILE_READ_AHEAD = 4

export function linksOf (bytes: Uint8Array): CID[] {
  return dagPb.decode(bytes).Links.map(l => l.Hash)
}

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

  async put (cid: CID, bytes: Uint8Array): Promise<void> {
    while (this.failure === undefined && this.inFlight >= this.limit) await new Promise<void>(resolve => this.waiting.push(resolve))
    if (this.failure !== undefined) throw this.failure
    this.inFlight++
    this.blocks.putBlock(cid, bytes).then(
      () => this.pool?.release(bytes),
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

/** A file's bytes in KUBO_CHUNK_SIZE pieces read straight into chunk buffers (no copy), a few reads ahead. */
export async function * readFileChunks (file: string, pool: ChunkPool): AsyncGenerator<Uint8Array> {
  const handle = await fs.open(file, 'r')
  try {
    const { size } = await handle.stat()
    const reads: Array<Promise<Uint8Array>> = []
    let position = 0
    const next = (): void => {
      if (position >= size) return
      const length = Math.min(KUBO_CHUNK_SIZE, size - position)
      const chunk = pool.allocate(length)
      const at = position
      position += length
      const read = (async () => {
        let got = 0
        while (got < length) {
          const { bytesRead } = await handle.read(chunk, got, length - got, at + got)
          if (bytesRead === 0) throw new ValidationError(`${file} shrank while it was being added`, [{ path: 'file', message: 'changed during add' }], { context: { file } })
          got += bytesRead
        }
        return chunk
      })()
      read.catch(() => {})
      reads.push(read)
    }
    for (let i = 0; i < FILE_READ_AHEAD; i++) next()
    try {
      while (reads.length > 0) {
        const chunk = await (reads.shift() as Promise<Uint8Array>)
        next()
        yield chunk
      }
    } finally {
      await Promise.allSettled(reads)
    }
  } finally {
    await handle.close()
  }
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
      if (relative === '' || relative.startsWith('..') || path.isAbsolute(relative) || child.name.includes('/') || child.name === '.' || child.name === '..') {
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
