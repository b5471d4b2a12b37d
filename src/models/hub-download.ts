/**
 * Downloads a hub model into the local model cache through transformers.js itself, so that the files
 * chosen (which ONNX sessions, which dtype suffix, whether a tokenizer or processor exists) are exactly
 * the ones transformers.js will later load, and the cache layout is its own `FileCache` layout:
 * `<cacheDir>/<org>/<name>/` for revision `main`, `<cacheDir>/<org>/<name>/<revision>/` otherwise. The
 * folder returned loads offline with `env.allowRemoteModels = false`.
 *
 * transformers.js 4.3.2 has no public "download a file" call (`getModelFile` is internal, and
 * `ModelRegistry` only lists and probes files), so the download runs the same `from_pretrained` calls a
 * load does: `AutoConfig`, `ModelRegistry.get_pipeline_files` to learn the file set, `AutoTokenizer`
 * and `AutoProcessor` when the model has those files, and the task's `AutoModelFor…` class, whose
 * sessions are created on CPU with one thread and disposed at once. A failure to *construct* one of
 * these after its files arrived (an fp16 graph the CPU cannot run, an unknown processor class) does not
 * fail the download: the files are what this module promises, running them is the engine's concern.
 *
 * After a complete download a small manifest records the file set per (dtype, task), and each file's
 * size, so a second call returns from disk without touching the network or transformers.js; a file whose
 * size no longer matches is deleted and fetched again. A body that breaks off, or ends short of the size
 * the host announced (its `bytes=0-0` probe, else Content-Length), fails the download before the file is
 * renamed into the cache.
 */
import { existsSync, statSync } from 'node:fs'
import { readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { homedir } from 'node:os'
import { dirname, join } from 'node:path'
import type { ProgressInfo } from '@huggingface/transformers'
import { AbortError, ModelLoadError, ValidationError } from '../errors.js'
import type { ModelConfig, Precision, Task } from '../config/schema.js'
import { silentLogger, type Logger } from '../logging/logger.js'
import { DEFAULT_REVISION, expandHome, isValidHubRepo, isValidRevision } from './model-reference.js'
import { pipelineTaskFor, supportedTasks, type ModelConfigJson } from './task-inference.js'
import { processAlive } from '../content/repo-lock.js'
import { makeDirectory } from '../content/make-directory.js'

type Transformers = typeof import('@huggingface/transformers')
type TransformersEnv = Transformers['env']

/** Where models go when neither the model entry nor `hub.cache_dir` says: `$IPFS_ACCELERATE_HOME/models`, else `~/.cache/ipfs-accelerate/models`. */
export function defaultModelCacheDir (homeDir: string = homedir(), env: Record<string, string | undefined> = process.env): string {
  // IPFS_ACCELERATE_HOME moves every default folder of the package (see docs/configuration.md).
  const root = env.IPFS_ACCELERATE_HOME
  return root !== undefined && root !== '' ? join(root, 'models') : join(homeDir, '.cache', 'ipfs-accelerate', 'models')
}

/**
 * The cache root for a model: its own `cache_dir`, else `hub.cache_dir`, else the default. A leading
 * `~` is expanded.
 */
export function resolveModelCacheDir (config: { hub?: { cache_dir?: string } }, model?: Pick<ModelConfig, 'cache_dir'>, homeDir: string = homedir()): string {
  const dir = model?.cache_dir ?? config.hub?.cache_dir
  return dir === undefined ? defaultModelCacheDir(homeDir) : expandHome(dir, homeDir)
}

/** The folder a download of `repo` at `revision` lands in (transformers.js's FileCache layout). */
export function cachedModelDir (cacheDir: string, repo: string, revision: string = DEFAULT_REVISION): string {
  return revision === DEFAULT_REVISION ? join(cacheDir, ...repo.split('/')) : join(cacheDir, ...repo.split('/'), ...revision.split('/'))
}

/** One progress report for one file of a model. */
export interface DownloadProgressEvent {
  /** Hub repository. */
  model: string
  /** File path inside the repository (`onnx/model.onnx`). */
  file: string
  /**
   * `initiate`, `download`, `progress`…, `done` for a file fetched from the host; one `cached` (and
   * nothing else) for a file that was already in the cache folder and was not fetched.
   */
  status: 'initiate' | 'download' | 'progress' | 'done' | 'cached'
  /** Bytes of this file received so far (equal to `total` at `done`, and at `cached`). */
  loaded: number
  /** Size of this file in bytes; 0 while unknown. */
  total: number
  /** Bytes in place over all of this model's files: received so far, plus the sizes of `cached` files. */
  modelLoaded: number
  /** Known size of all of this model's files; grows while sizes become known. */
  modelTotal: number
}

export interface DownloadModelOptions {
  /** Branch, tag or commit. Default `main`. */
  revision?: string
  /** Cache root. Default: `defaultModelCacheDir()`; see `resolveModelCacheDir` for the config's choice. */
  cacheDir?: string
  /** Server laid out like the hub (`/{model}/resolve/{revision}/{file}`). Default `https://huggingface.co/`. */
  remoteHost?: string
  /** Weight variant: picks the ONNX file suffix (fp32 none, fp16 `_fp16`, q8 `_quantized`, ...). Default: the model's own choice for CPU. */
  dtype?: Precision
  /** Decides which files: a tokenizer for text tasks, a processor for image/audio, encoder+decoder for Whisper. Default: inferred from config.json. */
  task?: Task
  /** Called for each progress step of each file actually fetched (and once, as `cached`, for a file found in the cache). */
  onProgress?: (event: DownloadProgressEvent) => void
  /** Aborts waiting and downloading; the call then rejects with AbortError and leaves no partial file. */
  signal?: AbortSignal
  /** False: never contact the host; a model not fully cached is a ModelLoadError. Default true. */
  allowRemote?: boolean
  logger?: Logger
}

export interface DownloadedModel {
  /** Local folder holding the model, loadable offline. */
  dir: string
  /** Files present, relative to `dir`, `/`-separated, sorted. */
  files: string[]
  repo: string
  revision: string
  /** True when everything was already cached and nothing was fetched. */
  cached: boolean
}

export const DEFAULT_REMOTE_HOST = 'https://huggingface.co/'

/** Files transformers.js reads when present and does without otherwise. */
export const OPTIONAL_MODEL_FILES: readonly string[] = Object.freeze([
  'tokenizer_config.json', 'preprocessor_config.json', 'generation_config.json', 'special_tokens_map.json'
])

const MANIFEST_DIR = '.ipfs-accelerate-downloads'

/** Settings of transformers.js's `env` a caller may change for the duration of `withTransformersEnv`. */
export type TransformersEnvOverrides = Partial<Omit<TransformersEnv, 'version' | 'backends'>>

/**
 * transformers.js keeps its settings in one process-wide `env` object. This queue is the one piece of
 * module state here, on purpose: it must be shared by every caller in the process, since what it guards
 * is itself process-wide. Runs one job at a time, in arrival order.
 */
class SerialQueue {
  #tail: Promise<unknown> = Promise.resolve()

  run<T> (job: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    const previous = this.#tail
    let release!: () => void
    const turn = new Promise<void>(resolve => { release = resolve })
    this.#tail = previous.then(() => turn)
    return (async () => {
      try {
        await waitOrAbort(previous.catch(() => {}), signal)
        return await job()
      } finally {
        release()
      }
    })()
  }
}

const envQueue = new SerialQueue()

async function waitOrAbort (promise: Promise<unknown>, signal?: AbortSignal): Promise<void> {
  if (signal === undefined) {
    await promise
    return
  }
  signal.throwIfAborted()
  let onAbort!: () => void
  const aborted = new Promise<never>((_resolve, reject) => {
    onAbort = () => reject(signal.reason)
    signal.addEventListener('abort', onAbort, { once: true })
  })
  try {
    await Promise.race([promise, aborted])
  } finally {
    signal.removeEventListener('abort', onAbort)
  }
}

/**
 * Runs `fn` with `overrides` applied to transformers.js's global `env`, restoring every overridden key
 * afterwards, and never alongside another `withTransformersEnv` call (downloads use it too). Code that
 * loads models while depending on `env` (e.g. `allowRemoteModels = false` for an offline load) should
 * go through this, so a concurrent download cannot flip those settings under it. Not re-entrant: calling
 * it (or `downloadModel`) from inside `fn` waits forever.
 */
export async function withTransformersEnv<T> (
  overrides: TransformersEnvOverrides | ((current: Readonly<TransformersEnv>) => TransformersEnvOverrides),
  fn: (env: TransformersEnv) => Promise<T>,
  signal?: AbortSignal
): Promise<T> {
  const { env } = await import('@huggingface/transformers')
  return await envQueue.run(async () => {
    // A function sees the settings as they are once it is this caller's turn (e.g. to wrap `env.fetch`).
    const values = typeof overrides === 'function' ? overrides(env) : overrides
    const mutable = env as unknown as Record<string, unknown>
    const saved = new Map<string, unknown>()
    for (const key of Object.keys(values)) saved.set(key, mutable[key])
    try {
      Object.assign(env, values)
      return await fn(env)
    } finally {
      for (const [key, value] of saved) mutable[key] = value
    }
  }, signal)
}

interface Manifest {
  version: 1
  repo: string
  revision: string
  /** `${dtype}|${task}` -> files of a complete download. */
  complete: Record<string, string[]>
  /**
   * File -> its size in bytes when the download completed. A cache hit checks these (a stat per file,
   * no hashing): a file whose size changed is deleted and fetched again. Manifests written before sizes
   * were recorded lack it, and their files are trusted as they are.
   */
  sizes?: Record<string, number>
}

function manifestPath (cacheDir: string, repo: string, revision: string): string {
  return join(cacheDir, MANIFEST_DIR, ...repo.split('/'), `${encodeURIComponent(revision)}.json`)
}

async function readManifest (path: string): Promise<Manifest | undefined> {
  try {
    const parsed = JSON.parse(await readFile(path, 'utf8')) as Manifest
    return parsed?.version === 1 && typeof parsed.complete === 'object' && parsed.complete !== null ? parsed : undefined
  } catch {
    return undefined
  }
}

async function writeManifest (path: string, manifest: Manifest): Promise<void> {
  await makeDirectory(dirname(path))
  const temp = `${path}.${process.pid}.${Date.now()}.tmp`
  await writeFile(temp, `${JSON.stringify(manifest, null, 2)}\n`)
  await rename(temp, path)
}

function allPresent (dir: string, files: readonly string[]): boolean {
  return files.every(f => existsSync(join(dir, ...f.split('/'))))
}

function fileSize (dir: string, file: string): number {
  try {
    return statSync(join(dir, ...file.split('/'))).size
  } catch {
    return 0
  }
}

/**
 * transformers.js's FileCache writes `<file>.tmp.<pid>.<random>` and renames it when complete. When a
 * transfer fails right after it starts, its unlink can run before the temporary file is even opened,
 * which leaves an empty one behind; remove this process's leftovers once the failure has settled.
 */
async function removeTemporaries (dir: string): Promise<void> {
  await new Promise(resolve => setImmediate(resolve))
  const pattern = new RegExp(`\\.tmp\\.${process.pid}\\.[0-9a-z]+$`)
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => [])
  await Promise.all(entries.filter(e => e.isFile() && pattern.test(e.name))
    .map(async e => await rm(join(e.parentPath, e.name), { force: true })))
}

/** How long a temporary file of a dead process must have been untouched before it is removed. */
const STALE_TEMPORARY_MS = 60_000

/**
 * Removes `<file>.tmp.<pid>.<random>` files that a download killed mid-file left in `dir`: their
 * process is gone and nothing else would ever delete them. A temporary of a live process, or one written
 * to within the last minute (a process of the same pid on another host sharing the folder), is kept.
 */
async function removeStaleTemporaries (dir: string): Promise<void> {
  const pattern = /\.tmp\.(\d+)\.[0-9a-z]+$/
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => [])
  await Promise.all(entries.map(async e => {
    const pid = e.isFile() ? Number(pattern.exec(e.name)?.[1]) : NaN
    if (!Number.isSafeInteger(pid) || pid <= 0 || pid === process.pid || processAlive(pid)) return
    const path = join(e.parentPath, e.name)
    const mtime = (await stat(path).catch(() => undefined))?.mtimeMs
    if (mtime !== undefined && Date.now() - mtime > STALE_TEMPORARY_MS) await rm(path, { force: true })
  }))
}

/** Files of `files` whose size on disk is not the one recorded when they were downloaded. */
function changedSizes (dir: string, files: readonly string[], sizes: Record<string, number> | undefined): string[] {
  return sizes === undefined ? [] : files.filter(f => typeof sizes[f] === 'number' && fileSize(dir, f) !== sizes[f])
}

/** `terminated (other side closed)`: an error's message with the message of its cause, if any. */
function reasonOf (err: unknown): string {
  const message = err instanceof Error ? err.message : String(err)
  const cause = (err as { cause?: unknown })?.cause
  return cause instanceof Error && cause.message !== '' && cause.message !== message ? `${message} (${cause.message})` : message
}

/**
 * Passes `response`'s body through while counting its bytes. When the body breaks off, or ends with
 * another length than `size()` (when known), the read fails with the error `fail` returns (the stream's
 * own error where it returns undefined), so transformers.js's FileCache deletes its temporary file
 * instead of renaming a short file into the cache.
 */
function watchBody (response: Response, size: () => number | undefined, fail: (received: number, cause?: unknown) => Error | undefined): Response {
  if (response.body === null) return response
  const reader = response.body.getReader()
  let received = 0
  const body = new ReadableStream<Uint8Array>({
    async pull (controller) {
      let chunk: { done: boolean, value?: Uint8Array }
      try {
        chunk = await reader.read()
      } catch (cause) {
        throw fail(received, cause) ?? cause
      }
      if (!chunk.done && chunk.value !== undefined) {
        received += chunk.value.byteLength
        controller.enqueue(chunk.value)
        return
      }
      const expected = size()
      if (expected !== undefined && expected !== received) {
        throw fail(received) ?? new Error(`received ${received} bytes, expected ${expected}`)
      }
      controller.close()
    },
    async cancel (reason) {
      await reader.cancel(reason)
    }
  })
  const watched = new Response(body, { status: response.status, statusText: response.statusText, headers: response.headers })
  Object.defineProperty(watched, 'url', { value: response.url })
  return watched
}

/** A failed request seen by the fetch wrapper: what URL, and what went wrong. */
interface FetchFailure {
  url: string
  status?: number
  error?: unknown
}

function fileOfUrl (url: string, repo: string, revision: string): string | undefined {
  const marker = `/${repo}/resolve/${encodeURIComponent(revision)}/`
  const at = url.indexOf(marker)
  return at < 0 ? undefined : decodeURIComponent(url.slice(at + marker.length))
}

function remoteUrl (host: string, repo: string, revision: string, file: string): string {
  return `${host}${repo}/resolve/${encodeURIComponent(revision)}/${file}`
}

/** Turns whatever transformers.js or fetch threw into ModelLoadError (or AbortError), naming file and URL. */
function downloadError (err: unknown, ctx: { repo: string, revision: string, host: string, failures: FetchFailure[], signal?: AbortSignal, step: string }): Error {
  if (err instanceof ModelLoadError || err instanceof AbortError || err instanceof ValidationError) return err
  if (ctx.signal?.aborted === true) {
    return new AbortError(`download of ${ctx.repo} aborted`, { cause: ctx.signal.reason ?? err, context: { model: ctx.repo } })
  }
  const where = (url: string | undefined, status?: number): { file: string, context: Record<string, unknown> } => {
    const file = (url === undefined ? undefined : fileOfUrl(url, ctx.repo, ctx.revision)) ?? ctx.step
    return { file, context: { model: ctx.repo, file, ...(url === undefined ? {} : { url }), ...(status === undefined ? {} : { status }) } }
  }
  // The fetch wrapper rethrows the very error fetch threw, so a network failure is found by identity.
  const thrown = ctx.failures.find(f => f.error !== undefined && f.error === err)
  if (thrown !== undefined) {
    const { file, context } = where(thrown.url)
    const cause = err as { cause?: { message?: string }, message?: string }
    return new ModelLoadError(`cannot reach ${ctx.host} to download ${file} of model ${ctx.repo}: ${cause.cause?.message ?? cause.message ?? String(err)}`, { cause: err, context })
  }
  const message = err instanceof Error ? err.message : String(err)
  // transformers.js puts the URL it tried, in double quotes, into its HTTP error messages.
  const url = /"(https?:\/\/[^"]+)"/.exec(message)?.[1]
  const status = (err as { status?: unknown })?.status ?? [...ctx.failures].reverse().find(f => f.url === url)?.status
  const { file, context } = where(url, typeof status === 'number' ? status : undefined)
  if ((err as { name?: string })?.name === 'ModelFileNotFoundError') {
    return new ModelLoadError(`${file} of model ${ctx.repo}@${ctx.revision} not found at ${url ?? ctx.host}${typeof status === 'number' ? ` (HTTP ${status})` : ''}`, { cause: err, context })
  }
  return new ModelLoadError(`downloading ${file} of model ${ctx.repo}@${ctx.revision} from ${url ?? ctx.host} failed: ${message}`, { cause: err, context })
}

/** Whether `err` came from fetching rather than from constructing what was fetched. */
function isDownloadFailure (err: unknown, failures: FetchFailure[], before: number): boolean {
  if ((err as { name?: string })?.name === 'ModelFileNotFoundError') return true
  // Probes of optional files answer 404/416; those are expected and say nothing about `err`.
  return failures.slice(before).some(f => f.error !== undefined || (f.status !== undefined && ![401, 403, 404, 416].includes(f.status)))
}

/**
 * Maps transformers.js progress callbacks onto DownloadProgressEvent, one `initiate`/`download`/`done`
 * per fetched file. transformers.js reports a file it finds in its cache the same way; `wasFetched`
 * (whether the fetch wrapper saw the file's body requested) tells those apart, and they become one
 * `cached` event.
 */
class ProgressAggregator {
  readonly #files = new Map<string, { loaded: number, total: number, started: boolean, done: boolean, cached?: boolean }>()
  readonly #sizes = new Map<string, number>()
  readonly #pending = new Set<string>()

  constructor (private readonly repo: string, private readonly dir: string, private readonly emit?: (e: DownloadProgressEvent) => void,
    private readonly wasFetched: (file: string) => boolean = () => true) {}

  /** Sizes learnt ahead of the transfer, so the model total is right from the first event. */
  expect (file: string, size: number): void {
    this.#sizes.set(file, size)
  }

  get fetched (): number {
    return [...this.#files.values()].filter(f => f.started && f.cached !== true).length
  }

  readonly callback = (info: ProgressInfo): void => {
    // `progress_total` and `ready` carry no file: the aggregate is computed here instead.
    if (!('file' in info) || typeof info.file !== 'string') return
    const file = info.file
    let state = this.#files.get(file)
    if (state === undefined) {
      state = { loaded: 0, total: this.#sizes.get(file) ?? 0, started: false, done: false }
      this.#files.set(file, state)
    }
    // Re-reads of a finished file (the model class reading config.json again from the cache) are not news.
    if (state.done) return
    switch (info.status) {
      case 'initiate':
        // Held back until transformers.js says the file exists, so a missing optional file makes no events.
        this.#pending.add(file)
        return
      case 'download':
        if (state.started) return
        state.started = true
        if (!this.wasFetched(file)) {
          this.#pending.delete(file)
          state.cached = true
          state.done = true
          state.total = state.loaded = fileSize(this.dir, file) || state.total
          this.#send(file, 'cached')
          return
        }
        if (this.#pending.delete(file)) this.#send(file, 'initiate')
        this.#send(file, 'download')
        return
      case 'progress':
        state.loaded = info.loaded
        if (info.total > 0) state.total = info.total
        this.#send(file, 'progress')
        return
      case 'done': {
        if (!state.started) return
        state.done = true
        const size = state.total > 0 ? state.total : Math.max(state.loaded, fileSize(this.dir, file))
        state.total = size
        state.loaded = size
        this.#send(file, 'done')
      }
    }
  }

  #send (file: string, status: DownloadProgressEvent['status']): void {
    if (this.emit === undefined) return
    const state = this.#files.get(file)
    if (state === undefined) return
    let modelLoaded = 0
    let modelTotal = 0
    const names = new Set([...this.#sizes.keys(), ...[...this.#files].filter(([, s]) => s.started).map(([f]) => f)])
    for (const name of names) {
      const s = this.#files.get(name)
      modelLoaded += s?.loaded ?? 0
      modelTotal += Math.max(s?.total ?? 0, this.#sizes.get(name) ?? 0)
    }
    this.emit({ model: this.repo, file, status, loaded: state.loaded, total: state.total, modelLoaded, modelTotal })
  }
}

function validate (repo: string, revision: string): void {
  if (typeof repo !== 'string' || !isValidHubRepo(repo)) throw ValidationError.field('model', `${JSON.stringify(repo)} is not a valid hub repository id`, { model: String(repo) })
  if (!isValidRevision(revision)) throw ValidationError.field('revision', `${JSON.stringify(revision)} is not a valid branch, tag or commit`, { model: repo })
}

function normaliseHost (host: string): string {
  let url: URL
  try {
    url = new URL(host)
  } catch (cause) {
    throw new ValidationError(`hub.remote_host: ${JSON.stringify(host)} is not a URL`, [{ path: 'hub.remote_host', message: 'expected an http:// or https:// URL' }], { cause })
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw ValidationError.field('hub.remote_host', 'expected an http:// or https:// URL')
  return url.href.endsWith('/') ? url.href : `${url.href}/`
}

/** The model class whose sessions the task loads; which one decides the ONNX files (encoder + decoder for Whisper). */
function modelClassFor (t: Transformers, task: Task | undefined, config: ModelConfigJson): { from_pretrained: (id: string, o: object) => Promise<{ dispose: () => Promise<unknown> }> } {
  switch (task) {
    case 'text_generation': return t.AutoModelForCausalLM
    case 'image_classification': return t.AutoModelForImageClassification
    case 'audio_transcription':
      return (config.architectures ?? []).some(a => /ForCTC$/.test(a)) ? t.AutoModelForCTC : t.AutoModelForSpeechSeq2Seq
    default: return t.AutoModel
  }
}

/**
 * Downloads `repo` (a hub id, after alias resolution) into the model cache through transformers.js and
 * returns the local folder. Required files (config.json, the ONNX weights, tokenizer.json when the model
 * has a tokenizer_config.json) must exist; optional ones (`OPTIONAL_MODEL_FILES`) may be missing. Calls
 * are serialised with every other `withTransformersEnv` user.
 * @throws ValidationError for a malformed repo, revision or host.
 * @throws ModelLoadError naming the file and URL for a missing required file, or with the network error
 *   as cause when the host cannot be reached; also when `allowRemote` is false and the model is not cached.
 * @throws AbortError when `signal` aborts.
 */
export async function downloadModel (repo: string, options: DownloadModelOptions = {}): Promise<DownloadedModel> {
  const revision = options.revision ?? DEFAULT_REVISION
  validate(repo, revision)
  const host = normaliseHost(options.remoteHost ?? DEFAULT_REMOTE_HOST)
  const cacheDir = options.cacheDir ?? defaultModelCacheDir()
  const dir = cachedModelDir(cacheDir, repo, revision)
  const key = `${options.dtype ?? 'default'}|${options.task ?? 'any'}`
  const manifestFile = manifestPath(cacheDir, repo, revision)
  const log = options.logger ?? silentLogger()
  const aborted = (cause: unknown): AbortError => new AbortError(`download of ${repo} aborted`, { cause, context: { model: repo } })
  if (options.signal?.aborted === true) throw aborted(options.signal.reason)

  const fromCache = async (): Promise<DownloadedModel | undefined> => {
    const manifest = await readManifest(manifestFile)
    const files = manifest?.complete[key]
    if (files === undefined || !allPresent(dir, files)) return undefined
    const changed = changedSizes(dir, files, manifest?.sizes)
    if (changed.length === 0) return { dir, files, repo, revision, cached: true }
    // Truncated or altered since it was downloaded. Deleting it makes transformers.js's cache miss, so the
    // download below fetches it again instead of failing on it forever.
    log.warn({ model: repo, revision, dir, files: changed }, 'cached model files differ in size from the download; deleting them to fetch them again')
    await Promise.all(changed.map(async f => await rm(join(dir, ...f.split('/')), { force: true })))
    return undefined
  }
  const hit = await fromCache()
  if (hit !== undefined) return hit
  if (options.allowRemote === false) {
    throw new ModelLoadError(`model ${repo}@${revision} is not in the cache at ${dir} and remote downloads are disabled (hub.allow_remote = false)`,
      { context: { model: repo, file: dir } })
  }

  // transformers.js creates its cache folders with a recursive mkdir, which spins for ever on a path
  // that cannot be created though its parent exists (/proc: see make-directory.ts): made here first.
  await makeDirectory(dir).catch((cause: unknown) => {
    throw new ModelLoadError(`the model cache folder ${dir} cannot be created: ${(cause as Error).message}`, { cause, context: { model: repo, file: dir } })
  })
  const t = await import('@huggingface/transformers')
  const failures: FetchFailure[] = []
  const signal = options.signal
  // Files whose body was requested (cache hits are not), and sizes the host announced ahead of the body.
  const fetched = new Set<string>()
  const announcedSizes = new Map<string, number>()
  // Wraps whatever fetch is configured (a proxy, an auth header) to add `signal` and note each failed URL.
  const tracked = (baseFetch: TransformersEnv['fetch']) => async (input: string | URL, init?: RequestInit): Promise<Response> => {
    const url = String(input)
    const signals = [signal, init?.signal].filter((s): s is AbortSignal => s !== undefined && s !== null)
    try {
      const response = await baseFetch(input, { ...init, ...(signals.length > 0 ? { signal: AbortSignal.any(signals) } : {}) }) as Response
      if (!response.ok) failures.push({ url, status: response.status })
      const file = fileOfUrl(url, repo, revision)
      // Only whole-file GETs: the size probes ask for `Range: bytes=0-0`.
      if (!response.ok || file === undefined || (init?.method ?? 'GET') !== 'GET' || new Headers(init?.headers).has('range')) return response
      fetched.add(file)
      // A compressed body's length says nothing about the file's; then only a broken stream is caught.
      const encoding = response.headers.get('content-encoding')
      const plain = encoding === null || encoding === 'identity'
      const length = Number(response.headers.get('content-length') ?? NaN)
      const size = (): number | undefined => plain ? announcedSizes.get(file) ?? (Number.isSafeInteger(length) ? length : undefined) : undefined
      return watchBody(response, size, (received, cause) => {
        if (signals.some(s => s.aborted)) return undefined
        const expected = size()
        const context = { model: repo, file, url, received, ...(expected === undefined ? {} : { expected }) }
        const error = cause === undefined
          ? new ModelLoadError(`${file} of model ${repo}@${revision} from ${url} is incomplete: received ${received} of the ${expected ?? '?'} bytes the host announced; nothing was cached`, { context })
          : new ModelLoadError(`downloading ${file} of model ${repo}@${revision} from ${url} failed after ${received} bytes: ${reasonOf(cause)}`, { cause, context })
        failures.push({ url, error })
        return error
      })
    } catch (error) {
      failures.push({ url, error })
      throw error
    }
  }
  const overrides = (current: Readonly<TransformersEnv>): TransformersEnvOverrides => ({
    remoteHost: host,
    remotePathTemplate: '{model}/resolve/{revision}/',
    allowRemoteModels: true,
    useFSCache: true,
    useBrowserCache: false,
    useCustomCache: false,
    experimental_useCrossOriginStorage: false,
    // ModelRegistry's tokenizer/processor probes ignore `cache_dir` and look in `env.cacheDir`.
    cacheDir,
    fetch: tracked(current.fetch)
  })

  return await withTransformersEnv(overrides, async () => {
    // Another call may have completed the same download while this one waited its turn.
    const done = await fromCache()
    if (done !== undefined) return done
    // A download killed mid-file (Ctrl-C, a crash) leaves its temporary file behind.
    await removeStaleTemporaries(dir)
    const progress = new ProgressAggregator(repo, dir, options.onProgress, file => fetched.has(file))
    const base = { cache_dir: cacheDir, revision, progress_callback: progress.callback }
    let step = 'config.json'
    const errorContext = { repo, revision, host, failures, signal, get step () { return step } }
    try {
      const config = await t.AutoConfig.from_pretrained(repo, base)
      const configJson = config as unknown as ModelConfigJson
      const task = options.task ?? supportedTasks(configJson)[0]
      step = 'file list'
      const lookup = { config, device: 'cpu' as const, ...(options.dtype === undefined ? {} : { dtype: options.dtype }) }
      const expected = task === undefined
        ? await t.ModelRegistry.get_files(repo, lookup)
        : await t.ModelRegistry.get_pipeline_files(pipelineTaskFor(task), repo, lookup)
      await Promise.all(expected.map(async file => {
        // Sizes up front give the aggregate total; transformers.js memoises these probes and reuses them.
        const meta = await t.ModelRegistry.get_file_metadata(repo, file, { cache_dir: cacheDir, revision }).catch(() => undefined)
        if (meta?.exists === true && meta.size !== undefined) progress.expect(file, meta.size)
        // The host's size for a file still to fetch: its body must have exactly this many bytes.
        if (meta?.exists === true && meta.size !== undefined && meta.fromCache !== true) announcedSizes.set(file, meta.size)
      }))
      signal?.throwIfAborted()

      const tolerate = async (name: string, load: () => Promise<{ dispose?: () => Promise<unknown> } | unknown>): Promise<void> => {
        step = name
        const before = failures.length
        try {
          const loaded = await load() as { dispose?: () => Promise<unknown> }
          await loaded?.dispose?.()
        } catch (err) {
          if (signal?.aborted === true || isDownloadFailure(err, failures, before)) throw err
          log.warn({ err, model: repo, step: name }, 'files downloaded, but transformers.js could not construct them on CPU; kept for the engine to load')
        }
      }
      if (expected.includes('tokenizer.json') || expected.includes('tokenizer_config.json')) {
        await tolerate('tokenizer.json', async () => await t.AutoTokenizer.from_pretrained(repo, base))
      }
      if (expected.includes('preprocessor_config.json')) {
        await tolerate('preprocessor_config.json', async () => await t.AutoProcessor.from_pretrained(repo, base))
      }
      const onnx = expected.filter(f => f.endsWith('.onnx') || /\.onnx_data(_\d+)?$/.test(f))
      await tolerate(onnx[0] ?? 'onnx', async () => await modelClassFor(t, task, configJson).from_pretrained(repo, {
        ...base,
        config,
        device: 'cpu',
        ...(options.dtype === undefined ? {} : { dtype: options.dtype }),
        session_options: { intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: 'disabled' }
      }))

      const missing = expected.filter(f => !OPTIONAL_MODEL_FILES.includes(f) && !allPresent(dir, [f]))
      if (missing.length > 0) {
        const url = remoteUrl(host, repo, revision, missing[0])
        // What went wrong with it, when the fetch wrapper saw (transformers.js may have swallowed it).
        const failure = [...failures].reverse().find(f => f.url === url)
        const reason = failure?.error !== undefined ? `: ${reasonOf(failure.error)}` : failure?.status !== undefined ? ` (HTTP ${failure.status})` : ''
        throw new ModelLoadError(`${missing[0]} of model ${repo}@${revision} was not downloaded from ${url}${reason}`,
          { context: { model: repo, file: missing[0], url, ...(failure?.status === undefined ? {} : { status: failure.status }) }, ...(failure?.error === undefined ? {} : { cause: failure.error }) })
      }
      const files = [...new Set(expected.filter(f => allPresent(dir, [f])))].sort()
      const manifest = await readManifest(manifestFile) ?? { version: 1, repo, revision, complete: {} }
      manifest.complete[key] = files
      manifest.sizes = { ...manifest.sizes, ...Object.fromEntries(files.map(f => [f, fileSize(dir, f)])) }
      await writeManifest(manifestFile, manifest)
      log.debug({ model: repo, revision, dir, files, fetched: progress.fetched }, 'model downloaded')
      return { dir, files, repo, revision, cached: false }
    } catch (err) {
      await removeTemporaries(dir)
      throw downloadError(err, errorContext)
    }
  }, signal).catch((err: unknown) => {
    // Aborted while still waiting for the queue.
    if (signal?.aborted === true && !(err instanceof AbortError) && !(err instanceof ModelLoadError)) throw aborted(signal.reason ?? err)
    throw err
  })
}
