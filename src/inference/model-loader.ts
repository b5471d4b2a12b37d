/**
 * From a model identifier to a loaded model: resolve the identifier (alias, hub repository, local
 * folder, `custom:` entry), download hub models into the local cache, read config.json, infer or
 * check the task, choose device and dtype from the hardware report and config, keep the total within
 * `hardware.max_memory` (least recently used models no request is using are unloaded first; when only
 * models in use stand in the way, the load waits for them), then load through
 * transformers.js, offline, from the local folder.
 */
import { relative } from 'node:path'
import { env } from '@huggingface/transformers'
import { ModelLoadError, ValidationError } from '../errors.js'
import type { ResolvedConfig, Task, ModelConfig } from '../config/schema.js'
import { parseSize } from '../config/units.js'
// Direct imports, not hardware/index.js: the probes (and onnx-proto) have no business in the worker.
import type { HardwareReport } from '../hardware/hardware-report.js'
import { fallbackLevel, selectExecution } from '../hardware/select-execution.js'
import { availableDtypes, DTYPES, dtypeOfFile, estimateModelBytes, weightFilePath, type Dtype } from '../hardware/model-files.js'
import { MemoryBudget } from '../hardware/memory-budget.js'
import { parseModelReference, type ModelReference } from '../models/model-reference.js'
import { resolveTask, readModelConfig } from '../models/task-inference.js'
import { downloadModel, withTransformersEnv, type DownloadModelOptions } from '../models/hub-download.js'
import { silentLogger, type Logger } from '../logging/logger.js'
import type { LoadedModel, TaskHandler } from './tasks/task-handler.js'
import type { ModelProgressEvent } from './protocol.js'

export interface Located {
  dir: string
  config: Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any
  settings: Partial<ModelConfig>
  fallbacks?: Array<{ device?: string, dtype?: string, reason: string }>
}

export interface ModelLoaderHooks {
  log: (level: 'debug' | 'info' | 'warn' | 'error', msg: string, data?: Record<string, unknown>) => void
  threads: number
  /**
   * Unloads a model to make room (memory budget); it is never one in use (see `hold`). Called
   * synchronously the moment the budget gives up the model: before returning its promise, the hook must
   * make the model unreachable for new requests.
   */
  evict: (key: string) => Promise<void>
}

/** Weight file base names per task, as transformers.js names them. */
function weightBaseNames (config: Record<string, unknown>): string[] {
  return config.is_encoder_decoder === true || config.model_type === 'whisper'
    ? ['encoder_model', 'decoder_model_merged']
    : ['model']
}

/**
 * The file a failed load concerns: the weight file of the chosen dtype that the error names (onnxruntime
 * says `Load model from <file> failed`), else the model folder.
 */
function failedFile (dir: string, baseNames: readonly string[], dtype: Dtype, message: string): string {
  const files = baseNames.map(b => weightFilePath(dir, b, dtype))
  // The whole path, else its `onnx/<file>` end (the folder may be spelled differently in the message).
  return files.find(f => message.includes(f) || message.includes(`/${relative(dir, f)}`)) ?? dir
}

export class ModelLoader {
  private readonly budget: MemoryBudget
  private readonly logger: Logger
  /** Whether the missing preferred device was already warned about: it is missing for every model. */
  private warnedFallback = false

  constructor (private readonly config: ResolvedConfig, private readonly hardware: HardwareReport, private readonly hooks: ModelLoaderHooks) {
    const max = config.hardware.max_memory === undefined ? undefined : parseSize(config.hardware.max_memory)
    this.budget = new MemoryBudget(max)
    this.logger = silentLogger()
    // Everything loads from local folders: never let a missing optional file reach out to a hub.
    env.allowRemoteModels = false
    env.allowLocalModels = true
  }

  async locate (model: string, onProgress: (e: ModelProgressEvent) => void, source?: string): Promise<Located> {
    const ref = parseModelReference(model, this.config)
    const dir = source ?? await this.fetch(model, ref, onProgress)
    return { dir, config: await readModelConfig(dir, model), settings: ref.config ?? {} }
  }

  private async fetch (model: string, reference: ModelReference, onProgress: (e: ModelProgressEvent) => void): Promise<string> {
    // A custom: entry stands for its source, with the entry's own settings.
    const ref = reference.kind === 'custom' ? { ...reference.target, config: reference.config } : reference
    switch (ref.kind) {
      case 'local':
        return ref.path
      case 'hub': {
        const settings: Partial<ModelConfig> = ref.config ?? {}
        return await this.download(model, ref.repo, settings, {
          revision: ref.revision,
          cacheDir: settings.cache_dir ?? this.config.hub.cache_dir,
          remoteHost: this.config.hub.remote_host,
          allowRemote: this.config.hub.allow_remote,
          onProgress: (e: Omit<ModelProgressEvent, 'model'>) => { onProgress({ ...e, model }) }
        })
      }
      case 'ipfs':
        throw new ModelLoadError(`model ${model}: content-addressed models (ipfs://) need an IPFS store, which this engine was not given`, { context: { model } })
      default:
        throw new ModelLoadError(`model ${model} cannot be resolved`, { context: { model } })
    }
  }

  /**
   * Downloads a hub model with the weights the same rules as for a local folder would pick (docs/hardware.md):
   * the backend's preferred dtype for the precision first (a global fp16 is fp32 on the CPU, fp32 is fp16
   * on a GPU with mixed_precision), then, when the hub has no such weight file (HTTP 404), the next
   * acceptable dtype. With remote downloads off, the next acceptable dtype already in the cache. `load`
   * then chooses from what is on disk and records the fallback.
   */
  private async download (model: string, repo: string, settings: Partial<ModelConfig>, options: Omit<DownloadModelOptions, 'dtype'>): Promise<string> {
    const tried: Dtype[] = []
    const misses: Array<{ dtype: Dtype, file: string }> = []
    let first: ModelLoadError | undefined
    for (;;) {
      const dtype = this.nextDtype(model, settings, tried)
      if (dtype === undefined) {
        // Every acceptable variant is missing: the error about the preferred one, naming the others tried.
        const error = first as ModelLoadError
        const others = misses.slice(1).map(m => `${m.dtype} (${m.file})`)
        throw others.length === 0
          ? error
          : new ModelLoadError(`${error.message}; no acceptable fallback is available either: ${others.join(', ')}`, {
            cause: error, context: { ...error.context, precision: tried[0], acceptable: [...tried] }
          })
      }
      try {
        const { dir } = await downloadModel(repo, { ...options, dtype })
        if (tried.length > 0) this.hooks.log('debug', `model ${model}: downloaded ${dtype} weights (no ${tried.join(', ')} weights available)`, { model, dtype, missing: [...tried] })
        return dir
      } catch (err) {
        if (!this.missingVariant(err, dtype, options.allowRemote === false)) throw err
        first ??= err
        tried.push(dtype)
        misses.push({ dtype, file: options.allowRemote === false ? 'not in the cache' : String(err.context.file) })
        this.hooks.log('debug', `model ${model}: no ${dtype} weights (${err.message}); trying the next acceptable precision`, { model, dtype })
      }
    }
  }

  /** The dtype the execution rules pick when every variant but `tried` may exist; undefined when none is acceptable. */
  private nextDtype (model: string, settings: Partial<ModelConfig>, tried: readonly Dtype[]): Dtype | undefined {
    try {
      return selectExecution(this.hardware, this.config.hardware, {
        precision: settings.precision,
        availableDtypes: DTYPES.filter(d => !tried.includes(d)),
        model
      }, this.logger).dtype
    } catch (err) {
      // Nothing acceptable is left; a HardwareError (the device itself) is the caller's answer.
      if (err instanceof ModelLoadError && tried.length > 0) return undefined
      throw err
    }
  }

  /**
   * Whether a download failed only because this weight variant is absent: the hub answered 404 for a
   * `.onnx` file of that dtype, or (remote downloads off) it is not in the cache.
   */
  private missingVariant (err: unknown, dtype: Dtype, offline: boolean): err is ModelLoadError {
    if (!(err instanceof ModelLoadError)) return false
    if (offline) return true
    const file = err.context.file
    if (err.context.status !== 404 || typeof file !== 'string') return false
    return dtypeOfFile(file.split('/').at(-1) ?? '')?.dtype === dtype
  }

  taskFor (model: string, located: Located, wanted: Task | undefined): Task {
    return resolveTask(located.config, wanted ?? located.settings.endpoint_type, model)
  }

  async load (model: string, key: string, task: Task, located: Located, handler: TaskHandler): Promise<LoadedModel> {
    const baseNames = weightBaseNames(located.config)
    const dtypes = await availableDtypes(located.dir, baseNames)
    if (dtypes.length === 0) {
      const expected = weightFilePath(located.dir, baseNames[0], 'fp32')
      throw new ModelLoadError(`model ${model} has no ONNX weights: ${expected} is missing (nor does any precision variant of it exist)`, { context: { model, file: expected } })
    }
    const selection = selectExecution(this.hardware, this.config.hardware, {
      precision: located.settings.precision,
      availableDtypes: dtypes,
      model
    }, this.logger)
    for (const f of selection.fallbacks) {
      // Absent optional accelerators are debug detail; a missing preferred CUDA is warned about once.
      let level = fallbackLevel(f, this.config.hardware)
      if (level === 'warn' && this.warnedFallback) level = 'debug'
      if (level === 'warn') this.warnedFallback = true
      this.hooks.log(level, `model ${model}: ${f.reason}`, { model, ...f })
    }
    located.fallbacks = selection.fallbacks
    const bytes = await estimateModelBytes(located.dir, selection.dtype, baseNames)
    await this.reserve(model, key, bytes)
    try {
      // Loads read local folders only; the shared env lock keeps a concurrent download from flipping
      // allowRemoteModels under us.
      const parts = await withTransformersEnv({ allowRemoteModels: false, allowLocalModels: true }, async () => await handler.load({
        dir: located.dir,
        config: located.config,
        pretrained: {
          device: selection.device,
          dtype: selection.dtype,
          local_files_only: true,
          session_options: {
            ...selection.sessionOptions,
            intraOpNumThreads: this.hooks.threads,
            interOpNumThreads: 1,
            // rocm, openvino and qnn reach onnxruntime only through this list (transformers.js knows no such devices).
            executionProviders: selection.executionProviders
          }
        }
      }))
      return {
        id: model,
        dir: located.dir,
        task,
        config: located.config,
        settings: located.settings,
        device: selection.device,
        dtype: selection.dtype,
        ...parts
      }
    } catch (cause) {
      this.budget.release(key)
      if (cause instanceof ValidationError || cause instanceof ModelLoadError) throw cause
      const message = cause instanceof Error ? cause.message : String(cause)
      const file = failedFile(located.dir, baseNames, selection.dtype, message)
      throw new ModelLoadError(`model ${model} failed to load from ${located.dir}: ${message}`, { cause, context: { model, file } })
    }
  }

  /**
   * Reserves room for `key` within `hardware.max_memory`, unloading models no request uses, least
   * recently used first, and waiting while only models in use stand in the way; resolves once the
   * unloaded models are disposed.
   */
  private async reserve (model: string, key: string, bytes: number): Promise<void> {
    const disposals: Array<Promise<void>> = []
    const evict = (victim: string): void => {
      this.hooks.log('info', `unloading ${victim.split('\u0000')[0]} to stay within hardware.max_memory`)
      // Sync part first: the hook takes the model out of reach before anything else runs.
      disposals.push(this.hooks.evict(victim).catch((err: unknown) => {
        this.hooks.log('warn', `unloading ${victim.split('\u0000')[0]} failed: ${(err as Error)?.message ?? String(err)}`)
      }))
    }
    const granted = this.budget.reserveWhenFree(key, bytes, model, evict)
    if (this.budget.isWaiting(key)) {
      this.hooks.log('info', `model ${model} waits for models in use to finish before it fits in hardware.max_memory`, { model, bytes })
    }
    await granted
    await Promise.all(disposals)
  }

  /**
   * Marks a loaded (or loading) model as in use until the returned function is called: the memory
   * budget never unloads it meanwhile.
   */
  hold (key: string): () => void {
    return this.budget.use(key)
  }

  /** Resolves once no request holds `key`. */
  async whenFree (key: string): Promise<void> {
    await this.budget.whenFree(key)
  }

  /** Whether `key` holds a reservation in the memory budget (it is loaded, or past its reservation). */
  isReserved (key: string): boolean {
    return this.budget.has(key)
  }

  /**
   * Settles once the loads now waiting for memory got it; undefined when none waits. A request for an
   * already loaded model waits for this first, so steady use of one model cannot starve another's load.
   */
  whenWaitingLoadsServed (): Promise<void> | undefined {
    return this.budget.whenWaitersServed()
  }

  /** Fails every load still waiting for memory (the engine is stopping). */
  cancelWaiting (reason: unknown): void {
    this.budget.cancelWaiting(reason)
  }

  touch (key: string): void {
    this.budget.touch(key)
  }

  /** Disposes of a loaded model, then frees its reservation (so nothing loads in its place before it is gone). */
  async dispose (key: string, loaded: LoadedModel): Promise<void> {
    try {
      await loaded.model?.dispose?.()
    } finally {
      this.budget.release(key)
    }
  }
}
