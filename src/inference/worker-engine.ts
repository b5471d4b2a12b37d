/**
 * The engine proper, running inside the inference worker: it loads models (resolve, download, pick
 * device and dtype, load, warm up), keeps them within `hardware.max_memory`, validates inputs, batches
 * concurrent requests per model and bounds concurrent model calls by `performance.parallel_requests`.
 */
import { performance } from 'node:perf_hooks'
import { availableParallelism } from 'node:os'
import { ModelLoadError, ValidationError } from '../errors.js'
import type { ResolvedConfig, EndpointType, Task } from '../config/schema.js'
import { ENDPOINT_TYPES } from '../config/constants.js'
import type { HardwareReport } from '../hardware/index.js'
import { Batcher } from './batcher.js'
import { Semaphore } from './semaphore.js'
import { createTaskRegistry } from './task-registry.js'
import type { LoadedModel, TaskHandler } from './tasks/task-handler.js'
import type { EndpointInfo, ModelProgressEvent } from './protocol.js'
import { ModelLoader } from './model-loader.js'

export interface WorkerEngineHooks {
  progress: (event: ModelProgressEvent) => void
  log: (level: 'debug' | 'info' | 'warn' | 'error', msg: string, data?: Record<string, unknown>) => void
}

interface Entry {
  loaded: LoadedModel
  info: EndpointInfo
  handler: TaskHandler
  batcher?: Batcher<unknown, Record<string, unknown>>
}

export class WorkerEngine {
  private readonly tasks = createTaskRegistry()
  private readonly entries = new Map<string, Promise<Entry>>()
  private readonly semaphore: Semaphore
  private readonly loader: ModelLoader

  constructor (private readonly config: ResolvedConfig, hardware: HardwareReport, private readonly hooks: WorkerEngineHooks) {
    this.semaphore = new Semaphore(config.performance.parallel_requests)
    this.loader = new ModelLoader(config, hardware, {
      log: hooks.log,
      threads: config.hardware.threads ?? availableParallelism(),
      evict: async key => { await this.unloadKey(key) }
    })
  }

  private checkEndpointType (endpointType: unknown): EndpointType {
    if (endpointType === undefined || endpointType === null) return 'auto'
    if (typeof endpointType !== 'string' || !(ENDPOINT_TYPES as readonly string[]).includes(endpointType)) {
      throw ValidationError.field('endpoint_type', `unknown endpoint type ${JSON.stringify(endpointType)}; expected one of ${ENDPOINT_TYPES.join(', ')}`)
    }
    return endpointType as EndpointType
  }

  /** Loads (once) and returns the entry for a model and task. */
  private async entry (model: string, endpointType: EndpointType, onProgress: (e: ModelProgressEvent) => void, source?: string): Promise<Entry> {
    if (typeof model !== 'string' || model.trim() === '') throw ValidationError.field('model', 'expected a non-empty model identifier')
    const wanted = endpointType === 'auto' ? undefined : endpointType
    // A model already loaded for the wanted task (or any task, when the caller said auto) is reused.
    const loadedKey = this.loadedKey(model, wanted)
    if (loadedKey !== undefined) {
      const entry = await (this.entries.get(loadedKey) as Promise<Entry>)
      this.loader.touch(loadedKey)
      return entry
    }
    const started = performance.now()
    const located = await this.loader.locate(model, onProgress, source)
    const task = this.loader.taskFor(model, located, wanted)
    const key = makeKey(model, task)
    const existing = this.entries.get(key)
    if (existing !== undefined) return await existing
    const promise = this.load(model, key, task, located, started)
    this.entries.set(key, promise)
    try {
      return await promise
    } catch (err) {
      // Nothing half-loaded stays behind: the next call starts afresh.
      this.entries.delete(key)
      throw err
    }
  }

  private loadedKey (model: string, task: Task | undefined): string | undefined {
    if (task !== undefined) {
      const key = makeKey(model, task)
      return this.entries.has(key) ? key : undefined
    }
    for (const key of this.entries.keys()) if (splitKey(key)[0] === model) return key
    return undefined
  }

  private async load (model: string, key: string, task: Task, located: Awaited<ReturnType<ModelLoader['locate']>>, started: number): Promise<Entry> {
    const handler = this.tasks[task]
    const loaded = await this.loader.load(model, key, task, located, handler)
    try {
      const warm = handler.warmupInput?.(loaded)
      if (warm !== undefined) {
        const { value } = await handler.prepare(warm, loaded)
        await handler.run(loaded, [value], {})
      }
    } catch (cause) {
      await this.loader.dispose(key, loaded)
      throw new ModelLoadError(`model ${model} loaded but its first run failed: ${(cause as Error).message}`, { cause, context: { model, file: loaded.dir } })
    }
    const info: EndpointInfo = {
      model,
      dir: loaded.dir,
      task,
      device: loaded.device,
      dtype: loaded.dtype,
      load_time: (performance.now() - started) / 1000,
      fallbacks: located.fallbacks ?? []
    }
    this.hooks.log('info', `loaded ${model} for ${task} on ${loaded.device} (${loaded.dtype}) in ${info.load_time.toFixed(3)} s`, { model, task, device: loaded.device, dtype: loaded.dtype })
    const maxBatch = loaded.settings.batch_size ?? this.config.hardware.batch_size
    const entry: Entry = { loaded, info, handler }
    if (handler.batchable) {
      entry.batcher = new Batcher({ maxBatch, windowMs: this.config.performance.batch_window_ms }, async items => {
        return await this.semaphore.run(async () => await handler.run(loaded, items, { maxBatch }))
      })
    }
    return entry
  }

  async loadModel (model: string, endpointType: unknown, onProgress: (e: ModelProgressEvent) => void, source?: string): Promise<EndpointInfo> {
    return (await this.entry(model, this.checkEndpointType(endpointType), onProgress, source)).info
  }

  async infer (model: string, input: unknown, endpointType: unknown, onProgress: (e: ModelProgressEvent) => void, source?: string, onToken?: (text: string) => void): Promise<Record<string, unknown>> {
    const type = this.checkEndpointType(endpointType)
    const entry = await this.entry(model, type, onProgress, source)
    const started = performance.now()
    const { value, rows } = await entry.handler.prepare(input, entry.loaded)
    const prepared = performance.now()
    const body = entry.batcher !== undefined
      ? await entry.batcher.submit(value, rows)
      : (await this.semaphore.run(async () => await entry.handler.run(entry.loaded, [value], { onToken })))[0]
    const done = performance.now()
    if (this.config.logging.enable_performance_logging) {
      this.hooks.log('info', `inference ${model}`, {
        model, task: entry.loaded.task, rows, prepare_ms: prepared - started, run_ms: done - prepared, total_ms: done - started
      })
    }
    return { ...body, model, inference_time: (done - started) / 1000 }
  }

  private async unloadKey (key: string): Promise<void> {
    const promise = this.entries.get(key)
    if (promise === undefined) return
    this.entries.delete(key)
    const entry = await promise.catch(() => undefined)
    if (entry !== undefined) await this.loader.dispose(key, entry.loaded)
  }

  async unload (model: string): Promise<boolean> {
    const keys = [...this.entries.keys()].filter(k => splitKey(k)[0] === model)
    for (const key of keys) await this.unloadKey(key)
    return keys.length > 0
  }

  async stop (): Promise<void> {
    for (const key of [...this.entries.keys()]) await this.unloadKey(key)
  }
}

function makeKey (model: string, task: Task): string {
  return `${model}\u0000${task}`
}

function splitKey (key: string): [string, Task] {
  const [model, task] = key.split('\u0000')
  return [model, task as Task]
}
