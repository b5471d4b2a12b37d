/**
 * Recursive pins recorded by their root alone, as Kubo's pinner does. Helia's pinner writes a record
 * for every block a pin holds; after an import of 256 MiB that was 1025 datastore records (each keyed
 * in base36 and cbor-encoded), ~60 ms of an add's ~320 ms on the machine measured, and it grows with
 * every block of every model pinned. Here a pin is one record, and what pins hold is found by walking
 * their DAGs when it is needed: by `gc` (which reads each pinned dag-pb block once, as Kubo's gc does)
 * and by `isPinned` of a block that is not itself a root (the walk is cached until the pins change).
 *
 * Datastore records: `/ipfs-accelerate/pins/<root as CIDv1>` -> JSON `{ "cid": <the CID as pinned> }`.
 * A repository written by Helia's pinner (`/pin/<base36 CIDv1>`) has its pins carried over when opened.
 */
import { Key, type Datastore } from 'interface-datastore'
import { base36 } from 'multiformats/bases/base36'
import { CID } from 'multiformats/cid'
import { NotFoundError, ValidationError } from '../errors.js'
import type { AbortOptions } from './content-store.js'
import { DAG_PB_CODE, RAW_CODE } from './cid.js'
import { throwIfAborted } from './async-utils.js'

const PREFIX = '/ipfs-accelerate/pins/'
const HELIA_PIN_PREFIX = '/pin/'
const HELIA_BLOCK_PREFIX = '/pinned-block/'

/** The children of a block (dag-pb links; none for raw blocks). */
export type LinksReader = (cid: CID, options?: AbortOptions) => Promise<CID[]>

/** Block identity as the blockstores key it: the multihash (CIDv0 and CIDv1 of one block are one). */
export function blockKey (cid: CID): string {
  const mh = cid.multihash.bytes
  return Buffer.from(mh.buffer, mh.byteOffset, mh.byteLength).toString('latin1')
}

function recordKey (cid: CID): Key {
  return new Key(`${PREFIX}${cid.toV1().toString()}`)
}

export class PinSet {
  /** Blocks held by some pin (blockKey), or undefined until a walk needs it again. */
  private held: Set<string> | undefined

  constructor (private readonly datastore: Datastore, private readonly readLinks: LinksReader) {}

  /** Carries over pins recorded by Helia's pinner and drops its per-block records. */
  async migrateHeliaPins (): Promise<number> {
    let moved = 0
    for await (const { key } of this.datastore.query({ prefix: HELIA_PIN_PREFIX })) {
      const cid = CID.parse(key.toString().slice(HELIA_PIN_PREFIX.length), base36)
      await this.record(cid)
      await this.datastore.delete(key)
      moved++
    }
    for await (const key of this.datastore.queryKeys({ prefix: HELIA_BLOCK_PREFIX })) await this.datastore.delete(key)
    return moved
  }

  /**
   * Pins `root` recursively. Unless the caller vouches that the whole DAG was just stored (`complete`),
   * every block is checked to be present (`has`), following `links` where the caller already knows
   * them and reading the blocks otherwise; a missing block is a NotFoundError and nothing is pinned.
   */
  async add (root: CID, has: (cid: CID) => Promise<boolean>, options: AbortOptions & { links?: Map<string, CID[]>, complete?: boolean } = {}): Promise<void> {
    if (options.complete !== true) {
      for await (const cid of this.walk(root, options.links, options)) {
        if (!(await has(cid))) {
          throw new NotFoundError(`cannot pin ${root.toString()}: block ${cid.toString()} is not in the local store`, { context: { cid: root.toString(), block: cid.toString() } })
        }
      }
    }
    await this.record(root)
  }

  /** Removes the pin on `root`; false when it was not pinned. */
  async rm (root: CID, options: AbortOptions = {}): Promise<boolean> {
    throwIfAborted(options.signal, 'unpin')
    const key = recordKey(root)
    if (!(await this.datastore.has(key))) return false
    await this.datastore.delete(key)
    this.held = undefined
    return true
  }

  /** True when `cid` is a pinned root or a block some pin holds. */
  async isPinned (cid: CID, options: AbortOptions = {}): Promise<boolean> {
    if (await this.datastore.has(recordKey(cid))) return true
    return (await this.heldBlocks(options)).has(blockKey(cid))
  }

  /** Pinned roots, spelled as they were pinned. */
  async * roots (options: AbortOptions = {}): AsyncGenerator<CID> {
    for await (const { value } of this.datastore.query({ prefix: PREFIX }, options)) {
      yield CID.parse((JSON.parse(new TextDecoder().decode(value)) as { cid: string }).cid)
    }
  }

  /** Every block some pin holds (blockKey), by walking each pinned DAG once. */
  async heldBlocks (options: AbortOptions = {}): Promise<Set<string>> {
    if (this.held !== undefined) return this.held
    const held = new Set<string>()
    for await (const root of this.roots(options)) {
      for await (const cid of this.walk(root, undefined, options, held)) held.add(blockKey(cid))
    }
    this.held = held
    return held
  }

  private async record (root: CID): Promise<void> {
    await this.datastore.put(recordKey(root), new TextEncoder().encode(JSON.stringify({ cid: root.toString() })))
    this.held = undefined
  }

  /** Depth-first walk of the blocks under `root` (each once; `skip` holds blocks already visited). */
  private async * walk (root: CID, links: Map<string, CID[]> | undefined, options: AbortOptions, skip?: Set<string>): AsyncGenerator<CID> {
    const seen = new Set<string>()
    const stack = [root]
    while (stack.length > 0) {
      const cid = stack.pop() as CID
      const key = blockKey(cid)
      if (seen.has(key) || skip?.has(key) === true) continue
      seen.add(key)
      throwIfAborted(options.signal, 'pin')
      yield cid
      let children = links?.get(cid.toString())
      if (children === undefined) {
        if (cid.code === RAW_CODE) children = []
        else if (cid.code === DAG_PB_CODE) children = await this.readLinks(cid, options)
        else throw ValidationError.field('cid', `cannot pin ${cid.toString()}: unsupported codec 0x${cid.code.toString(16)}`)
      }
      for (let i = children.length - 1; i >= 0; i--) stack.push(children[i])
    }
  }
}
