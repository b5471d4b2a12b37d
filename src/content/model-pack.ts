/**
 * Models as content: a model folder published as one UnixFS directory (a "pack"), and pulled back into
 * the local model cache from its CID.
 *
 * A pack is the model folder plus a manifest, `ipfs-accelerate.json`, at its root. The manifest is
 * written INTO the pack (so whoever pulls the CID gets it, with no side channel) but never into the
 * source folder: publishing stages the folder as hard links (copies where links are impossible) under
 * `<repo>/staging/` of the store, adds the manifest there, imports that, and removes the staging folder
 * (one left behind by a publish that was killed is removed by the next publish or gc on the repository).
 * The manifest holds nothing machine-specific (no paths, no times), so the same folder always gives the
 * same CID, and a pack's CID equals `ipfs add -r` of the folder with the manifest in it.
 *
 * Pulling walks the pack's directory tree block by block through the store (which verifies every block
 * against its CID), refuses names that could escape the destination and entry types other than files
 * and directories, writes everything into a temporary folder next to the destination, checks it against
 * the manifest, writes a completion marker and only then renames it into place. A failed or aborted pull
 * therefore leaves the cache exactly as it was, and a folder with the marker is always complete. What a
 * pull killed mid-way leaves (a hidden temporary folder) is removed by the next pull into the same cache.
 *
 * Cache layout: `<cacheDir>/ipfs/<cid as CIDv1 base32>/`, so `Qm…` and `bafy…` spellings of one DAG share
 * a folder and the name is safe on case-insensitive file systems. `cacheDir` is the model cache root
 * (`resources.models[id].cache_dir`, `hub.cache_dir`, else `defaultPackCacheDir()`).
 */
import { existsSync, readFileSync } from 'node:fs'
import fs from 'node:fs/promises'
import { homedir } from 'node:os'
import path from 'node:path'
import type { CID } from 'multiformats/cid'
import { ContentVerificationError, ModelLoadError, NotFoundError, ValidationError } from '../errors.js'
import type { Task } from '../config/schema.js'
import { DTYPES, availableDtypes, dtypeOfFile, DEFAULT_ONNX_SUBFOLDER, type Dtype } from '../hardware/model-files.js'
import { defaultModelCacheDir } from '../models/hub-download.js'
import { readModelConfig, supportedTasks } from '../models/task-inference.js'
import { throwIfAborted } from './async-utils.js'
import { toCid } from './cid.js'
import { HOME_ENV, type HeliaStore } from './helia-store.js'
import { makeDirectory } from './make-directory.js'
import { processAlive } from './repo-lock.js'
import type { CidVersion } from './unixfs-layout.js'
import { exportUnixfs, type TreeEntry } from './unixfs-export.js'

export { exportUnixfs, listTree, type TreeEntry, type ExportOptions } from './unixfs-export.js'

/** The manifest's file name at the root of a pack. */
export const PACK_MANIFEST_FILE = 'ipfs-accelerate.json'
/** Written into a pulled folder last, just before the rename: its presence means "complete". */
export const PACK_MARKER_FILE = '.ipfs-accelerate-pack.json'
/** `format` of every manifest this version writes (and the only one it accepts). */
export const PACK_FORMAT = 'ipfs-accelerate/model-pack@1'

/** One file of a pack. */
export interface PackFile {
  /** Path inside the pack, `/`-separated. */
  path: string
  size: number
}

/** What `ipfs-accelerate.json` says about the model in a pack. */
export interface ModelPackManifest {
  format: typeof PACK_FORMAT
  /** `config.architectures[0]`, else `config.model_type`. */
  architecture?: string
  model_type?: string
  /** The task the model runs when none is requested (first of `tasks`); absent when none is recognised. */
  task?: Task
  /** Every task the model supports, most specific first. */
  tasks: Task[]
  /** Precisions present for at least one ONNX graph, in the order of `DTYPES`. */
  precisions: Dtype[]
  /** Precisions per ONNX graph (`model`, `encoder_model`, `decoder_model_merged`, ...). */
  weights: Record<string, Dtype[]>
  /** Every file of the pack but the manifest, sorted by path. */
  files: PackFile[]
  /** Where the model came from (`org/name@revision`), when it was published from the hub. */
  source?: string
}

/** Progress of a publish or pull; the shape the CLI's progress reporter takes. */
export interface PackProgressEvent {
  /** File being transferred (path inside the pack), or the folder name for a whole publish. */
  file: string
  status: 'progress' | 'done'
  /** Bytes of `file` so far. */
  loaded: number
  /** Size of `file`. */
  total: number
  /** The pack's CID (pulls) or folder name (publishes); absent when a single file is exported. */
  model?: string
  /** Bytes over the whole pack so far. */
  modelLoaded: number
  /** Size of the whole pack. */
  modelTotal: number
}

export interface PublishModelOptions {
  /** CIDv0 (Kubo's `ipfs add`) or CIDv1 (`--cid-version 1`). Default: the store's. */
  cidVersion?: CidVersion
  /** Publish only these files (relative, `/`-separated), e.g. a hub download's file list. Default: all. */
  files?: readonly string[]
  /** Recorded as the manifest's `source` (`org/name@revision`). */
  source?: string
  onProgress?: (event: PackProgressEvent) => void
  signal?: AbortSignal
}

export interface PublishedModel {
  /** Root CID of the pack, pinned in the store. */
  cid: string
  manifest: ModelPackManifest
}

export interface PullModelOptions {
  /** Model cache root; the pack lands in `<cacheDir>/ipfs/<cid>`. Default: `defaultPackCacheDir()`. */
  cacheDir?: string
  /** The input that named `cacheDir`, for a ValidationError when the pack's folder cannot be written there. Default `cacheDir`. */
  field?: string
  onProgress?: (event: PackProgressEvent) => void
  signal?: AbortSignal
}

export interface PulledModel {
  /** The local folder, loadable offline. */
  dir: string
  /** The pack's manifest, or one made from the pulled files for a pack that has none. */
  manifest: ModelPackManifest
  cid: string
  /** True when the pack was already complete in the cache and nothing was fetched. */
  cached: boolean
}

/** One pack known here: pinned in the store, present in the cache, or both. */
export interface ModelPackEntry {
  /** As it was pulled (`Qm…` stays `Qm…`); for a pack only pinned, Helia's CIDv1 spelling. */
  cid: string
  manifest: ModelPackManifest
  /** Pinned in the store (published or pulled here, not unpinned since). */
  pinned: boolean
  /** The complete folder in the cache, when pulled. */
  dir?: string
}

/** What the completion marker holds. */
interface PackMarker {
  cid: string
  manifest: ModelPackManifest
}

/**
 * The model cache root: `$IPFS_ACCELERATE_HOME/models` when set, else `~/.cache/ipfs-accelerate/models`
 * (the hub download default).
 */
export function defaultPackCacheDir (env: Record<string, string | undefined> = process.env, home: string = homedir()): string {
  const root = env[HOME_ENV]
  return root !== undefined && root !== '' ? path.join(root, 'models') : defaultModelCacheDir(home)
}

/** The folder a pack is pulled into: `<cacheDir>/ipfs/<cid as CIDv1 base32>`. */
export function packDir (cacheDir: string, cid: CID | string): string {
  return path.join(cacheDir, 'ipfs', toCid(cid).toV1().toString())
}

/**
 * The folder of pack `cid` when it is complete in the cache, else undefined. Synchronous, for the
 * engine's sync path; reads only the file system.
 * @throws ValidationError (field `cid`) for a malformed CID.
 */
export function isPulled (cid: CID | string, cacheDir: string = defaultPackCacheDir()): string | undefined {
  const dir = packDir(cacheDir, cid)
  return existsSync(path.join(dir, PACK_MARKER_FILE)) ? dir : undefined
}

// ---------------------------------------------------------------------------------------------------
// Manifest

function posix (relative: string): string {
  return relative.split(path.sep).join('/')
}

function byPath (a: { path: string }, b: { path: string }): number {
  return a.path < b.path ? -1 : a.path > b.path ? 1 : 0
}

/** Regular files under `folder` (relative, sorted), refusing links and special files like addDirectory does. */
async function listFiles (folder: string, signal?: AbortSignal): Promise<PackFile[]> {
  const out: PackFile[] = []
  async function visit (dir: string): Promise<void> {
    throwIfAborted(signal, 'publish')
    for (const child of await fs.readdir(dir, { withFileTypes: true })) {
      const full = path.join(dir, child.name)
      if (child.isSymbolicLink()) throw ValidationError.field('folder', `${full} is a symbolic link (refused in a model pack)`, { file: full })
      if (child.isDirectory()) await visit(full)
      else if (child.isFile()) out.push({ path: posix(path.relative(folder, full)), size: (await fs.lstat(full)).size })
      else throw ValidationError.field('folder', `${full} is not a regular file or directory (refused in a model pack)`, { file: full })
    }
  }
  await visit(folder)
  return out.sort(byPath)
}

/** Files that belong to this package's bookkeeping, never to a model. */
function isReserved (relative: string): boolean {
  return relative === PACK_MANIFEST_FILE || relative === PACK_MARKER_FILE
}

/**
 * The manifest of a model folder: files and sizes, tasks and architecture from `config.json`,
 * precisions from the ONNX files under `onnx/`.
 * @throws ModelLoadError when `config.json` is missing or unreadable.
 */
export async function buildManifest (folder: string, files: PackFile[], source?: string): Promise<ModelPackManifest> {
  const config = await readModelConfig(folder)
  const tasks = supportedTasks(config)
  const modelType = typeof config.model_type === 'string' ? config.model_type : undefined
  const firstArch = Array.isArray(config.architectures) && typeof config.architectures[0] === 'string' ? config.architectures[0] : undefined
  const graphs = new Set<string>()
  for (const f of files) {
    const [dir, name, ...rest] = f.path.split('/')
    if (dir !== DEFAULT_ONNX_SUBFOLDER || name === undefined || rest.length > 0) continue
    const parsed = dtypeOfFile(name)
    if (parsed !== undefined) graphs.add(parsed.baseName)
  }
  const weights: Record<string, Dtype[]> = {}
  for (const graph of [...graphs].sort()) weights[graph] = await availableDtypes(folder, graph)
  const present = new Set(Object.values(weights).flat())
  const manifest: ModelPackManifest = {
    format: PACK_FORMAT,
    ...((firstArch ?? modelType) === undefined ? {} : { architecture: firstArch ?? modelType }),
    ...(modelType === undefined ? {} : { model_type: modelType }),
    ...(tasks[0] === undefined ? {} : { task: tasks[0] }),
    tasks,
    precisions: DTYPES.filter(d => present.has(d)),
    weights,
    files: files.filter(f => !isReserved(f.path)).sort(byPath),
    ...(source === undefined ? {} : { source })
  }
  return manifest
}

function manifestBytes (manifest: ModelPackManifest): string {
  return JSON.stringify(manifest, null, 2) + '\n'
}

/** Parses and checks a manifest read from a pack. */
function parseManifest (text: string, cid: string): ModelPackManifest {
  const bad = (why: string, cause?: unknown): ContentVerificationError =>
    new ContentVerificationError(`pack ${cid}: ${PACK_MANIFEST_FILE} ${why}`, { cause, context: { cid, file: PACK_MANIFEST_FILE } })
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (cause) {
    throw bad(`is not valid JSON: ${(cause as Error).message}`, cause)
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw bad('must hold a JSON object')
  const m = value as Partial<ModelPackManifest>
  if (m.format !== PACK_FORMAT) throw bad(`has format ${JSON.stringify(m.format)}, expected ${JSON.stringify(PACK_FORMAT)}`)
  if (!Array.isArray(m.files) || !m.files.every(f => f !== null && typeof f === 'object' && typeof f.path === 'string' && Number.isSafeInteger(f.size))) {
    throw bad('must list files as {path, size}')
  }
  if (!Array.isArray(m.tasks) || !Array.isArray(m.precisions) || m.weights === null || typeof m.weights !== 'object') {
    throw bad('must have tasks, precisions and weights')
  }
  return m as ModelPackManifest
}

// ---------------------------------------------------------------------------------------------------
// Publish

/** Hard-links `from` to `to`, copying (a reflink where the file system can) where linking is impossible. */
async function linkOrCopy (from: string, to: string): Promise<void> {
  try {
    await fs.link(from, to)
  } catch {
    await fs.copyFile(from, to, fs.constants.COPYFILE_FICLONE)
  }
}

/**
 * Publishes a model folder: imports it, with its manifest, as a UnixFS directory and pins it.
 * The source folder is not modified. The same folder (and `source`) always gives the same CID.
 * @throws ValidationError for a folder that is not a directory, or holds links or special files.
 * @throws ModelLoadError when the folder has no readable `config.json`.
 */
export async function publishModel (store: HeliaStore, folder: string, options: PublishModelOptions = {}): Promise<PublishedModel> {
  const root = path.resolve(folder)
  const stat = await fs.stat(root).catch((cause: unknown) => {
    throw ValidationError.field('folder', `${folder} cannot be read: ${(cause as Error).message}`, { file: folder })
  })
  if (!stat.isDirectory()) throw ValidationError.field('folder', `${folder} is not a directory`, { file: folder })
  let files = await listFiles(root, options.signal)
  if (options.files !== undefined) {
    const present = new Map(files.map(f => [f.path, f]))
    files = options.files.map(p => {
      const file = present.get(p)
      if (file === undefined) throw ValidationError.field('files', `${p} is not a file in ${folder}`, { file: path.join(root, p) })
      return file
    }).sort(byPath)
  }
  files = files.filter(f => !isReserved(f.path))
  const manifest = await buildManifest(root, files, options.source)

  const staging = await store.stagingDir('publish')
  try {
    for (const file of files) {
      throwIfAborted(options.signal, 'publish')
      const target = path.join(staging, ...file.path.split('/'))
      await makeDirectory(path.dirname(target))
      await linkOrCopy(path.join(root, ...file.path.split('/')), target)
    }
    await fs.writeFile(path.join(staging, PACK_MANIFEST_FILE), manifestBytes(manifest))
    const label = path.basename(root)
    let last = { bytes: 0, total: 0 }
    const cid = await store.addDirectory(staging, {
      cidVersion: options.cidVersion,
      pin: true,
      signal: options.signal,
      onProgress: options.onProgress === undefined
        ? undefined
        : ({ bytes, total }) => {
            last = { bytes, total: total ?? 0 }
            options.onProgress?.({ file: label, status: 'progress', loaded: bytes, total: last.total, model: label, modelLoaded: bytes, modelTotal: last.total })
          }
    })
    options.onProgress?.({ file: label, status: 'done', loaded: last.total, total: last.total, model: label, modelLoaded: last.total, modelTotal: last.total })
    return { cid: cid.toString(), manifest }
  } catch (err) {
    throw inUserTerms(err, staging, root)
  } finally {
    await store.releaseStagingDir(staging)
  }
}

/** An error about a file in the staging folder, told about the same file in the user's folder. */
function inUserTerms (err: unknown, staging: string, root: string): unknown {
  if (!(err instanceof Error)) return err
  err.message = err.message.split(staging).join(root)
  const context = (err as { context?: Record<string, unknown> }).context
  if (context !== undefined && typeof context.file === 'string') context.file = context.file.split(staging).join(root)
  return err
}

// ---------------------------------------------------------------------------------------------------
// Walking and exporting a UnixFS tree

function readMarker (dir: string): PackMarker | undefined {
  try {
    const marker = JSON.parse(readFileSync(path.join(dir, PACK_MARKER_FILE), 'utf8')) as PackMarker
    return typeof marker.cid === 'string' && marker.manifest?.format === PACK_FORMAT ? marker : undefined
  } catch {
    return undefined
  }
}

/** Checks the pulled files against the pack's manifest: the same paths, the same sizes. */
function checkAgainstManifest (manifest: ModelPackManifest, entries: TreeEntry[], cid: string): void {
  const actual = new Map(entries.filter(e => e.type === 'file' && !isReserved(e.path)).map(e => [e.path, e.size]))
  for (const f of manifest.files) {
    const size = actual.get(f.path)
    if (size === undefined) throw new ContentVerificationError(`pack ${cid}: ${f.path} is in ${PACK_MANIFEST_FILE} but not in the pack`, { context: { cid, file: f.path } })
    if (size !== f.size) throw new ContentVerificationError(`pack ${cid}: ${f.path} has ${size} bytes, ${PACK_MANIFEST_FILE} says ${f.size}`, { context: { cid, file: f.path } })
    actual.delete(f.path)
  }
  const extra = [...actual.keys()]
  if (extra.length > 0) throw new ContentVerificationError(`pack ${cid}: ${extra.join(', ')} not listed in ${PACK_MANIFEST_FILE}`, { context: { cid, file: extra[0] } })
}

/**
 * Pulls pack `cid` into the model cache (`<cacheDir>/ipfs/<cid>`), pins it and returns the folder. A pack
 * already complete there is returned without touching the store. A pack without a manifest (a plain
 * `ipfs add -r` of a model folder) is accepted; its manifest is then made from the pulled files.
 * @throws ValidationError (field `cid`) for a malformed CID, before any I/O.
 * @throws ContentVerificationError for unsafe entries, content that does not match its CID or a manifest
 *   that does not match the files; NotFoundError for a missing block; AbortError when `signal` aborts.
 *   In every case the cache is left as it was.
 */
export async function pullModel (store: HeliaStore, cid: CID | string, options: PullModelOptions = {}): Promise<PulledModel> {
  const root = toCid(cid)
  const name = typeof cid === 'string' ? root.toString() : cid.toString()
  const cacheDir = options.cacheDir ?? defaultPackCacheDir()
  const dest = packDir(cacheDir, root)
  const existing = readMarker(dest)
  if (existing !== undefined) return { dir: dest, manifest: existing.manifest, cid: existing.cid, cached: true }

  await removeDeadTemporaries(path.dirname(dest))
  let manifest: ModelPackManifest | undefined
  try {
    await exportUnixfs(store, root, dest, {
      signal: options.signal,
      onProgress: options.onProgress,
      label: name,
      field: options.field ?? 'cacheDir',
      replace: true,
      directoryOnly: true,
      beforeCommit: async (temp, entries) => {
        if (entries.some(e => e.path === PACK_MANIFEST_FILE && e.type === 'file')) {
          manifest = parseManifest(await fs.readFile(path.join(temp, PACK_MANIFEST_FILE), 'utf8'), name)
          checkAgainstManifest(manifest, entries, name)
        } else {
          if (!entries.some(e => e.path === 'config.json' && e.type === 'file')) {
            throw new ModelLoadError(`pack ${name} has neither ${PACK_MANIFEST_FILE} nor config.json: it is not a model folder`, { context: { cid: name, model: name, file: 'config.json' } })
          }
          const files = entries.filter(e => e.type === 'file' && !isReserved(e.path)).map(e => ({ path: e.path, size: e.size }))
          manifest = await buildManifest(temp, files)
        }
        await store.pin(root, { signal: options.signal })
        const marker: PackMarker = { cid: name, manifest }
        await fs.writeFile(path.join(temp, PACK_MARKER_FILE), JSON.stringify(marker, null, 2) + '\n')
      }
    })
  } catch (err) {
    // A concurrent pull of the same pack may have finished first: its copy is as good as ours.
    const raced = readMarker(dest)
    if (raced !== undefined && (err as Error).name !== 'AbortError') return { dir: dest, manifest: raced.manifest, cid: raced.cid, cached: true }
    throw err
  }
  return { dir: dest, manifest: manifest as ModelPackManifest, cid: name, cached: false }
}

/**
 * Removes what pulls killed mid-way (SIGKILL, a crash) left in `<cacheDir>/ipfs`, whichever pack they
 * were pulling: temporary copies (`.partial-<name>-<pid>-<hex>`) and folders moved aside to be replaced
 * (`.stale-…`), once their process is gone. exportUnixfs cleans only those of the pack it exports, so a
 * pack never pulled again would leave its partial copy behind for good.
 */
async function removeDeadTemporaries (folder: string): Promise<void> {
  for (const name of await fs.readdir(folder).catch(() => [] as string[])) {
    const m = /^\.(?:partial|stale)-[^-]+-(\d+)-[0-9a-f]+$/.exec(name)
    if (m === null) continue
    const pid = Number(m[1])
    if (pid !== process.pid && !processAlive(pid)) await fs.rm(path.join(folder, name), { recursive: true, force: true }).catch(() => {})
  }
}

/** Reads the manifest at the root of pinned pack `cid`, or undefined when `cid` is not a model pack. */
async function pinnedManifest (store: HeliaStore, cid: CID, signal?: AbortSignal): Promise<ModelPackManifest | undefined> {
  try {
    const stat = await store.stat(cid, { signal })
    if (stat.type !== 'directory' && stat.type !== 'hamt-sharded-directory') return undefined
    const file = await store.resolve(cid, PACK_MANIFEST_FILE, { signal })
    return parseManifest(new TextDecoder().decode(await store.get(file, { signal })), cid.toString())
  } catch (err) {
    if (err instanceof NotFoundError || err instanceof ValidationError || err instanceof ContentVerificationError) return undefined
    throw err
  }
}

/**
 * Every model pack known here: those pinned in the store (published or pulled) and those complete in
 * the cache folder, each once, sorted by CID.
 */
export async function listModels (store: HeliaStore, cacheDir: string = defaultPackCacheDir(), options: { signal?: AbortSignal } = {}): Promise<ModelPackEntry[]> {
  const byKey = new Map<string, ModelPackEntry>()
  for await (const cid of store.pins(options)) {
    const manifest = await pinnedManifest(store, cid, options.signal)
    if (manifest === undefined) continue
    const key = cid.toV1().toString()
    if (!byKey.has(key)) byKey.set(key, { cid: cid.toString(), manifest, pinned: true })
  }
  const packs = path.join(cacheDir, 'ipfs')
  const names = await fs.readdir(packs).catch(() => [] as string[])
  for (const name of names.sort()) {
    if (name.startsWith('.')) continue
    const dir = path.join(packs, name)
    const marker = readMarker(dir)
    if (marker === undefined) continue
    const known = byKey.get(name)
    if (known !== undefined) {
      known.dir = dir
      known.cid = marker.cid
    } else byKey.set(name, { cid: marker.cid, manifest: marker.manifest, pinned: false, dir })
  }
  return [...byKey.values()].sort((a, b) => (a.cid < b.cid ? -1 : a.cid > b.cid ? 1 : 0))
}
