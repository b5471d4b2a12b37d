/**
 * Streams the content of a UnixFS file (or a raw block) from any verified block source, with a bounded
 * read-ahead: at most `readAhead` blocks per DAG level are fetched ahead of the consumer, so catting a
 * 1 GiB file holds a few MiB, not the file (ipfs-unixfs-exporter's content() pushes into an unbounded
 * queue). Directories and paths are resolved with ipfs-unixfs-exporter (`resolveIpfsPath`).
 */
import * as dagPb from '@ipld/dag-pb'
import { UnixFS } from 'ipfs-unixfs'
import type { CID } from 'multiformats/cid'
import { ContentVerificationError, NotFoundError, ValidationError } from '../errors.js'
import { DAG_PB_CODE, RAW_CODE, identityBytes } from './cid.js'
import { mapOrdered, throwIfAborted } from './async-utils.js'
import type { AbortOptions, ProgressOptions } from './content-store.js'

/** Returns a block's bytes, already verified against its CID (identity CIDs never reach it). */
export type BlockGetter = (cid: CID, options?: AbortOptions) => Promise<Uint8Array>

export interface ReadFileOptions extends ProgressOptions {
  /** Blocks fetched ahead of the consumer at each level of the DAG (default 8). */
  readAhead?: number
  /** First byte to return (default 0); blocks wholly before it are not fetched. */
  offset?: number
  /** Bytes to return from `offset` (default: to the end). */
  length?: number
}

export const DEFAULT_READ_AHEAD = 8

export type UnixfsEntryType = 'file' | 'raw' | 'directory' | 'hamt-sharded-directory' | 'symlink' | 'metadata'

interface Decoded {
  /** Bytes of this node itself (raw leaf, or the UnixFS data field). */
  data?: Uint8Array
  /** Children in order with the file bytes each holds. */
  children: Array<{ cid: CID, size: bigint }>
  type: UnixfsEntryType
  fileSize: bigint
}

function malformed (cid: CID, why: string, cause?: unknown): ContentVerificationError {
  return new ContentVerificationError(`${cid.toString()} is not a well-formed UnixFS file: ${why}`, { cause, context: { cid: cid.toString() } })
}

function decodeNode (cid: CID, bytes: Uint8Array): Decoded {
  if (cid.code === RAW_CODE) return { data: bytes, children: [], type: 'raw', fileSize: BigInt(bytes.byteLength) }
  if (cid.code !== DAG_PB_CODE) throw malformed(cid, `codec 0x${cid.code.toString(16)} is not dag-pb or raw`)
  let node: dagPb.PBNode
  let unixfs: UnixFS
  try {
    node = dagPb.decode(bytes)
    if (node.Data === undefined) throw new Error('no Data field')
    unixfs = UnixFS.unmarshal(node.Data)
  } catch (cause) {
    throw malformed(cid, (cause as Error).message, cause)
  }
  const type = unixfs.type as UnixfsEntryType
  if (type !== 'file' && type !== 'raw') {
    return { children: [], type, fileSize: 0n }
  }
  if (node.Links.length !== unixfs.blockSizes.length) throw malformed(cid, 'links and block sizes differ in number')
  const children = node.Links.map((link, i) => ({ cid: link.Hash, size: unixfs.blockSizes[i] }))
  return { data: unixfs.data, children, type, fileSize: unixfs.fileSize() }
}

async function fetchBlock (cid: CID, getBlock: BlockGetter, options?: AbortOptions): Promise<Uint8Array> {
  return identityBytes(cid) ?? await getBlock(cid, options)
}

/** The type and size of the entry at `cid` (one block read). */
export async function statUnixfs (cid: CID, getBlock: BlockGetter, options?: AbortOptions): Promise<{ type: UnixfsEntryType, size: bigint }> {
  const node = decodeNode(cid, await fetchBlock(cid, getBlock, options))
  return { type: node.type, size: node.fileSize }
}

/**
 * Streams the bytes of the UnixFS file (or raw block) `cid`. Every block comes through `getBlock`
 * (verified there); the structure is checked as it is walked (sizes must add up).
 */
export async function * readUnixfsFile (cid: CID, getBlock: BlockGetter, options: ReadFileOptions = {}): AsyncGenerator<Uint8Array> {
  const readAhead = Math.max(1, options.readAhead ?? DEFAULT_READ_AHEAD)
  const root = decodeNode(cid, await fetchBlock(cid, getBlock, options))
  if (root.type !== 'file' && root.type !== 'raw') {
    throw ValidationError.field('cid', `${cid.toString()} is a ${root.type}, not a file`, { cid: cid.toString(), type: root.type })
  }
  const size = root.fileSize
  const start = BigInt(Math.max(0, options.offset ?? 0))
  const end = options.length === undefined ? size : min(size, start + BigInt(Math.max(0, options.length)))
  const total = end > start ? end - start : 0n
  let sent = 0
  options.onProgress?.({ bytes: 0, total: Number(total) })
  if (total === 0n) return

  /** Yields the wanted part of `node`, which holds file bytes [at, at + expected). */
  async function * walk (nodeCid: CID, node: Decoded, at: bigint, expected: bigint): AsyncGenerator<Uint8Array> {
    let position = at
    if (node.data !== undefined && node.data.byteLength > 0) {
      const next = position + BigInt(node.data.byteLength)
      const piece = slice(node.data, position, start, end)
      if (piece.byteLength > 0) yield piece
      position = next
    }
    if (node.children.length > 0) {
      // only the children overlapping [start, end) are fetched
      const wanted: Array<{ cid: CID, size: bigint, at: bigint }> = []
      for (const child of node.children) {
        if (position + child.size > start && position < end) wanted.push({ ...child, at: position })
        position += child.size
      }
      const children = mapOrdered(wanted, readAhead, async (child) => {
        throwIfAborted(options.signal, 'cat')
        return { ...child, bytes: await fetchBlock(child.cid, getBlock, options) }
      })
      for await (const child of children) {
        const decoded = decodeNode(child.cid, child.bytes)
        if (decoded.type !== 'file' && decoded.type !== 'raw') throw malformed(nodeCid, `child ${child.cid.toString()} is a ${decoded.type}`)
        yield * walk(child.cid, decoded, child.at, child.size)
      }
    }
    if (position - at !== expected) {
      throw malformed(nodeCid, `holds ${position - at} bytes where its parent says ${expected}`)
    }
  }

  for await (const piece of walk(cid, root, 0n, size)) {
    throwIfAborted(options.signal, 'cat')
    sent += piece.byteLength
    options.onProgress?.({ bytes: sent, total: Number(total) })
    yield piece
  }
  if (BigInt(sent) !== total) throw malformed(cid, `gave ${sent} bytes where ${total} were expected`)
}

function min (a: bigint, b: bigint): bigint {
  return a < b ? a : b
}

/** The part of `data` (file bytes [at, at + length)) inside [start, end). */
function slice (data: Uint8Array, at: bigint, start: bigint, end: bigint): Uint8Array {
  const from = start > at ? Number(start - at) : 0
  const to = end < at + BigInt(data.byteLength) ? Number(end - at) : data.byteLength
  return from === 0 && to === data.byteLength ? data : data.subarray(from, Math.max(from, to))
}

export interface DagBlock {
  cid: CID
  bytes: Uint8Array
}

/**
 * Every block of the DAG below `cid` in depth-first pre-order, duplicates included (the order of a
 * trustless gateway's `?format=car` with `order=dfs; dups=y`). `scope: 'block'` gives the root only;
 * `'entity'` stops below directories (their entries are other entities) but walks files whole.
 */
/** The CIDs a block links to: a dag-pb node's links, none for a raw block. */
export function blockLinks (cid: CID, bytes: Uint8Array): CID[] {
  return cid.code === DAG_PB_CODE ? dagPb.decode(bytes).Links.map(l => l.Hash) : []
}

export async function * walkDag (cid: CID, getBlock: BlockGetter, options: AbortOptions & { scope?: 'all' | 'entity' | 'block', readAhead?: number } = {}): AsyncGenerator<DagBlock> {
  const readAhead = Math.max(1, options.readAhead ?? DEFAULT_READ_AHEAD)
  const scope = options.scope ?? 'all'
  async function * visit (block: DagBlock, depth: number): AsyncGenerator<DagBlock> {
    yield block
    if (scope === 'block' || block.cid.code !== DAG_PB_CODE) return
    const node = dagPb.decode(block.bytes)
    let links = node.Links
    if (scope === 'entity' && node.Data !== undefined) {
      const unixfs = UnixFS.unmarshal(node.Data)
      // A directory's entity is what lists it: a plain directory's own block; a HAMT's root and its
      // sub-shards (links named by the bucket prefix alone), never the entries' contents.
      if (unixfs.type === 'directory') return
      if (unixfs.type === 'hamt-sharded-directory') {
        const prefixLength = (Number(unixfs.fanout ?? 256n) - 1).toString(16).length
        links = links.filter(link => (link.Name ?? '').length === prefixLength)
      }
    }
    const children = mapOrdered(links, readAhead, async (link) => {
      throwIfAborted(options.signal, 'walk')
      return { cid: link.Hash, bytes: await fetchBlock(link.Hash, getBlock, options) }
    })
    for await (const child of children) yield * visit(child, depth + 1)
  }
  yield * visit({ cid, bytes: await fetchBlock(cid, getBlock, options) }, 0)
}

/**
 * The CID at `path` below `cid` (`''` gives `cid`), walking UnixFS directories (plain and HAMT-sharded)
 * with ipfs-unixfs-exporter's path walker over `getBlock`. A missing name is a NotFoundError whose
 * context names the `link` that is missing, and so is any segment left below a file (`dir/file/x`: the
 * walker alone stops at the file and would answer it). Such a miss is definite: the directory blocks
 * were verified, so every store holding them would say the same.
 */
export async function resolveIpfsPath (cid: CID, path: string, getBlock: BlockGetter, options: AbortOptions = {}): Promise<CID> {
  if (path === '') return cid
  const { walkPath } = await import('ipfs-unixfs-exporter')
  const storage = {
    get: (c: CID, opts?: AbortOptions) => (async function * () { yield await fetchBlock(c, getBlock, opts) })()
  }
  const missing = (link: string, under: string, cause?: unknown): NotFoundError =>
    new NotFoundError(`${cid.toString()}/${path} does not exist: no link named ${JSON.stringify(link)} under ${under}`,
      { cause, context: { cid: cid.toString(), path, link } })
  let last: { cid: CID, path: string, remainder: string[] } | undefined
  try {
    for await (const entry of walkPath(`${cid.toString()}/${path}`, storage, { signal: options.signal })) last = entry
  } catch (err) {
    const name = (err as Error)?.name
    if (name === 'NotFoundError' && !(err instanceof NotFoundError)) {
      const link = (last?.remainder[0] ?? path.split('/')[0])
      throw missing(link, last?.path ?? cid.toString(), err)
    }
    // The walker reads a multi-block file's node as if it were a directory when segments are left
    // below it: those segments name links a file does not have.
    if (name === 'NotUnixFSError' && last !== undefined && last.remainder.length > 0 && await isFileNode(last.cid, getBlock, options)) {
      throw missing(last.remainder[0], last.path, err)
    }
    if (name === 'NotUnixFSError' || name === 'NoResolverError' || name === 'BadPathError') {
      throw ValidationError.field('cid', `cannot resolve ${path} below ${cid.toString()}: ${(err as Error).message}`, { cid: cid.toString(), path })
    }
    throw err
  }
  if (last === undefined) throw missing(path.split('/')[0], cid.toString())
  // the walker stops at a file (or raw block) with segments left: they name links a file does not have
  if (last.remainder.length > 0) throw missing(last.remainder[0], last.path)
  return last.cid
}

/** Whether `cid` is a UnixFS file (a raw block, or a dag-pb node of type file or raw). */
async function isFileNode (cid: CID, getBlock: BlockGetter, options: AbortOptions): Promise<boolean> {
  if (cid.code === RAW_CODE) return true
  if (cid.code !== DAG_PB_CODE) return false
  try {
    const node = dagPb.decode(await fetchBlock(cid, getBlock, options))
    if (node.Data === undefined) return false
    const type = UnixFS.unmarshal(node.Data).type
    return type === 'file' || type === 'raw'
  } catch {
    return false
  }
}
