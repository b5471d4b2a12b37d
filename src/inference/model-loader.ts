/**
 * From a model identifier to a loaded model: resolve the identifier (alias, hub repository, local
 * folder, `custom:` entry), download hub models into the local cache, read config.json, infer or
 * check the task, choose device and dtype from the hardware report and config, keep the total within
 * `hardware.max_memory` (least recently used models are unloaded first), then load through
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
import { availableDtypes, estimateModelBytes, weightFilePath, type Dtype } from '../hardware/model-files.js'
import { MemoryBudget } from '../hardware/memory-budget.js'
import { parseModelReference, type ModelReference } from '../models/model-reference.js'
import { resolveTask, readModelConfig } from '../models/task-inference.js'
import { downloadModel, withTransformersEnv } from '../models/hub-download.js'
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
  /** Unloads a model to make room (memory budget). */
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
        const { dir } = await downloadModel(ref.repo, {
          revision: ref.revision,
          cacheDir: settings.cache_dir ?? this.config.hub.cache_dir,
          remoteHost: this.config.hub.remote_host,
          allowRemote: this.config.hub.allow_remote,
          dtype: settings.precision ?? this.config.hardware.precision,
          onProgress: (e: Omit<ModelProgressEvent, 'model'>) => { onProgress({ ...e, model }) }
        })
        return dir
      }
      case 'ipfs':
        throw new ModelLoadError(`model ${model}: content-addressed models (ipfs://) need an IPFS store, which this engine was not given`, { context: { model } })
      default:
        throw new ModelLoadError(`model ${model} cannot be resolved`, { context: { model } })
    }
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
    for (const victim of this.budget.reserve(key, bytes, model)) {
      this.hooks.log('info', `unloading ${victim.split('\u0000')[0]} to stay within hardware.max_memory`)
      await this.hooks.evict(victim)
    }
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

  touch (key: string): void {
    this.budget.touch(key)
  }

  async dispose (key: string, loaded: LoadedModel): Promise<void> {
    this.budget.release(key)
    await loaded.model?.dispose?.()
  }
}
