/**
 * The engine proper, running inside the inference worker: it loads models (resolve, download, pick
 * device and dtype, load, warm up), keeps them within `hardware.max_memory`, validates inputs, batches
 * concurrent requests per model and bounds concurrent model calls by `performance.parallel_requests`.
 */
import { performance } from 'node:perf_hooks'
import { availableParallelism } from 'node:os'
import { AbortError, ModelLoadError, ValidationError } from '../errors.js'
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

/**
 * One load of a model for a task. `id` is unique per load: the memory budget's key, so that the
 * reservation, use count and disposal of an unloaded instance never touch a later reload of the same model.
 */
interface Slot {
  key: string
  id: string
  promise: Promise<Entry>
  /** Set once unloading began: the disposal every unloader of this slot waits for. */
  unloading?: Promise<void>
}

/** An entry and the release of the caller's use of it: until then the memory budget will not unload it. */
interface Held {
  entry: Entry
  release: () => void
}

export class WorkerEngine {
  private readonly tasks = createTaskRegistry()
  /** The current load of each model and task. */
  private readonly entries = new Map<string, Slot>()
  /** Every load not yet disposed of (or failed), by id, including ones already dropped from `entries`. */
  private readonly slots = new Map<string, Slot>()
  private slotCounter = 0
  /** Set by stop(): no new load starts after it. */
  private stopping = false
  private readonly semaphore: Semaphore
  private readonly loader: ModelLoader

  constructor (private readonly config: ResolvedConfig, hardware: HardwareReport, private readonly hooks: WorkerEngineHooks) {
    this.semaphore = new Semaphore(config.performance.parallel_requests)
    this.loader = new ModelLoader(config, hardware, {
      log: hooks.log,
      // the probe's count: a container's CPU quota lowers it (os.availableParallelism() ignores quotas)
      threads: config.hardware.threads ?? (hardware.cpu.cores >= 1 ? hardware.cpu.cores : availableParallelism()),
      // Called synchronously by the budget: unloadSlot drops the entry before its first await.
      evict: async id => {
        const slot = this.slots.get(id)
        if (slot !== undefined) await this.unloadSlot(slot)
      }
    })
  }

  private checkEndpointType (endpointType: unknown): EndpointType {
    if (endpointType === undefined || endpointType === null) return 'auto'
    if (typeof endpointType !== 'string' || !(ENDPOINT_TYPES as readonly string[]).includes(endpointType)) {
      throw ValidationError.field('endpoint_type', `unknown endpoint type ${JSON.stringify(endpointType)}; expected one of ${ENDPOINT_TYPES.join(', ')}`)
    }
    return endpointType as EndpointType
  }

  /**
   * Loads (once) and returns the entry for a model and task, held for the caller: release it once the
   * request is done. A request holds its model from the moment it picks it (while it loads, is queued
   * and runs), so the memory budget never unloads a model a request still needs.
   */
  private async entry (model: string, endpointType: EndpointType, onProgress: (e: ModelProgressEvent) => void, source?: string): Promise<Held> {
    if (typeof model !== 'string' || model.trim() === '') throw ValidationError.field('model', 'expected a non-empty model identifier')
    const wanted = endpointType === 'auto' ? undefined : endpointType
    // A model already loaded for the wanted task (or any task, when the caller said auto) is reused.
    const reused = await this.holdExisting(() => this.loadedSlot(model, wanted))
    if (reused !== undefined) return reused
    const started = performance.now()
    const located = await this.loader.locate(model, onProgress, source)
    const task = this.loader.taskFor(model, located, wanted)
    const key = makeKey(model, task)
    const existing = await this.holdExisting(() => this.entries.get(key))
    if (existing !== undefined) return existing
    // A request still finding its model when the engine stopped: its session would outlive stop().
    if (this.stopping) throw new AbortError('the inference engine is stopping')
    const id = `${key}\u0000${++this.slotCounter}`
    // Held before the load starts, so it is in use from its reservation on.
    const release = this.loader.hold(id)
    const slot: Slot = { key, id, promise: this.load(model, id, task, located, started) }
    this.entries.set(key, slot)
    this.slots.set(id, slot)
    return await this.settle(slot, release)
  }

  /**
   * Holds the slot `find` names, if any. When loads are waiting for memory that only models in use
   * keep, a new request for a reserved model first lets them have it (it may be unloaded for them and
   * then reloaded), so steady traffic to one model cannot keep another's load waiting forever.
   */
  private async holdExisting (find: () => Slot | undefined): Promise<Held | undefined> {
    for (;;) {
      const slot = find()
      if (slot === undefined) return undefined
      const gate = this.loader.isReserved(slot.id) ? this.loader.whenWaitingLoadsServed() : undefined
      if (gate === undefined) return await this.settle(slot, this.loader.hold(slot.id))
      await gate
    }
  }

  /** Waits for a held slot's load; on failure releases the hold and forgets the slot (the next call starts afresh). */
  private async settle (slot: Slot, release: () => void): Promise<Held> {
    try {
      const entry = await slot.promise
      this.loader.touch(slot.id)
      return { entry, release }
    } catch (err) {
      release()
      // Nothing half-loaded stays behind.
      if (this.entries.get(slot.key) === slot) this.entries.delete(slot.key)
      this.slots.delete(slot.id)
      throw err
    }
  }

  private loadedSlot (model: string, task: Task | undefined): Slot | undefined {
    if (task !== undefined) return this.entries.get(makeKey(model, task))
    for (const [key, slot] of this.entries) if (splitKey(key)[0] === model) return slot
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
      entry.batcher = new Batcher({
        maxBatch,
        windowMs: this.config.performance.batch_window_ms,
        slot: async fn => await this.semaphore.run(fn)
      }, async items => await handler.run(loaded, items, { maxBatch }))
    }
    return entry
  }

  async loadModel (model: string, endpointType: unknown, onProgress: (e: ModelProgressEvent) => void, source?: string): Promise<EndpointInfo> {
    const { entry, release } = await this.entry(model, this.checkEndpointType(endpointType), onProgress, source)
    release()
    return entry.info
  }

  async infer (model: string, input: unknown, endpointType: unknown, onProgress: (e: ModelProgressEvent) => void, source?: string, onToken?: (text: string) => void, signal?: AbortSignal): Promise<Record<string, unknown>> {
    const type = this.checkEndpointType(endpointType)
    const { entry, release } = await this.entry(model, type, onProgress, source)
    try {
      return await this.run(model, entry, input, onToken, signal)
    } finally {
      release()
    }
  }

  private async run (model: string, entry: Entry, input: unknown, onToken?: (text: string) => void, signal?: AbortSignal): Promise<Record<string, unknown>> {
    const started = performance.now()
    const { value, rows } = await entry.handler.prepare(input, entry.loaded)
    const prepared = performance.now()
    const body = entry.batcher !== undefined
      ? await entry.batcher.submit(value, rows, signal)
      : (await this.semaphore.run(async () => {
          // A caller that gave up while this waited for a slot: do not start.
          if (signal?.aborted === true) throw new AbortError('the call was aborted')
          return await entry.handler.run(entry.loaded, [value], { onToken, signal })
        }, signal))[0]
    const done = performance.now()
    if (this.config.logging.enable_performance_logging) {
      this.hooks.log('info', `inference ${model}`, {
        model, task: entry.loaded.task, rows, prepare_ms: prepared - started, run_ms: done - prepared, total_ms: done - started
      })
    }
    return { ...body, model, inference_time: (done - started) / 1000 }
  }

  /**
   * Forgets a load (synchronously, before its first await) and disposes of its model once loaded;
   * with `whenUnused`, only once the requests using it are done (new requests load it afresh).
   */
  private async unloadSlot (slot: Slot, whenUnused = false): Promise<void> {
    if (this.entries.get(slot.key) === slot) this.entries.delete(slot.key)
    slot.unloading ??= (async () => {
      const entry = await slot.promise.catch(() => undefined)
      if (whenUnused) await this.loader.whenFree(slot.id)
      try {
        if (entry !== undefined) await this.loader.dispose(slot.id, entry.loaded)
      } finally {
        this.slots.delete(slot.id)
      }
    })()
    await slot.unloading
  }

  async unload (model: string): Promise<boolean> {
    const slots = [...this.entries.values()].filter(s => splitKey(s.key)[0] === model)
    // An explicit unload lets the requests already using the model finish first.
    for (const slot of slots) await this.unloadSlot(slot, true)
    return slots.length > 0
  }

  async stop (): Promise<void> {
    this.stopping = true
    // Loads still waiting for memory would only start after the sessions below are gone.
    this.loader.cancelWaiting(new ModelLoadError('the inference engine is stopping'))
    // All at once, and those already being unloaded too: a load still in progress must not hold up
    // the release of the others.
    await Promise.all([...this.slots.values()].map(async slot => { await this.unloadSlot(slot) }))
  }
}

function makeKey (model: string, task: Task): string {
  return `${model}\u0000${task}`
}

function splitKey (key: string): [string, Task] {
  const [model, task] = key.split('\u0000')
  return [model, task as Task]
}
