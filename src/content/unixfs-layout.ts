/**
 * Importer options that reproduce Kubo's `ipfs add` CIDs exactly:
 * - `cidVersion: 0` (Kubo's default): CIDv0, dag-pb leaves wrapping the data in UnixFS `file` nodes,
 * - `cidVersion: 1` (`ipfs add --cid-version 1`): CIDv1, raw leaves,
 * both with 256 KiB fixed-size chunks and a balanced DAG of at most 174 links per node; a file that
 * fits one chunk is that single leaf.
 *
 * The chunker and leaf builder here replace ipfs-unixfs-importer's defaults (same bytes, fewer copies):
 * chunks are cut into buffers that leave room for the dag-pb/UnixFS header and trailer, so a CIDv0 leaf
 * is encoded in place (the default copies each chunk twice: UnixFS marshal, then dag-pb encode); the
 * leaves of a Uint8Array given whole are views of it (no copy at all: a CIDv0 leaf is then hashed and
 * written as [header, view, trailer]). Each leaf is hashed once.
 */
import { createHash } from 'node:crypto'
import * as dagPb from '@ipld/dag-pb'
import { UnixFS } from 'ipfs-unixfs'
import { balanced } from 'ipfs-unixfs-importer/layout'
import type { BufferImporter, ImporterOptions } from 'ipfs-unixfs-importer'
import type { Chunker } from 'ipfs-unixfs-importer/chunker'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { DAG_PB_CODE, RAW_CODE, SHA2_256_CODE } from './cid.js'

/** Kubo's `--chunker size-262144`. */
export const KUBO_CHUNK_SIZE = 262_144
/** Kubo's balanced layout: links per node (helpers.DefaultLinksPerBlock). */
export const KUBO_MAX_CHILDREN = 174
/** Leaves hashed concurrently by the importer (each hash is synchronous; this only bounds the batch). */
export const DEFAULT_BLOCK_WRITE_CONCURRENCY = 16

export type CidVersion = 0 | 1

/** Room kept before a chunk for the dag-pb Data tag + length, UnixFS Type and Data tag + length. */
const HEADER_RESERVE = 16
/** Room kept after a chunk for the UnixFS filesize field. */
const TRAILER_RESERVE = 11

/** Chunks whose buffer has HEADER_RESERVE/TRAILER_RESERVE bytes around them, free to overwrite. */
const reserved = new WeakSet<Uint8Array>()

/** Size of the buffers a ChunkPool hands out: one chunk plus the room around it. */
const POOLED_BYTES = HEADER_RESERVE + KUBO_CHUNK_SIZE + TRAILER_RESERVE

/**
 * Chunk buffers for one import, reused once their block is written (`release`): a 256 MiB add then
 * touches a few MiB of fresh memory instead of 256 MiB (fresh pages cost page faults and GC work).
 */
export class ChunkPool {
  private readonly free: ArrayBuffer[] = []
  private readonly mine = new WeakSet<ArrayBufferLike>()
  private readonly freed = new WeakSet<ArrayBufferLike>()

  constructor (private readonly keep = 64) {}

  /** A chunk buffer of `size` bytes with room around it for an in-place CIDv0 leaf. */
  allocate (size: number): Uint8Array {
    let buffer: ArrayBuffer
    if (size <= KUBO_CHUNK_SIZE) {
      const reused = this.free.pop()
      if (reused !== undefined) {
        this.freed.delete(reused)
        buffer = reused
      } else {
        buffer = new ArrayBuffer(POOLED_BYTES)
        this.mine.add(buffer)
      }
    } else {
      buffer = new ArrayBuffer(HEADER_RESERVE + size + TRAILER_RESERVE)
    }
    const chunk = new Uint8Array(buffer, HEADER_RESERVE, size)
    reserved.add(chunk)
    return chunk
  }

  /** Takes back the buffer under `bytes` (a chunk or the leaf built around it) once nothing reads it. */
  release (bytes: Uint8Array): void {
    const buffer = bytes.buffer
    if (!this.mine.has(buffer) || this.freed.has(buffer) || this.free.length >= this.keep) return
    this.freed.add(buffer)
    this.free.push(buffer as ArrayBuffer)
  }
}

/** A chunk buffer of `size` bytes with room around it for an in-place CIDv0 leaf (not pooled). */
export function allocateChunk (size: number): Uint8Array {
  const chunk = new Uint8Array(new ArrayBuffer(HEADER_RESERVE + size + TRAILER_RESERVE), HEADER_RESERVE, size)
  reserved.add(chunk)
  return chunk
}

/**
 * Zeros whose only use is their length: the importer reads a leaf's `unixfs.data` for its length alone
 * (block sizes of the parent), so leaves carry a view of this instead of their chunk, which lets the
 * chunk's buffer be reused as soon as the block is written. (It would only matter if a file had mtime or
 * mode, which these options never set.)
 */
const LENGTH_ONLY = new Uint8Array(KUBO_CHUNK_SIZE)

function varintLength (n: number): number {
  let len = 1
  while (n >= 0x80) { n = Math.floor(n / 0x80); len++ }
  return len
}

function writeVarint (out: Uint8Array, offset: number, n: number): number {
  while (n >= 0x80) {
    out[offset++] = (n & 0x7f) | 0x80
    n = Math.floor(n / 0x80)
  }
  out[offset++] = n
  return offset
}

/**
 * The dag-pb block of a UnixFS `file` leaf holding `data` (what `dagPb.encode({ Data: new UnixFS({ type:
 * 'file', data }).marshal(), Links: [] })` gives) as the parts to hash and write in order: one part
 * built around `data` in place when it was allocated with room around it (a pool chunk) and the room
 * suffices, else [header, data, trailer], which leaves `data` where it is (no copy of 256 KiB per leaf).
 */
export function fileLeafParts (data: Uint8Array): Uint8Array[] {
  const n = data.byteLength
  // UnixFS: Type=File (08 02), Data (12 len bytes) when non-empty, filesize (18 varint)
  const unixfsLength = 2 + (n > 0 ? 1 + varintLength(n) + n : 0) + 1 + varintLength(n)
  const headerLength = 1 + varintLength(unixfsLength) + 2 + (n > 0 ? 1 + varintLength(n) : 0)
  const trailerLength = 1 + varintLength(n)
  const inPlace = reserved.has(data) && headerLength <= HEADER_RESERVE && trailerLength <= TRAILER_RESERVE
  if (inPlace) reserved.delete(data) // encoded once; a second encode must not overwrite the first
  const header = inPlace ? new Uint8Array(data.buffer, data.byteOffset - headerLength, headerLength) : new Uint8Array(headerLength)
  const trailer = inPlace ? new Uint8Array(data.buffer, data.byteOffset + n, trailerLength) : new Uint8Array(trailerLength)
  let o = 0
  header[o++] = 0x0a
  o = writeVarint(header, o, unixfsLength)
  header[o++] = 0x08
  header[o++] = 0x02
  if (n > 0) {
    header[o++] = 0x12
    writeVarint(header, o, n)
  }
  trailer[0] = 0x18
  writeVarint(trailer, 1, n)
  if (inPlace) return [new Uint8Array(data.buffer, data.byteOffset - headerLength, headerLength + n + trailerLength)]
  return [header, data, trailer]
}

/** `fileLeafParts` as one block (copied together unless it was built in place). */
export function encodeFileLeaf (data: Uint8Array): Uint8Array {
  const parts = fileLeafParts(data)
  return parts.length === 1 ? parts[0] : concatParts(parts)
}

export function concatParts (parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, p) => sum + p.byteLength, 0))
  let o = 0
  for (const p of parts) {
    out.set(p, o)
    o += p.byteLength
  }
  return out
}

/** A blockstore that takes a block as parts written back to back (the import's sink does). */
export interface PartsSink {
  putParts: (cid: CID, parts: Uint8Array[]) => Promise<unknown>
}

function takesParts (blockstore: unknown): blockstore is PartsSink {
  return typeof (blockstore as Partial<PartsSink>).putParts === 'function'
}

function rawLeafCid (block: Uint8Array): CID {
  return CID.createV1(RAW_CODE, Digest.create(SHA2_256_CODE, createHash('sha256').update(block).digest()))
}

/** Fixed-size chunks of `chunkSize`, cut into pool buffers; aligned input passes through. */
export function kuboChunker (chunkSize = KUBO_CHUNK_SIZE, passThrough: (piece: Uint8Array) => boolean = () => false, pool?: ChunkPool): Chunker {
  const allocate = (size: number): Uint8Array => pool?.allocate(size) ?? allocateChunk(size)
  return async function * chunker (source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
    let current: Uint8Array | undefined
    let filled = 0
    let emitted = false
    for await (const input of source) {
      let offset = 0
      while (offset < input.byteLength) {
        if (filled === 0 && input.byteLength - offset >= chunkSize) {
          const piece = input.subarray(offset, offset + chunkSize)
          if ((offset === 0 && input.byteLength === chunkSize && reserved.has(input)) || passThrough(piece)) {
            yield offset === 0 && input.byteLength === chunkSize ? input : piece
            emitted = true
            offset += chunkSize
            continue
          }
        }
        current ??= allocate(chunkSize)
        const take = Math.min(chunkSize - filled, input.byteLength - offset)
        current.set(input.subarray(offset, offset + take), filled)
        filled += take
        offset += take
        if (filled === chunkSize) {
          yield current
          emitted = true
          current = undefined
          filled = 0
        }
      }
    }
    if (filled > 0 || !emitted) {
      // the last, short chunk (or the single empty chunk of an empty file)
      let last: Uint8Array
      if (current === undefined) {
        last = allocate(0)
      } else {
        last = current.subarray(0, filled) // the room after it is the unused rest of the buffer
        reserved.add(last)
      }
      yield last
    }
  }
}

/** Leaves as Kubo builds them: dag-pb UnixFS `file` nodes for CIDv0, raw blocks for CIDv1. */
export function kuboBufferImporter (cidVersion: CidVersion): BufferImporter {
  return async function * bufferImporter (file, blockstore) {
    for await (const chunk of file.content) {
      yield async () => {
        if (cidVersion === 1) {
          const cid = rawLeafCid(chunk)
          await blockstore.put(cid, chunk)
          return { cid, size: BigInt(chunk.byteLength), block: chunk }
        }
        const parts = fileLeafParts(chunk)
        const hash = createHash('sha256')
        for (const part of parts) hash.update(part)
        const cid = CID.createV0(Digest.create(SHA2_256_CODE, hash.digest()))
        const block = parts.length === 1 ? parts[0] : takesParts(blockstore) ? undefined : concatParts(parts)
        if (block !== undefined) await blockstore.put(cid, block)
        else await (blockstore as unknown as PartsSink).putParts(cid, parts)
        const size = parts.reduce((sum, p) => sum + p.byteLength, 0)
        const data = chunk.byteLength <= LENGTH_ONLY.byteLength ? LENGTH_ONLY.subarray(0, chunk.byteLength) : chunk
        // the importer reads `block` only to re-encode a lone leaf that carries mtime or mode, which these
        // imports never set: the data stands in when the block exists only as parts
        return { cid, size: BigInt(size), block: block ?? chunk, unixfs: new UnixFS({ type: 'file', data }) }
      }
    }
  }
}

/**
 * Importer options for `ipfs add` (v0) or `ipfs add --cid-version 1` (v1). With a `pool`, chunks come from
 * it and the blockstore should `pool.release(block)` once a block is written. `inputStays`: the input's
 * buffers stay untouched until the import has ended (a Uint8Array given to `put`), so leaves may be
 * views of them; a stream's buffers might be reused by its producer, so they are copied.
 */
export function kuboImporterOptions (cidVersion: CidVersion, pool?: ChunkPool, inputStays = false): ImporterOptions {
  return {
    cidVersion,
    rawLeaves: cidVersion === 1,
    leafType: 'file',
    reduceSingleLeafToSelf: true,
    chunker: kuboChunker(KUBO_CHUNK_SIZE, () => inputStays, pool),
    bufferImporter: kuboBufferImporter(cidVersion),
    layout: balanced({ maxChildrenPerNode: KUBO_MAX_CHILDREN }),
    fieldOrder: 'links-first',
    wrapWithDirectory: false,
    blockWriteConcurrency: DEFAULT_BLOCK_WRITE_CONCURRENCY
  }
}

/** The importer's own defaults with Kubo's parameters (no in-place encoding): the reference for tests. */
export async function referenceImporterOptions (cidVersion: CidVersion): Promise<ImporterOptions> {
  const { fixedSize } = await import('ipfs-unixfs-importer/chunker')
  return {
    cidVersion,
    rawLeaves: cidVersion === 1,
    reduceSingleLeafToSelf: true,
    chunker: fixedSize({ chunkSize: KUBO_CHUNK_SIZE }),
    layout: balanced({ maxChildrenPerNode: KUBO_MAX_CHILDREN })
  }
}

/** The CID and block size of an empty UnixFS directory, as `ipfs add` makes it for this CID version. */
export function emptyDirectory (cidVersion: CidVersion): { cid: CID, size: number } {
  const block = dagPb.encode({ Data: new UnixFS({ type: 'directory' }).marshal(), Links: [] })
  const digest = Digest.create(SHA2_256_CODE, createHash('sha256').update(block).digest())
  return { cid: cidVersion === 0 ? CID.createV0(digest) : CID.createV1(DAG_PB_CODE, digest), size: block.byteLength }
}
