/**
 * The small interface every content backend implements (embedded Helia, Kubo RPC, trustless gateway).
 * A backend that cannot do something omits the method; callers ask before they call.
 */
import type { CID } from 'multiformats/cid'

export interface AbortOptions {
  signal?: AbortSignal
}

/** Progress of a long transfer, in bytes. `total` is undefined when unknown. */
export interface TransferProgress {
  bytes: number
  total?: number
}

export interface ProgressOptions extends AbortOptions {
  onProgress?: (progress: TransferProgress) => void
}

export interface PutOptions extends ProgressOptions {
  /** 0 reproduces `ipfs add`, 1 reproduces `ipfs add --cid-version 1`. Default: `ipfs.cid_version`. */
  cidVersion?: 0 | 1
  /** Pin what was added (default true). */
  pin?: boolean
  /** Compute the CID only (`ipfs add --only-hash`): nothing is stored or pinned. */
  onlyHash?: boolean
}

export interface ContentStore {
  /** 'helia' | 'kubo-rpc' | 'gateway' */
  readonly name: string
  /** Whole content of a UnixFS file (or a raw block), verified against its CID. */
  get(cid: CID, options?: ProgressOptions): Promise<Uint8Array>
  /** Streams a UnixFS file's content, each block verified before it is yielded. */
  cat?(cid: CID, options?: ProgressOptions): AsyncIterable<Uint8Array>
  /** Adds bytes (or a stream of them) as a UnixFS file with Kubo's default layout; returns the root CID. */
  put?(bytes: Uint8Array | AsyncIterable<Uint8Array>, options?: PutOptions): Promise<CID>
  has?(cid: CID, options?: AbortOptions): Promise<boolean>
  pin?(cid: CID, options?: AbortOptions): Promise<void>
  unpin?(cid: CID, options?: AbortOptions): Promise<void>
  /** One raw block, verified against its CID. */
  getBlock?(cid: CID, options?: AbortOptions): Promise<Uint8Array>
  /**
   * Every block of the DAG below `cid` in one transfer (a gateway's `?format=car&dag-scope=all`), each
   * verified against its CID before it is yielded; the caller stores them. A broken transfer throws,
   * but a source may also end cleanly short of the whole DAG: callers that need all of it check.
   */
  fetchDag?(cid: CID, options?: AbortOptions): AsyncIterable<{ cid: CID, bytes: Uint8Array }>
  /**
   * Takes a whole DAG in one upload (Kubo's `dag/import` of a CAR), pinning `root` unless `pin` is false.
   * `car()` makes the CAR's bytes again for each attempt.
   */
  importDag?(root: CID, car: () => AsyncIterable<Uint8Array>, options?: AbortOptions & { pin?: boolean }): Promise<void>
  /** The CID at `path` (`a/b.txt`) below the directory `cid`. NotFoundError when a name is missing. */
  resolve?(cid: CID, path: string, options?: AbortOptions): Promise<CID>
  /** Imports a folder as a UnixFS directory (model packs); returns its CID. */
  addDirectory?(folder: string, options?: PutOptions): Promise<CID>
  /** Removes unpinned blocks. */
  gc?(options?: AbortOptions): Promise<{ removed: number }>
  start?(): Promise<void>
  stop?(): Promise<void>
}
