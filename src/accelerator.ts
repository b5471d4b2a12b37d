/**
 * `IpfsAccelerate`: the facade of the seed's API. It owns every component (config, logger, hardware
 * detection, inference engine, result cache, content stores) and creates the heavy ones lazily, so
 * constructing one is cheap and `stop()` releases everything it started.
 */
import { resolveConfig, resolveMetadata, type ResolveOptions } from './config/resolve.js'
import { ENDPOINT_TYPES, type ResourcesInit, type ResolvedConfig, type EndpointType, type Metadata } from './config/schema.js'
import { parseSize } from './config/units.js'
import { AbortError, ValidationError } from './errors.js'
import { createLogger, componentLogger, type Logger } from './logging/logger.js'
import { HardwareDetection } from './hardware/index.js'
import { InferenceEngine, type RunOptions } from './inference/engine.js'
import { ResultCache } from './inference/result-cache.js'
import type { EndpointInfo, ModelProgressEvent } from './inference/protocol.js'
import { describe } from './inference/inputs/token-ids.js'

/** Seed-shaped inference result: task fields plus `model` and `inference_time` (seconds). */
export type InferenceResult = Record<string, unknown> & { model: string, inference_time: number }

export interface IpfsAccelerateOptions extends ResolveOptions {
  /** A logger to use instead of one built from `logging`. */
  logger?: Logger
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
  private stopped = false

  constructor (resources?: ResourcesInit | null, metadata?: Metadata | null, options: IpfsAccelerateOptions = {}) {
    this.config = resolveConfig(resources, options)
    this.metadata = resolveMetadata(metadata)
    this.logger = options.logger ?? createLogger(this.config.logging)
    this.hardwareDetection = new HardwareDetection()
    if (this.config.performance.enable_caching) {
      this.resultCache = new ResultCache(parseSize(this.config.performance.cache_size) ?? 0)
    }
  }

  private get engine (): InferenceEngine {
    if (this.stopped) throw new AbortError('this IpfsAccelerate instance was stopped')
    if (this.engineInstance === undefined) {
      const hardware = this.hardwareDetection.detectAllHardware()
      this.engineInstance = new InferenceEngine({ config: this.config, hardware, logger: componentLogger(this.logger, 'inference') })
    }
    return this.engineInstance
  }

  private checkCall (model: unknown, endpointType: unknown): EndpointType {
    if (typeof model !== 'string' || model.trim() === '') throw ValidationError.field('model', `expected a non-empty model identifier, got ${describe(model)}`)
    if (endpointType === undefined || endpointType === null) return 'auto'
    if (typeof endpointType !== 'string' || !(ENDPOINT_TYPES as readonly string[]).includes(endpointType)) {
      throw ValidationError.field('endpoint_type', `unknown endpoint type ${JSON.stringify(endpointType)}; expected one of ${ENDPOINT_TYPES.join(', ')}`)
    }
    return endpointType as EndpointType
  }

  private cacheKey (model: string, endpointType: EndpointType, input: unknown): string | undefined {
    return this.resultCache === undefined ? undefined : ResultCache.key(model, endpointType, input)
  }

  /**
   * Synchronous inference: returns the result itself, not a Promise. The calling thread blocks while
   * the model runs in the inference worker (and, on first use, while the model is fetched and loaded).
   */
  process (model: string, input: unknown, endpointType?: EndpointType | null): InferenceResult {
    const type = this.checkCall(model, endpointType)
    const key = this.cacheKey(model, type, input)
    const hit = key === undefined ? undefined : this.resultCache?.get(key)
    if (hit !== undefined) return hit as InferenceResult
    const result = this.engine.runSync(model, input, type) as InferenceResult
    if (key !== undefined) this.resultCache?.set(key, result)
    return result
  }

  /** Asynchronous inference on the same engine as `process()`. */
  async processAsync (model: string, input: unknown, endpointType?: EndpointType | null, options: RunOptions = {}): Promise<InferenceResult> {
    const type = this.checkCall(model, endpointType)
    // Streaming callers want the tokens as they come, so they bypass the cache.
    const key = options.onToken === undefined ? this.cacheKey(model, type, input) : undefined
    const hit = key === undefined ? undefined : this.resultCache?.get(key)
    if (hit !== undefined) return hit as InferenceResult
    const result = await this.engine.run(model, input, type, options) as InferenceResult
    if (key !== undefined) this.resultCache?.set(key, result)
    return result
  }

  /** Generated text as it is produced (text generation only); the last value is the full result. */
  async * streamGeneration (model: string, input: unknown): AsyncGenerator<string, InferenceResult> {
    const queue: string[] = []
    let wake: (() => void) | undefined
    let finished = false
    const run = this.processAsync(model, input, 'text_generation', {
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
    while (!finished || queue.length > 0) {
      if (queue.length === 0) await new Promise<void>(resolve => { wake = resolve })
      wake = undefined
      while (queue.length > 0) yield queue.shift() as string
    }
    return await run
  }

  /**
   * Inference that may use IPFS. With `useIpfs` false it runs locally, exactly like `processAsync`.
   */
  async accelerateInference (model: string, input: unknown, useIpfs = true): Promise<InferenceResult> {
    if (typeof useIpfs !== 'boolean') throw ValidationError.field('use_ipfs', `expected true or false, got ${describe(useIpfs)}`)
    return await this.processAsync(model, input, 'auto')
  }

  /** Loads and warms each model; returns, per model, device, dtype, task and load time. */
  async initEndpoints (models: string[], resources: InitEndpointsResources = {}, options: { onProgress?: (e: ModelProgressEvent) => void } = {}): Promise<Record<string, EndpointInfo>> {
    if (!Array.isArray(models) || models.some(m => typeof m !== 'string' || m.trim() === '')) {
      throw ValidationError.field('models', 'expected a list of model identifiers')
    }
    const types = resources?.endpoint_types ?? {}
    const out: Record<string, EndpointInfo> = {}
    for (const model of models) {
      const type = this.checkCall(model, types[model])
      out[model] = await this.engine.load(model, type, options)
    }
    return out
  }

  /** Unloads a model's sessions. */
  async unloadModel (model: string): Promise<boolean> {
    return this.engineInstance === undefined ? false : await this.engineInstance.unload(model)
  }

  /** Progress of model downloads, for every call. */
  onProgress (listener: (event: ModelProgressEvent) => void): () => void {
    this.engine.on('progress', listener)
    return () => { this.engineInstance?.off('progress', listener) }
  }

  cacheStats (): ReturnType<ResultCache['stats']> | undefined {
    return this.resultCache?.stats()
  }

  /** Releases every model session, the worker and any IPFS node this instance started. */
  async stop (): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    await this.engineInstance?.stop()
    this.resultCache?.clear()
    this.logger.flush?.()
  }
}
