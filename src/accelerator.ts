/**
 * `IpfsAccelerate`: the facade of the seed's API. It owns every component (config, logger, hardware
 * detection, inference engine, result cache, content stores) and creates the heavy ones lazily, so
 * constructing one is cheap and `stop()` releases everything it started.
 */
import { types } from 'node:util'
import { resolveConfig, resolveMetadata, type ResolveOptions } from './config/resolve.js'
import { ENDPOINT_TYPES, type ResourcesInit, type ResolvedConfig, type EndpointType, type Metadata } from './config/schema.js'
import { parseSize } from './config/units.js'
import { AbortError, ModelLoadError, ValidationError, toStorageError } from './errors.js'
import { createLogger, componentLogger, type Logger } from './logging/logger.js'
import { HardwareDetection } from './hardware/index.js'
import { InferenceEngine, type RunOptions } from './inference/engine.js'
import { ResultCache } from './inference/result-cache.js'
import { checkPlainInput } from './inference/canonical-input.js'
import type { EndpointInfo, ModelProgressEvent } from './inference/protocol.js'
import { describe } from './inference/inputs/token-ids.js'
import { parseModelReference } from './models/model-reference.js'
import type { ContentRouter } from './content/content-router.js'
import type { ResultStore } from './content/result-store.js'
import { isPulled, type PublishedModel, type PulledModel, type PackProgressEvent } from './content/model-pack.js'
import { checkFolderPath } from './content/unixfs-export.js'
import { guardListener } from './guard-listener.js'

/** Per-call options of `processAsync`: `onToken`, `onProgress`, `signal` (the engine sets `source` itself). */
export type ProcessOptions = Omit<RunOptions, 'source'>

/** Seed-shaped inference result: task fields plus `model` and `inference_time` (seconds). */
export type InferenceResult = Record<string, unknown> & { model: string, inference_time: number }

export interface IpfsAccelerateOptions extends ResolveOptions {
  /** A logger to use instead of one built from `logging`. */
  logger?: Logger
}

/** What `initEndpoints` returns for a model when `performance.enable_prefetch` is false. */
export interface DeferredEndpoint {
  model: string
  endpoint_type: EndpointType
  deferred: true
}

export interface InitEndpointsResources {
  /** Task per model, when config.json alone would not pick the one wanted. */
  endpoint_types?: Record<string, EndpointType>
}

export class IpfsAccelerate {
  readonly config: ResolvedConfig
  readonly metadata: Readonly<Metadata>
  readonly logger: Logger
  readonly hardwareDetection: HardwareDetection
  private engineInstance?: InferenceEngine
  private readonly resultCache?: ResultCache
  private contentPromise?: Promise<ContentRouter>
  private resultStorePromise?: Promise<ResultStore>
  private releaseStore?: () => Promise<void>
  /** Local folders of content-addressed models already pulled, by identifier. */
  private readonly pulled = new Map<string, string>()
  /** `onProgress` listeners; they outlive any one engine (a crashed worker is replaced). */
  private readonly progressListeners = new Set<(event: ModelProgressEvent) => void>()
  private stopped = false
  /** `ipfsCidOf` per model id (see there). */
  private readonly ipfsCids = new Map<string, string | undefined>()
  private stopPromise?: Promise<void>
  /** Aborted by stop(): IPFS transfers in flight end at once instead of running out their timeouts. */
  private readonly stopping = new AbortController()

  constructor (resources?: ResourcesInit | null, metadata?: Metadata | null, options: IpfsAccelerateOptions = {}) {
    this.config = resolveConfig(resources, options)
    this.metadata = resolveMetadata(metadata)
    checkLogger(options.logger)
    this.logger = options.logger ?? createLogger(this.config.logging)
    this.hardwareDetection = new HardwareDetection()
    if (this.config.performance.enable_caching) {
      this.resultCache = new ResultCache(parseSize(this.config.performance.cache_size) ?? 0)
    }
  }

  private checkNotStopped (): void {
    if (this.stopped) throw new AbortError('this IpfsAccelerate instance was stopped')
  }

  private get engine (): InferenceEngine {
    this.checkNotStopped()
    if (this.engineInstance !== undefined && !this.engineInstance.alive) {
      // The worker crashed (its pending calls failed with the reason): start afresh; models load again on use.
      this.logger.warn('the inference worker had exited; starting a new one')
      this.engineInstance = undefined
    }
    if (this.engineInstance === undefined) {
      this.engineInstance = new InferenceEngine({
        config: this.config,
        detectHardware: () => this.hardwareDetection.detectAllHardware(),
        logger: componentLogger(this.logger, 'inference')
      })
      this.engineInstance.on('progress', event => {
        for (const listener of this.progressListeners) listener(event)
      })
    }
    return this.engineInstance
  }

  /** Checks what every inference entry point is given; the task-specific checks run in the worker. */
  private checkCall (model: unknown, endpointType: unknown, input: unknown): EndpointType {
    if (typeof model !== 'string' || model.trim() === '') throw ValidationError.field('model', `expected a non-empty model identifier, got ${describe(model)}`)
    checkPlainInput(input, 'input')
    if (endpointType === undefined || endpointType === null) return 'auto'
    if (typeof endpointType !== 'string' || !(ENDPOINT_TYPES as readonly string[]).includes(endpointType)) {
      throw ValidationError.field('endpoint_type', `unknown endpoint type ${JSON.stringify(endpointType)}; expected one of ${ENDPOINT_TYPES.join(', ')}`)
    }
    return endpointType as EndpointType
  }

  private cacheKey (model: string, endpointType: EndpointType, input: unknown): string | undefined {
    return this.resultCache === undefined || !isRepeatable(input) ? undefined : ResultCache.key(model, endpointType, input)
  }

  /**
   * Synchronous inference: returns the result itself, not a Promise. The calling thread blocks while
   * the model runs in the inference worker (and, on first use, while the model is fetched and loaded).
   */
  process (model: string, input: unknown, endpointType?: EndpointType | null): InferenceResult {
    const type = this.checkCall(model, endpointType, input)
    // Before the cache: it still answers while stop() is clearing it.
    this.checkNotStopped()
    const key = this.cacheKey(model, type, input)
    const hit = key === undefined ? undefined : this.resultCache?.get(key)
    if (hit !== undefined) return hit as InferenceResult
    const result = this.engine.runSync(model, input, type, this.pulledSourceSync(model)) as InferenceResult
    if (key !== undefined) this.resultCache?.set(key, result)
    return result
  }

  /** Asynchronous inference on the same engine as `process()`. */
  async processAsync (model: string, input: unknown, endpointType?: EndpointType | null, options: ProcessOptions = {}): Promise<InferenceResult> {
    const type = this.checkCall(model, endpointType, input)
    const onProgress = this.progressOf<ModelProgressEvent>(options)
    this.checkNotStopped()
    // Given up already: no cache lookup, no pull, no worker call.
    if (options.signal?.aborted === true) throw new AbortError('the call was aborted before it started')
    // Streaming callers want the tokens as they come, so they bypass the cache.
    const key = options.onToken === undefined ? this.cacheKey(model, type, input) : undefined
    const hit = key === undefined ? undefined : this.resultCache?.get(key)
    if (hit !== undefined) return hit as InferenceResult
    const result = await this.engine.run(model, input, type, { ...options, onProgress, source: await this.pulledSource(model) }) as InferenceResult
    if (key !== undefined) this.resultCache?.set(key, result)
    return result
  }

  /** Generated text as it is produced (text generation only); the last value is the full result. */
  async * streamGeneration (model: string, input: unknown): AsyncGenerator<string, InferenceResult> {
    const queue: string[] = []
    let wake: (() => void) | undefined
    let finished = false
    // Leaving the loop early (break, return, throw) stops the generation in the worker.
    const abandon = new AbortController()
    const run = this.processAsync(model, input, 'text_generation', {
      signal: abandon.signal,
      onToken: text => {
        queue.push(text)
        wake?.()
      }
    }).finally(() => {
      finished = true
      wake?.()
    })
    // Surface a failure through the awaited `run` below, not as an unhandled rejection.
    run.catch(() => {})
    try {
      while (!finished || queue.length > 0) {
        if (queue.length === 0) await new Promise<void>(resolve => { wake = resolve })
        wake = undefined
        while (queue.length > 0) yield queue.shift() as string
      }
      return await run
    } finally {
      if (!finished) abandon.abort()
    }
  }

  /**
   * Inference that may use IPFS. With `useIpfs` false it runs locally, exactly like `processAsync`.
   * With `useIpfs` true, results live in IPFS: a result computed before (by this process or an earlier
   * one sharing the repository) is read back from the store and verified against its CID instead of
   * being computed again; a new result is stored and pinned. Either way the result carries
   * `result_cid`. Store failures surface as `IpfsConnectionError` / `TimeoutError`, so a caller can fall
   * back to `process()` as in the seed's error-recovery example.
   */
  async accelerateInference (model: string, input: unknown, useIpfs = true): Promise<InferenceResult> {
    if (typeof useIpfs !== 'boolean') throw ValidationError.field('use_ipfs', `expected true or false, got ${describe(useIpfs)}`)
    if (!useIpfs) return await this.processAsync(model, input, 'auto')
    const type = this.checkCall(model, 'auto', input)
    return await this.untilStopped('accelerateInference', async () => {
      // A sampled generation without a seed is new every time: stored, never served from the store.
      if (!isRepeatable(input)) {
        const result = await this.processAsync(model, input, type)
        const cid = await (await this.router()).put(new TextEncoder().encode(JSON.stringify(result)), { pin: true, signal: this.stopping.signal })
        return { ...result, result_cid: cid.toString() }
      }
      const key = ResultCache.key(model, type, input)
      const results = await this.resultStore()
      const stored = await results.get(key)
      if (stored !== undefined) return { ...stored.value, result_cid: stored.cid } as unknown as InferenceResult
      const result = await this.processAsync(model, input, type)
      const cid = await results.set(key, result)
      return { ...result, result_cid: cid }
    })
  }

  /** The content stores (embedded Helia node, plus Kubo and gateways when configured), started on first use. */
  async content (): Promise<ContentRouter> {
    return await this.untilStopped('content', async () => await this.router())
  }

  /** `content()` without the disk-failure conversion: the entry points that use it convert under their own name. */
  private async router (): Promise<ContentRouter> {
    this.checkNotStopped()
    this.contentPromise ??= (async () => {
      await import('./content/polyfills.js')
      const { ContentRouter } = await import('./content/content-router.js')
      const { leaseHeliaStore } = await import('./content/shared-helia-stores.js')
      const logger = componentLogger(this.logger, 'content')
      // Instances of one process share the embedded store of a repository (one may open it at a time).
      const lease = await leaseHeliaStore({ repo: this.config.ipfs.repo, cidVersion: this.config.ipfs.cid_version, logger })
      this.releaseStore = lease.release
      try {
        return await ContentRouter.create({ config: this.config.ipfs, logger, helia: lease.store })
      } catch (err) {
        await lease.release()
        throw err
      }
    })()
    return await this.contentPromise
  }

  private async resultStore (): Promise<ResultStore> {
    this.resultStorePromise ??= (async () => {
      const router = await this.router()
      const { ResultStore } = await import('./content/result-store.js')
      return new ResultStore(router, router.helia.repo, { logger: componentLogger(this.logger, 'content') })
    })()
    return await this.resultStorePromise
  }

  /** Stores bytes in IPFS; returns the CID string (equal to Kubo's `ipfs add` for the same bytes). */
  async storeToIpfs (data: Uint8Array): Promise<string> {
    // types.isUint8Array, not instanceof: a Proxy around bytes passes instanceof and fails every read
    if (!types.isUint8Array(data)) throw ValidationError.field('data', `expected bytes (Uint8Array or Buffer), got ${describe(data)}`)
    return await this.untilStopped('storeToIpfs', async () => {
      const router = await this.router()
      return (await router.put(data, { pin: true, cidVersion: this.config.ipfs.cid_version, signal: this.stopping.signal })).toString()
    })
  }

  /** Reads content by CID (bare, `ipfs://` or `/ipfs/` form), verified against the CID. */
  async queryIpfs (cid: string): Promise<Uint8Array> {
    if (typeof cid !== 'string') throw ValidationError.field('cid', `expected a CID string, got ${describe(cid)}`)
    const { parseIpfsPath } = await import('./content/cid.js')
    const ref = parseIpfsPath(cid) // a ValidationError before any I/O
    return await this.untilStopped('queryIpfs', async () => await (await this.router()).get(ref.path === '' ? ref.cid : cid, { signal: this.stopping.signal }))
  }

  /**
   * Publishes a model folder (or a hub id, downloaded first) as one UnixFS directory; returns its CID
   * and manifest. The pack is pinned; `ipfs://<cid>` then names the whole model.
   */
  async publishModel (folderOrId: string, options: { onProgress?: (e: PackProgressEvent) => void } = {}): Promise<PublishedModel> {
    if (typeof folderOrId !== 'string' || folderOrId.trim() === '') throw ValidationError.field('model', 'expected a folder or a model id')
    const onProgress = this.progressOf<PackProgressEvent>(options)
    return await this.untilStopped('publishModel', async () => {
      const dir = (await this.engine.load(folderOrId, 'auto')).dir
      const router = await this.router()
      const { publishModel } = await import('./content/model-pack.js')
      // Only a hub id is worth recording as the source: a local path would leak into the manifest and
      // make the same model's CID depend on where it sits on this machine.
      const ref = parseModelReference(folderOrId, this.config)
      const source = ref.kind === 'hub' ? `${ref.repo}@${ref.revision}` : undefined
      const published = await publishModel(router.helia, dir, { onProgress, source, cidVersion: this.config.ipfs.cid_version })
      // with `ipfs.local_node`, the Kubo node gets the pack too (pinned), so the IPFS network can find it there
      const { parseCid } = await import('./content/cid.js')
      await router.replicate(parseCid(published.cid), { signal: this.stopping.signal })
      return published
    })
  }

  /**
   * The `onProgress` of a call's options (processAsync, initEndpoints, publishModel, pullModel), the
   * options checked first (checkProcessOptions, before any I/O) and the listener guarded (guard-listener.ts).
   */
  private progressOf<E> (options: unknown): ((event: E) => void) | undefined {
    checkProcessOptions(options)
    return options.onProgress === undefined ? undefined : guardListener(options.onProgress as (event: E) => unknown, this.logger)
  }

  /** Fetches a model pack by CID into the local model cache (verified, atomic, pinned); returns its folder. */
  async pullModel (cid: string, options: { onProgress?: (e: PackProgressEvent) => void, cacheDir?: string } = {}): Promise<PulledModel> {
    const onProgress = this.progressOf<PackProgressEvent>(options)
    const { cacheDir: givenCacheDir } = options as { cacheDir?: unknown }
    if (givenCacheDir !== undefined && (typeof givenCacheDir !== 'string' || givenCacheDir.trim() === '' || givenCacheDir.includes('\0'))) {
      throw ValidationError.field('cacheDir', `expected a folder path, got ${describe(givenCacheDir)}`)
    }
    const { parseIpfsPath } = await import('./content/cid.js')
    const ref = parseIpfsPath(cid)
    if (ref.path !== undefined && ref.path !== '') {
      throw ValidationError.field('cid', `a model pack is named by its root CID; got a path below it (${cid})`)
    }
    // a cache folder that cannot be created is refused before anything is fetched, naming the input
    const cacheDir = options.cacheDir ?? this.config.hub.cache_dir
    const field = options.cacheDir !== undefined ? 'cacheDir' : 'hub.cache_dir'
    if (cacheDir !== undefined) checkFolderPath(cacheDir, field)
    return await this.untilStopped('pullModel', async () => {
      const router = await this.router()
      // Fetch every block through the routed stores (verified, kept in the embedded store), then export;
      // the pack is pinned only once it has been checked to be a model (pullModel). A pack already
      // complete in the cache is returned as it is: its blocks are not walked again.
      const { isPulled, pullModel } = await import('./content/model-pack.js')
      if (isPulled(ref.cid, cacheDir) === undefined) await router.fetchAll(ref.cid, { signal: this.stopping.signal })
      return await pullModel(router.helia, ref.cid, { onProgress, cacheDir, field })
    })
  }

  /** The local folder for a content-addressed model id, pulling it first; undefined for other ids. */
  private async pulledSource (model: string): Promise<string | undefined> {
    const cid = this.ipfsCidOf(model)
    if (cid === undefined) return undefined
    const known = this.pulled.get(model)
    if (known !== undefined) return known
    const settings = this.config.models[model]
    const { dir } = await this.pullModel(cid, { cacheDir: settings?.cache_dir })
    this.pulled.set(model, dir)
    return dir
  }

  /** The synchronous path cannot fetch: it uses a pack already complete in the cache, or says how to get it. */
  private pulledSourceSync (model: string): string | undefined {
    const cid = this.ipfsCidOf(model)
    if (cid === undefined) return undefined
    const known = this.pulled.get(model) ?? isPulled(cid.split('/')[0], this.config.models[model]?.cache_dir ?? this.config.hub.cache_dir)
    if (known !== undefined) return known
    throw new ModelLoadError(`model ${model} is content-addressed and not in the local cache yet; the synchronous process() cannot fetch it: call processAsync(), initEndpoints() or \`ipfs-accelerate models pull ${cid}\` first`, { context: { model } })
  }

  private ipfsCidOf (model: string): string | undefined {
    // Asked on every inference call: parsing an id can stat the filesystem (is `org/name` a folder
    // here?), and whether an id names IPFS content depends only on the id and the frozen config.
    if (this.ipfsCids.has(model)) return this.ipfsCids.get(model)
    const ref = parseModelReference(model, this.config)
    const target = ref.kind === 'custom' ? ref.target : ref
    const cid = target.kind === 'ipfs' ? `${target.cid}${target.path === undefined ? '' : `/${target.path}`}` : undefined
    if (this.ipfsCids.size >= 1024) this.ipfsCids.clear() // ids come from callers: keep it bounded
    this.ipfsCids.set(model, cid)
    return cid
  }

  /**
   * Loads and warms each model; returns, per model, device, dtype, task and load time. With
   * `performance.enable_prefetch` false nothing is fetched or loaded here: each id is only checked, and
   * the model loads on its first request (the entry then says `deferred: true`).
   */
  async initEndpoints (models: string[], resources: InitEndpointsResources = {}, options: { onProgress?: (e: ModelProgressEvent) => void } = {}): Promise<Record<string, EndpointInfo | DeferredEndpoint>> {
    if (!Array.isArray(models) || models.some(m => typeof m !== 'string' || m.trim() === '')) {
      throw ValidationError.field('models', 'expected a list of model identifiers')
    }
    if (resources !== undefined && resources !== null && (typeof resources !== 'object' || Array.isArray(resources))) {
      throw ValidationError.field('resources', `expected an object, got ${describe(resources)}`)
    }
    const types: unknown = resources?.endpoint_types ?? {}
    if (typeof types !== 'object' || types === null || Array.isArray(types)) throw ValidationError.field('resources.endpoint_types', `expected an object mapping models to endpoint types, got ${describe(types)}`)
    const onProgress = this.progressOf<ModelProgressEvent>(options)
    const out: Record<string, EndpointInfo | DeferredEndpoint> = {}
    for (const model of models) {
      // own keys only: a model named `constructor` must not find Object.prototype's
      const type = this.checkCall(model, Object.hasOwn(types, model) ? (types as Record<string, unknown>)[model] : undefined, undefined)
      if (!this.config.performance.enable_prefetch) {
        parseModelReference(model, this.config) // a bad id still fails now, not at first use
        out[model] = { model, endpoint_type: type, deferred: true }
        continue
      }
      out[model] = await this.engine.load(model, type, { onProgress, source: await this.pulledSource(model) })
    }
    return out
  }

  /** Unloads a model's sessions. */
  async unloadModel (model: string): Promise<boolean> {
    if (typeof model !== 'string' || model.trim() === '') throw ValidationError.field('model', `expected a non-empty model identifier, got ${describe(model)}`)
    this.checkNotStopped()
    // A worker that exited took its models with it: nothing is loaded (the next inference starts a new one).
    if (this.engineInstance === undefined || !this.engineInstance.alive) return false
    return await this.engineInstance.unload(model)
  }

  /** Progress of model downloads, for every call. */
  onProgress (listener: (event: ModelProgressEvent) => void): () => void {
    if (typeof listener !== 'function') throw ValidationError.field('listener', `expected a function, got ${describe(listener)}`)
    const guarded = guardListener(listener, this.logger)
    this.progressListeners.add(guarded)
    return () => { this.progressListeners.delete(guarded) }
  }

  /**
   * Runs IPFS work; when `stop()` closed the stores under it, the caller learns that the instance was
   * stopped (AbortError, the store's own complaint as its cause) rather than a "blockstore is closed".
   * A failure of the local disk (full, read-only, no permission...) becomes a StorageError naming
   * `operation` here, once for every entry point, instead of at each of the many fs calls below.
   */
  private async untilStopped<T> (operation: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work()
    } catch (err) {
      if (this.stopped && !(err instanceof AbortError)) throw new AbortError('this IpfsAccelerate instance was stopped', { cause: err })
      throw toStorageError(err, operation) ?? err
    }
  }

  /** True once `stop()` was called: every call then fails with AbortError. */
  get isStopped (): boolean {
    return this.stopped
  }

  cacheStats (): ReturnType<ResultCache['stats']> | undefined {
    return this.resultCache?.stats()
  }

  /** Releases every model session, the worker and any IPFS node this instance started. */
  async stop (): Promise<void> {
    // Every caller waits for the same stop: a second stop() must not resolve while the first still releases.
    this.stopPromise ??= (async () => {
      this.stopped = true
      this.stopping.abort(new AbortError('this IpfsAccelerate instance was stopped'))
      await this.engineInstance?.stop()
      const content = await this.contentPromise?.catch(() => undefined)
      await content?.stop()
      await this.releaseStore?.()
      this.resultCache?.clear()
      this.logger.flush?.()
    })()
    await this.stopPromise
  }
}

/**
 * Whether the same input always gives the same result, so that a stored result may answer it again:
 * not so for sampled text generation without a seed.
 */
function isRepeatable (input: unknown): boolean {
  if (input === null || typeof input !== 'object') return true
  const { do_sample: doSample, seed } = input as Record<string, unknown>
  return !(doSample === true && seed === undefined)
}

/** A logger given in the options must be pino-shaped: it is used from the first call on, deep in every component. */
function checkLogger (logger: unknown): void {
  if (logger === undefined) return
  const missing = ['child', 'trace', 'debug', 'info', 'warn', 'error', 'fatal'].filter(m => typeof (logger as Record<string, unknown> | null)?.[m] !== 'function')
  if (missing.length > 0) throw ValidationError.field('options.logger', `expected a pino logger; ${describe(logger)} lacks ${missing.join(', ')}`)
}

/** The options of `processAsync`, checked before anything runs (a bad callback would fail mid-call). */
function checkProcessOptions (options: unknown): asserts options is ProcessOptions {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw ValidationError.field('options', `expected an object, got ${describe(options)}`)
  }
  const { onToken, onProgress, signal } = options as Record<string, unknown>
  if (onToken !== undefined && typeof onToken !== 'function') throw ValidationError.field('options.onToken', `expected a function, got ${describe(onToken)}`)
  if (onProgress !== undefined && typeof onProgress !== 'function') throw ValidationError.field('options.onProgress', `expected a function, got ${describe(onProgress)}`)
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw ValidationError.field('options.signal', `expected an AbortSignal, got ${describe(signal)}`)
}
