/**
 * The embedded store's blockstore, in one of two on-disk layouts:
 * - 'pack' (default for new repositories): blocks appended to large pack files + a journal index
 *   (PackBlockstore) — adds and reads run near the sha-256 rate;
 * - 'fs': blockstore-fs's layout, one file per block (FastFsBlockstore) — readable by blockstore-fs,
 *   but creating a file per block caps adds at ~0.3x the sha-256 rate on the machine measured.
 * An existing repository keeps the layout it was created with (`<repo>/packs` or `<repo>/blocks`).
 */
import { existsSync } from 'node:fs'
import path from 'node:path'
import type { Blockstore } from 'interface-blockstore'
import type { CID } from 'multiformats/cid'
import type { AbortOptions } from './content-store.js'
import { FastFsBlockstore } from './fast-fs-blockstore.js'
import { PackBlockstore } from './pack-blockstore.js'

export type BlockstoreLayout = 'pack' | 'fs'

/** Where a block's bytes are on disk. */
export interface BlockLocation {
  file: string
  offset: number
  length: number
}

export interface LocalBlockstore extends Blockstore {
  readonly path: string
  readonly verifyOnRead: boolean
  /** Opens the store; every other method also opens it on first use. */
  open: () => Promise<void>
  close: () => Promise<void>
  /** One whole block, verified unless `verifyOnRead` is false; NotFoundError when absent. */
  getBlock: (cid: CID, options?: AbortOptions) => Promise<Uint8Array>
  /** Stores a block the caller has already hashed, given whole or as parts in order. */
  putBlock: (cid: CID, bytes: Uint8Array | Uint8Array[]) => Promise<void>
  /**
   * Resolves once every block put so far can be found after a restart (the pack index written), or
   * rethrows a failed write. A pin must not be recorded before the blocks it holds.
   */
  flush: () => Promise<void>
  /** Where the block is on disk (tools, tests), or undefined. */
  where: (cid: CID) => Promise<BlockLocation | undefined>
  /**
   * The file holding the block (sync; for 'pack' the pack holding it, with the offset). The pack layout
   * throws NotFoundError for a block it does not hold; the 'fs' layout names the file it would be in.
   */
  locate: (cid: CID) => { file: string, offset?: number, length?: number }
  /** Reclaims space of deleted blocks (pack layout). */
  compact?: (options?: AbortOptions) => Promise<{ reclaimedBytes: number }>
}

/** The layout a repository already uses, or undefined for a new one (sync: two stats, once per store). */
export function detectLayout (repo: string): BlockstoreLayout | undefined {
  if (existsSync(path.join(repo, 'packs'))) return 'pack'
  if (existsSync(path.join(repo, 'blocks'))) return 'fs'
  return undefined
}

export function createLocalBlockstore (repo: string, layout: BlockstoreLayout, init: { verifyOnRead?: boolean, prepare?: () => Promise<void> } = {}): LocalBlockstore {
  return layout === 'pack'
    ? new PackBlockstore(path.join(repo, 'packs'), init)
    : new FastFsBlockstore(path.join(repo, 'blocks'), init)
}
