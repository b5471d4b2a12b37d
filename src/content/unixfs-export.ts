/**
 * Writing a UnixFS tree from a store into a folder, safely: every name is checked before anything is
 * written (no `..`, separators, absolute names, links or special types; bounded depth and size), files
 * go into a temporary sibling folder that is renamed into place only when complete, and leftovers of
 * processes that died mid-export are cleaned up. Used by model pulls and `ipfs get`.
 */
import { randomBytes } from 'node:crypto'
import { lstatSync, statSync } from 'node:fs'
import fs from 'node:fs/promises'
import path from 'node:path'
import * as dagPb from '@ipld/dag-pb'
import { UnixFS } from 'ipfs-unixfs'
import type { CID } from 'multiformats/cid'
import { ContentVerificationError, ValidationError } from '../errors.js'
import { throwIfAborted } from './async-utils.js'
import { DAG_PB_CODE, RAW_CODE, identityBytes } from './cid.js'
import type { HeliaStore } from './helia-store.js'
import { PATH_ERRORS, makeDirectory } from './make-directory.js'
import { processAlive } from './repo-lock.js'
import type { PackProgressEvent } from './model-pack.js'

/** A unique temporary name for this process. */
export function tempName (prefix: string): string {
  return `${prefix}-${process.pid}-${randomBytes(6).toString('hex')}`
}

/** True when something (a file, a folder, a link, even a dangling one) is at `file`. */
export function pathTaken (file: string): boolean {
  try {
    lstatSync(file)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ENOENT'
  }
}

/**
 * Refuses, before anything is fetched, a destination that cannot be created: one that exists (a
 * dangling link included, which a rename would silently replace), or whose nearest existing ancestor is
 * not a folder. `field` names the input in the ValidationError.
 */
export function checkDestination (dest: string, field = 'output'): void {
  const target = path.resolve(dest)
  let info
  try {
    info = lstatSync(target)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT' && (err as NodeJS.ErrnoException).code !== 'ENOTDIR') throw destinationError(dest, field, err)
  }
  if (info !== undefined) throw ValidationError.field(field, `${dest} already exists${info.isSymbolicLink() ? ' (as a symbolic link)' : ''}`, { file: dest })
  checkFolderPath(path.dirname(target), field, dest)
}

/**
 * Refuses a folder path (existing or to be created) whose nearest existing ancestor is not a folder.
 * `shown` is the path the message names (default `folder`).
 */
export function checkFolderPath (folder: string, field: string, shown = folder): void {
  let at = path.resolve(folder)
  while (true) {
    let info
    try {
      info = lstatSync(at)
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ENOTDIR') throw ValidationError.field(field, `${shown} cannot be created: a part of it is a file, not a folder`, { file: shown })
      if (code !== 'ENOENT') throw destinationError(shown, field, err)
    }
    if (info !== undefined) {
      // a link to a folder is a folder here
      if (info.isDirectory() || (info.isSymbolicLink() && isFolder(at))) return
      throw ValidationError.field(field, `${shown} cannot be created: ${at} is not a folder`, { file: shown })
    }
    const parent = path.dirname(at)
    if (parent === at) return
    at = parent
  }
}

function isFolder (file: string): boolean {
  try {
    return statSync(file).isDirectory()
  } catch {
    return false
  }
}

/** A ValidationError for an unusable destination path, else `err` itself. */
function destinationError (dest: string, field: string, err: unknown): unknown {
  const code = (err as NodeJS.ErrnoException)?.code
  if (code === undefined || !PATH_ERRORS.has(code)) return err
  // "ENOENT: no such file or directory, mkdir '/x/.partial-…'" -> "no such file or directory (ENOENT)"
  const why = `${(err as Error).message.replace(/^E[A-Z]+: /, '').replace(/, \w+ '.*$/s, '')} (${code})`
  return new ValidationError(`${field}: cannot write ${dest}: ${why}`, [{ path: field, message: `cannot write ${dest}: ${why}` }],
    { cause: err, context: { field, file: dest } })
}

/** Deeper trees and more entries than any model needs: a crafted pack must not exhaust the disk walk. */
const MAX_DEPTH = 32
const MAX_ENTRIES = 100_000


/** One entry of a UnixFS tree, checked safe to write under a destination folder. */
export interface TreeEntry {
  /** Path inside the tree, `/`-separated; `''` for the root. */
  path: string
  cid: CID
  type: 'file' | 'directory'
  /** File size (0 for directories). */
  size: number
}

export interface ExportOptions {
  signal?: AbortSignal
  /** Called as files are written; `model` in the events is this label. */
  onProgress?: (event: PackProgressEvent) => void
  /** Label of the progress events (default: the CID). */
  label?: string
  /** Runs on the complete temporary copy just before it is renamed into place (checks, extra files). */
  beforeCommit?: (tempPath: string, entries: TreeEntry[]) => Promise<void>
  /** Replace an existing destination (only once the new copy is complete). Default false: refuse. */
  replace?: boolean
  /** Refuse a file at `cid` (ValidationError on field `cid`) before writing anything. */
  directoryOnly?: boolean
  /** The input naming `dest`, in ValidationErrors for a destination that cannot be written (default `output`). */
  field?: string
}

function unsafe (root: CID, at: string, why: string): ContentVerificationError {
  return new ContentVerificationError(`${root.toString()}: entry ${JSON.stringify(at)} ${why}`, { context: { cid: root.toString(), path: at } })
}

/** Refuses a directory entry name that is not one plain path segment. */
function checkName (root: CID, parent: string, name: string): void {
  const at = parent === '' ? name : `${parent}/${name}`
  if (name === '' || name === '.' || name === '..') throw unsafe(root, at, 'has an empty, "." or ".." name (refused: it would escape the folder)')
  if (name.includes('/') || name.includes('\\')) throw unsafe(root, at, 'has a path separator in its name (refused: it would escape the folder)')
  if (name.includes('\u0000')) throw unsafe(root, at, 'has a NUL character in its name (refused)')
  if (/^[A-Za-z]:/.test(name) || path.isAbsolute(name)) throw unsafe(root, at, 'has an absolute name (refused)')
}

interface DecodedNode {
  type: 'file' | 'directory' | 'hamt'
  size: number
  links: Array<{ name: string, cid: CID }>
}

async function blockOf (store: HeliaStore, cid: CID, signal?: AbortSignal): Promise<Uint8Array> {
  return identityBytes(cid) ?? await store.getBlock(cid, { signal })
}

async function decodeEntry (store: HeliaStore, root: CID, at: string, cid: CID, signal?: AbortSignal): Promise<DecodedNode> {
  const bytes = await blockOf(store, cid, signal)
  if (cid.code === RAW_CODE) return { type: 'file', size: bytes.byteLength, links: [] }
  if (cid.code !== DAG_PB_CODE) throw unsafe(root, at, `uses codec 0x${cid.code.toString(16)} (only dag-pb and raw are exported)`)
  let unixfs: UnixFS
  let node: dagPb.PBNode
  try {
    node = dagPb.decode(bytes)
    if (node.Data === undefined) throw new Error('no Data field')
    unixfs = UnixFS.unmarshal(node.Data)
  } catch (cause) {
    throw new ContentVerificationError(`${root.toString()}: entry ${JSON.stringify(at)} is not UnixFS: ${(cause as Error).message}`, { cause, context: { cid: root.toString(), path: at } })
  }
  switch (unixfs.type) {
    case 'file':
    case 'raw':
      return { type: 'file', size: Number(unixfs.fileSize()), links: [] }
    case 'directory':
      return { type: 'directory', size: 0, links: node.Links.map(l => ({ name: l.Name ?? '', cid: l.Hash })) }
    case 'hamt-sharded-directory':
      return { type: 'hamt', size: 0, links: [] }
    default:
      throw unsafe(root, at, `is a ${unixfs.type} (refused: only files and directories are exported)`)
  }
}

/** Entries of a HAMT-sharded directory, through ipfs-unixfs-exporter over the store's verified blocks. */
async function hamtLinks (store: HeliaStore, cid: CID, signal?: AbortSignal): Promise<Array<{ name: string, cid: CID }>> {
  const { exporter } = await import('ipfs-unixfs-exporter')
  const storage = { get: (c: CID) => (async function * () { yield await blockOf(store, c, signal) })() }
  const entry = await exporter(cid, storage, { signal })
  if (entry.type !== 'directory') return []
  const out: Array<{ name: string, cid: CID }> = []
  for await (const child of entry.entries({ signal })) out.push({ name: child.name, cid: child.cid })
  return out
}

/**
 * Lists the UnixFS tree at `cid` (a file or a directory), checking every name and type before anything
 * is written: `..`, `.`, empty names, separators, absolute names, duplicates, symlinks and other entry
 * types are refused with ContentVerificationError. Missing blocks are NotFoundError.
 */
export async function listTree (store: HeliaStore, cid: CID, options: { signal?: AbortSignal } = {}): Promise<TreeEntry[]> {
  const out: TreeEntry[] = []
  async function visit (at: string, entryCid: CID, depth: number): Promise<void> {
    throwIfAborted(options.signal, 'export')
    if (depth > MAX_DEPTH) throw unsafe(cid, at, `is nested deeper than ${MAX_DEPTH} directories (refused)`)
    if (out.length >= MAX_ENTRIES) throw unsafe(cid, at, `is past the ${MAX_ENTRIES}th entry (refused)`)
    const node = await decodeEntry(store, cid, at, entryCid, options.signal)
    if (node.type === 'file') {
      out.push({ path: at, cid: entryCid, type: 'file', size: node.size })
      return
    }
    out.push({ path: at, cid: entryCid, type: 'directory', size: 0 })
    const links = node.type === 'hamt' ? await hamtLinks(store, entryCid, options.signal) : node.links
    const seen = new Set<string>()
    for (const link of links) {
      checkName(cid, at, link.name)
      const childAt = at === '' ? link.name : `${at}/${link.name}`
      if (seen.has(link.name)) throw unsafe(cid, childAt, 'appears twice in its directory (refused)')
      seen.add(link.name)
      await visit(childAt, link.cid, depth + 1)
    }
  }
  await visit('', cid, 0)
  return out
}

async function writeFileFrom (store: HeliaStore, entry: TreeEntry, target: string, name: string, options: ExportOptions, progress: (file: string, loaded: number, total: number, delta: number) => void, onOpenError: (err: unknown) => never): Promise<void> {
  // 'wx': a name that collides on a case-insensitive file system must not overwrite an earlier file.
  const handle = await fs.open(target, 'wx').catch(onOpenError)
  let loaded = 0
  try {
    for await (const chunk of store.cat(entry.cid, { signal: options.signal })) {
      throwIfAborted(options.signal, 'export')
      let written = 0
      while (written < chunk.byteLength) {
        const { bytesWritten } = await handle.write(chunk, written, chunk.byteLength - written)
        written += bytesWritten
      }
      loaded += chunk.byteLength
      progress(name, loaded, entry.size, chunk.byteLength)
    }
  } finally {
    await handle.close()
  }
  if (entry.size === 0) progress(name, 0, 0, 0)
  if (loaded !== entry.size) {
    throw new ContentVerificationError(`${entry.path} gave ${loaded} bytes where its UnixFS node says ${entry.size}`, { context: { cid: entry.cid.toString(), path: entry.path } })
  }
}

/** Removes temporary folders for `dest` left by processes that died mid-export. */
async function removeStale (dest: string): Promise<void> {
  const parent = path.dirname(dest)
  const prefix = `.partial-${path.basename(dest)}-`
  const names = await fs.readdir(parent).catch(() => [] as string[])
  for (const name of names) {
    if (!name.startsWith(prefix)) continue
    const pid = Number(name.slice(prefix.length).split('-')[0])
    if (Number.isInteger(pid) && pid !== process.pid && !processAlive(pid)) await fs.rm(path.join(parent, name), { recursive: true, force: true })
  }
}

/**
 * Writes the UnixFS file or directory `cid` to `dest` atomically: everything goes into a temporary
 * sibling of `dest`, which is renamed into place only when complete (after `beforeCommit`). On any
 * failure, an abort included, the temporary copy is removed and `dest` is left as it was.
 * @throws ValidationError (field `output`) when `dest` exists and `replace` is not set.
 * @throws ContentVerificationError for unsafe names or types, or content that does not match its CID.
 * @throws NotFoundError for a block the store does not have.
 */
export async function exportUnixfs (store: HeliaStore, cid: CID, dest: string, options: ExportOptions = {}): Promise<TreeEntry[]> {
  const target = path.resolve(dest)
  const field = options.field ?? 'output'
  if (options.replace === true) checkFolderPath(path.dirname(target), field)
  else checkDestination(dest, field)
  const entries = await listTree(store, cid, options)
  if (options.directoryOnly === true && entries[0]?.type !== 'directory') {
    throw ValidationError.field('cid', `${options.label ?? cid.toString()} is a file, not a folder`, { cid: cid.toString() })
  }
  const label = options.label ?? cid.toString()
  const modelTotal = entries.reduce((n, e) => n + e.size, 0)
  let modelLoaded = 0
  const single = entries[0]?.type === 'file'
  const progress = (file: string, loaded: number, total: number, delta: number): void => {
    modelLoaded += delta
    const status = loaded >= total ? 'done' : 'progress'
    options.onProgress?.(single
      ? { file: label, status, loaded, total, modelLoaded, modelTotal }
      : { file, status, loaded, total, model: label, modelLoaded, modelTotal })
  }
  await makeDirectory(path.dirname(target)).catch((err: unknown) => { throw destinationError(dest, field, err) })
  await removeStale(target)
  const temp = path.join(path.dirname(target), tempName(`.partial-${path.basename(target)}`))
  try {
    let first = true
    for (const entry of entries) {
      throwIfAborted(options.signal, 'export')
      const at = entry.path === '' ? temp : path.join(temp, ...entry.path.split('/'))
      // the first write creates the temporary copy: a failure there is the destination's, not the content's
      const onFirst = first ? (err: unknown) => { throw destinationError(dest, field, err) } : (err: unknown) => { throw err }
      first = false
      if (entry.type === 'directory') {
        await fs.mkdir(at).catch(onFirst)
      } else {
        await writeFileFrom(store, entry, at, entry.path === '' ? path.basename(target) : entry.path, options, progress, onFirst)
      }
    }
    await options.beforeCommit?.(temp, entries)
    throwIfAborted(options.signal, 'export')
    if (options.replace !== true && pathTaken(target)) throw ValidationError.field(field, `${dest} already exists`, { file: dest })
    await commit(temp, target, options.replace === true)
    return entries
  } catch (err) {
    await fs.rm(temp, { recursive: true, force: true })
    throw err
  }
}

/** Renames `temp` to `target`; with `replace`, an existing `target` is moved aside first and removed after. */
async function commit (temp: string, target: string, replace: boolean): Promise<void> {
  try {
    await fs.rename(temp, target)
    return
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (!replace || (code !== 'ENOTEMPTY' && code !== 'EEXIST' && code !== 'EISDIR' && code !== 'ENOTDIR')) throw err
  }
  const aside = path.join(path.dirname(target), tempName(`.stale-${path.basename(target)}`))
  await fs.rename(target, aside)
  try {
    await fs.rename(temp, target)
  } catch (err) {
    await fs.rename(aside, target).catch(() => {})
    throw err
  }
  await fs.rm(aside, { recursive: true, force: true })
}

// ---------------------------------------------------------------------------------------------------
// Pull and list

