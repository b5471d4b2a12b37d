/**
 * Recursive pins recorded by their root alone, as Kubo's pinner does. Helia's pinner writes a record
 * for every block a pin holds; after an import of 256 MiB that was 1025 datastore records (each keyed
 * in base36 and cbor-encoded), ~60 ms of an add's ~320 ms on the machine measured, and it grows with
 * every block of every model pinned. Here a pin is one record, and what pins hold is found by walking
 * their DAGs when it is needed: by `gc` (which reads each pinned dag-pb block once, as Kubo's gc does)
 * and by `isPinned` of a block that is not itself a root (the walk is cached until the pins change).
 *
 * A pinned dag-pb block that cannot be read (damaged, or missing) hides what lies below it. Pinning a
 * DAG then fails, naming the block. The walk for gc (`walkPins`) does not fail: it reports the block and
 * the pin holding it, and gc then deletes nothing (see HeliaStore.gc), since any unpinned-looking block
 * might be below it.
 *
 * Datastore records: `/ipfs-accelerate/pins/<root as CIDv1>` -> JSON `{ "cid": <the CID as pinned> }`.
 * A repository written by Helia's pinner (`/pin/<base36 CIDv1>`) has its pins carried over when opened.
 */
import { Key, type Datastore } from 'interface-datastore'
import { base36 } from 'multiformats/bases/base36'
import { CID } from 'multiformats/cid'
import { ContentVerificationError, NotFoundError, ValidationError } from '../errors.js'
import type { AbortOptions } from './content-store.js'
import { DAG_PB_CODE, RAW_CODE } from './cid.js'
import { throwIfAborted } from './async-utils.js'

const PREFIX = '/ipfs-accelerate/pins/'
const HELIA_PIN_PREFIX = '/pin/'
const HELIA_BLOCK_PREFIX = '/pinned-block/'

/** A pinned block whose links could not be read, the pin holding it, and what reading it said. */
export interface UnreadableBlock {
  cid: CID
  pin: CID
  error: ContentVerificationError | NotFoundError
}

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
  /** Blocks held by some pin (blockKey), or undefined until a walk needs it again (kept only when complete). */
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
      try {
        for await (const cid of this.walk(root, options.links, options)) {
          if (!(await has(cid))) throw new NotFoundError(`block ${cid.toString()} is not in the local store`, { context: { cid: cid.toString() } })
        }
      } catch (err) {
        if (!(err instanceof NotFoundError || err instanceof ContentVerificationError)) throw err
        const block = typeof err.context.cid === 'string' ? err.context.cid : root.toString()
        const remedy = err instanceof ContentVerificationError ? ' (adding or fetching the content again stores a good copy)' : ''
        const message = `cannot pin ${root.toString()}: ${err.message}${remedy}`
        const context = { cid: root.toString(), block }
        throw err instanceof NotFoundError ? new NotFoundError(message, { cause: err, context }) : new ContentVerificationError(message, { cause: err, context })
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

  /**
   * True when `cid` is a pinned root or a block some pin holds (a block below a pinned block that cannot
   * be read is not known to be held).
   */
  async isPinned (cid: CID, options: AbortOptions = {}): Promise<boolean> {
    if (await this.datastore.has(recordKey(cid))) return true
    return (await this.walkPins(options)).held.has(blockKey(cid))
  }

  /** Pinned roots, spelled as they were pinned. */
  async * roots (options: AbortOptions = {}): AsyncGenerator<CID> {
    for await (const { value } of this.datastore.query({ prefix: PREFIX }, options)) {
      yield CID.parse((JSON.parse(new TextDecoder().decode(value)) as { cid: string }).cid)
    }
  }

  /**
   * Walks every pinned DAG once: the blocks pins hold (blockKey), and the pinned dag-pb blocks that could
   * not be read (corrupt or missing; each counts as held, but what lies below it is unknown).
   */
  async walkPins (options: AbortOptions = {}): Promise<{ held: Set<string>, unreadable: UnreadableBlock[] }> {
    if (this.held !== undefined) return { held: this.held, unreadable: [] }
    const held = new Set<string>()
    const unreadable: UnreadableBlock[] = []
    for await (const root of this.roots(options)) {
      const onUnreadable = (cid: CID, error: ContentVerificationError | NotFoundError): void => { unreadable.push({ cid, pin: root, error }) }
      for await (const cid of this.walk(root, undefined, options, held, onUnreadable)) held.add(blockKey(cid))
    }
    if (unreadable.length === 0) this.held = held
    return { held, unreadable }
  }

  private async record (root: CID): Promise<void> {
    await this.datastore.put(recordKey(root), new TextEncoder().encode(JSON.stringify({ cid: root.toString() })))
    this.held = undefined
  }

  /**
   * Depth-first walk of the blocks under `root` (each once; `skip` holds blocks already visited). A dag-pb
   * block that cannot be read (ContentVerificationError, NotFoundError) ends the walk with that error,
   * or, given `onUnreadable`, is reported there and not descended into.
   */
  private async * walk (root: CID, links: Map<string, CID[]> | undefined, options: AbortOptions, skip?: Set<string>,
    onUnreadable?: (cid: CID, error: ContentVerificationError | NotFoundError) => void): AsyncGenerator<CID> {
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
        else if (cid.code === DAG_PB_CODE) {
          try {
            children = await this.readLinks(cid, options)
          } catch (err) {
            if (onUnreadable === undefined || !(err instanceof ContentVerificationError || err instanceof NotFoundError)) throw err
            onUnreadable(cid, err)
            children = []
          }
        }
        else throw ValidationError.field('cid', `cannot pin ${cid.toString()}: unsupported codec 0x${cid.code.toString(16)}`)
      }
      for (let i = children.length - 1; i >= 0; i--) stack.push(children[i])
    }
  }
}
