/**
 * The blocks a `?format=car&entity-bytes=from:to` request gets (trustless gateway spec): for a UnixFS
 * file or a raw block, the root and only the blocks holding bytes of the range, depth-first, so a
 * client can verify a byte range without fetching the whole file.
 */
import * as dagPb from '@ipld/dag-pb'
import { UnixFS } from 'ipfs-unixfs'
import type { CID } from 'multiformats/cid'
import { ValidationError } from '../errors.js'
import { DAG_PB_CODE } from '../content/cid.js'
import { walkDag, type BlockGetter } from '../content/unixfs-reader.js'
import type { EntityBytes } from './gateway-request.js'

/**
 * The blocks of `entity-bytes` (trustless gateway spec): for a UnixFS file or raw block, the root and
 * only the blocks that hold bytes of the range, depth-first; for anything else the entity. A range
 * that starts past the end is a 400; an empty one gives the root alone (the client can read the size
 * from it).
 */
export async function * entityBytesBlocks (cid: CID, range: EntityBytes, getBlock: BlockGetter, signal: AbortSignal): AsyncGenerator<{ cid: CID, bytes: Uint8Array }> {
  const root = { cid, bytes: await getBlock(cid, { signal }) }
  let node: dagPb.PBNode | undefined
  let unixfs: UnixFS | undefined
  if (cid.code === DAG_PB_CODE) {
    node = dagPb.decode(root.bytes)
    try { unixfs = node.Data === undefined ? undefined : UnixFS.unmarshal(node.Data) } catch { unixfs = undefined }
    if (unixfs === undefined || (unixfs.type !== 'file' && unixfs.type !== 'raw')) {
      // not a byte array: the parameter is ignored (the spec), the entity is sent
      yield * walkDag(cid, getBlock, { scope: 'entity', signal })
      return
    }
  }
  const size = unixfs === undefined ? root.bytes.byteLength : Number(unixfs.fileSize())
  const from = range.from < 0 ? Math.max(0, size + range.from) : range.from
  const to = Math.min(size - 1, range.to === '*' ? size - 1 : range.to < 0 ? size + range.to : range.to)
  // An empty entity's only start is 0 (an empty range); any later start is past its end too.
  if (from >= size && !(size === 0 && from === 0)) throw ValidationError.field('entity-bytes', `the range starts at byte ${from}, past the end of the ${size}-byte entity`)
  async function * visit (block: { cid: CID, bytes: Uint8Array }, pb: dagPb.PBNode | undefined, fs: UnixFS | undefined, start: number): AsyncGenerator<{ cid: CID, bytes: Uint8Array }> {
    yield block
    if (pb === undefined || fs === undefined) return
    let offset = start + (fs.data?.byteLength ?? 0)
    for (const [i, link] of pb.Links.entries()) {
      const childStart = offset
      offset += Number(fs.blockSizes[i] ?? 0)
      if (offset <= childStart || offset - 1 < from || childStart > to) continue
      const child = { cid: link.Hash, bytes: await getBlock(link.Hash, { signal }) }
      const childPb = child.cid.code === DAG_PB_CODE ? dagPb.decode(child.bytes) : undefined
      yield * visit(child, childPb, childPb?.Data === undefined ? undefined : UnixFS.unmarshal(childPb.Data), childStart)
    }
  }
  if (to < from) yield root
  else yield * visit(root, node, unixfs, 0)
}
