/**
 * Pins as Kubo reports them (`ipfs pin ls`): a pinned root is `recursive`, every other block a pin holds
 * is `indirect` (through the first root found to hold it). This store has no direct pins: a pin always
 * holds the whole DAG below its root, as `ipfs pin add` does by default.
 */
import type { CID } from 'multiformats/cid'
import { RAW_CODE } from './cid.js'
import type { HeliaStore } from './helia-store.js'
import { blockLinks } from './unixfs-reader.js'

type PinReader = Pick<HeliaStore, 'pins' | 'getBlock' | 'isPinned'>

/** Whether `cid` is a pinned root (either CID version of the same block counts). */
export async function isPinnedRoot (store: Pick<HeliaStore, 'pins'>, cid: CID, signal?: AbortSignal): Promise<boolean> {
  const wanted = cid.toV1()
  for await (const root of store.pins({ signal })) if (root.toV1().equals(wanted)) return true
  return false
}

/** Every block below `root` (not `root` itself), each once; raw leaves are named by their CID, never read. */
export async function * blocksBelow (store: Pick<HeliaStore, 'getBlock'>, root: CID, signal?: AbortSignal, seen = new Set<string>()): AsyncGenerator<CID> {
  const pending: CID[] = [root]
  while (pending.length > 0) {
    signal?.throwIfAborted()
    const cid = pending.pop() as CID
    // raw blocks have no links: no need to read them
    if (cid.code === RAW_CODE) continue
    for (const link of blockLinks(cid, await store.getBlock(cid, { signal }))) {
      const key = link.toV1().toString()
      if (seen.has(key)) continue
      seen.add(key)
      yield link
      pending.push(link)
    }
  }
}

/** Blocks held by a pin without being a pinned root themselves (Kubo's `indirect` pins), each once. */
export async function * indirectPins (store: PinReader, signal?: AbortSignal): AsyncGenerator<CID> {
  const roots: CID[] = []
  for await (const root of store.pins({ signal })) roots.push(root)
  const rootKeys = new Set(roots.map(r => r.toV1().toString()))
  const seen = new Set<string>(rootKeys)
  for (const root of roots) {
    for await (const cid of blocksBelow(store, root, signal, seen)) yield cid
  }
}

/** How `cid` is pinned: `recursive` (a root), `indirect` with the root that holds it, or undefined (not pinned). */
export async function pinTypeOf (store: PinReader, cid: CID, signal?: AbortSignal): Promise<{ type: 'recursive' } | { type: 'indirect', through: CID } | undefined> {
  const wanted = cid.toV1()
  const roots: CID[] = []
  for await (const root of store.pins({ signal })) roots.push(root)
  if (roots.some(root => root.toV1().equals(wanted))) return { type: 'recursive' }
  // the store keeps what its pins hold; only the root holding it needs a walk
  if (!(await store.isPinned(cid, { signal }))) return undefined
  for (const root of roots) {
    for await (const below of blocksBelow(store, root, signal)) if (below.toV1().equals(wanted)) return { type: 'indirect', through: root }
  }
  return undefined
}
