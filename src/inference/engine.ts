/**
 * The main-thread side of the inference engine. onnxruntime runs inference on the calling JS thread,
 * so models live in a worker: the event loop stays free for servers and the network, and the
 * synchronous `runSync()` can block on the very worker that `run()` awaits (Atomics.wait on a shared
 * flag, then `receiveMessageOnPort`). Both paths share one set of loaded models, one batcher and one
 * concurrency bound.
 */
import { Worker, MessageChannel, receiveMessageOnPort, type MessagePort } from 'node:worker_threads'
import { EventEmitter } from 'node:events'
import { fileURLToPath } from 'node:url'
import { deserializeError, AbortError, InferenceError, TimeoutError, type SerializedError } from '../errors.js'
import type { ResolvedConfig, EndpointType } from '../config/schema.js'
import type { Logger } from '../logging/logger.js'
import type { HardwareReport } from '../hardware/index.js'
import { unpackFloatLists, type WorkerRequest, type WorkerResponse, type EndpointInfo, type ModelProgressEvent } from './protocol.js'

/** A request before the engine numbers it. */
type NewRequest = WorkerRequest extends infer R ? R extends WorkerRequest ? Omit<R, 'id'> : never : never

export interface EngineInit {
  config: ResolvedConfig
  hardware: HardwareReport
  logger: Logger
}

export interface RunOptions {
  /** Called with each piece of generated text (text generation only). */
  onToken?: (text: string) => void
  /** Called with download progress while the model is fetched. */
  onProgress?: (event: ModelProgressEvent) => void
  /** A local folder to load the model from, when the caller already fetched it (content-addressed ids). */
  source?: string
}

interface PendingCall {
  resolve: (value: unknown) => void
  reject: (err: unknown) => void
  options: RunOptions
}

/** Longest a synchronous call may block before it gives up (model downloads included). */
const SYNC_TIMEOUT_MS = 30 * 60_000

/** How long a synchronous call waits for a new worker to start before it reports a failure. */
const WORKER_START_TIMEOUT_MS = 60_000

/** Slots of the shared flag array. */
const SYNC_SLOT = 0
const READY_SLOT = 1

function startWorker (workerData: Record<string, unknown>, transferList: MessagePort[]): Worker {
  if (import.meta.url.endsWith('.ts')) {
    // Running from source under tsx (tests, `npm run demo`): workers do not inherit tsx's loader, so
    // the worker registers it before importing its TypeScript entry.
    const entry = new URL('./engine-worker.ts', import.meta.url).href
    const boot = `import('tsx/esm/api').then(m => { m.register(); return import(${JSON.stringify(entry)}) })`
    return new Worker(boot, { eval: true, workerData, transferList })
  }
  return new Worker(fileURLToPath(new URL('./engine-worker.js', import.meta.url)), { workerData, transferList })
}

export class InferenceEngine extends EventEmitter<{ progress: [ModelProgressEvent] }> {
  private readonly worker: Worker
  private readonly pending = new Map<number, PendingCall>()
  private readonly syncPort: MessagePort
  /** [SYNC_SLOT]: a sync answer is waiting; [READY_SLOT]: 1 once the worker listens. */
  private readonly syncFlag = new Int32Array(new SharedArrayBuffer(8))
  private nextId = 1
  private stopped = false
  private readonly exited: Promise<void>

  constructor (private readonly init: EngineInit) {
    super()
    const channel = new MessageChannel()
    this.syncPort = channel.port1
    this.worker = startWorker({ config: init.config, hardware: init.hardware, syncPort: channel.port2, syncFlag: this.syncFlag }, [channel.port2])
    // The worker must not keep the process alive when the user forgets stop(): it only runs on demand.
    this.worker.unref()
    // The worker sends its answers in batches (see engine-worker.ts).
    this.worker.on('message', (messages: WorkerResponse[]) => { for (const msg of messages) this.onMessage(msg) })
    this.worker.on('error', err => { this.failAll(new InferenceError(`inference worker failed: ${err.message}`, { cause: err })) })
    this.exited = new Promise(resolve => this.worker.once('exit', () => {
      this.failAll(new AbortError('inference worker exited'))
      resolve()
    }))
  }

  private onMessage (msg: WorkerResponse): void {
    if (msg.type === 'log') {
      this.init.logger[msg.level](msg.data ?? {}, msg.msg)
      return
    }
    const call = this.pending.get(msg.id)
    if (msg.type === 'progress') {
      this.emit('progress', msg.event)
      call?.options.onProgress?.(msg.event)
      return
    }
    if (call === undefined) return
    if (msg.type === 'token') {
      call.options.onToken?.(msg.text)
      return
    }
    this.pending.delete(msg.id)
    if (this.pending.size === 0) this.worker.unref()
    if (msg.type === 'result') call.resolve(unpackFloatLists(msg.value))
    else call.reject(deserializeError(msg.error))
  }

  private failAll (err: unknown): void {
    for (const call of this.pending.values()) call.reject(err)
    this.pending.clear()
  }

  private async call (request: NewRequest, options: RunOptions = {}): Promise<unknown> {
    if (this.stopped) throw new AbortError('the engine was stopped')
    const id = this.nextId++
    return await new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, options })
      // Keep the process alive while work is in flight.
      this.worker.ref()
      this.worker.postMessage({ ...request, id, stream: options.onToken !== undefined })
    })
  }

  private callSync (request: NewRequest): unknown {
    if (this.stopped) throw new AbortError('the engine was stopped')
    // A worker that failed to start would never answer, and a blocked thread cannot hear its exit
    // event: wait for its ready flag first, with a bound.
    if (Atomics.load(this.syncFlag, READY_SLOT) === 0 && Atomics.wait(this.syncFlag, READY_SLOT, 0, WORKER_START_TIMEOUT_MS) === 'timed-out') {
      throw new InferenceError(`the inference worker did not start within ${WORKER_START_TIMEOUT_MS / 1000} s`)
    }
    const id = this.nextId++
    Atomics.store(this.syncFlag, SYNC_SLOT, 0)
    this.worker.postMessage({ ...request, id, sync: true })
    const deadline = Date.now() + SYNC_TIMEOUT_MS
    for (;;) {
      const waited = Atomics.wait(this.syncFlag, SYNC_SLOT, 0, Math.max(1, deadline - Date.now()))
      const received = receiveMessageOnPort(this.syncPort) as { message: WorkerResponse } | undefined
      if (received !== undefined) {
        const msg = received.message
        if (msg.type === 'result') return unpackFloatLists(msg.value)
        if (msg.type === 'error') throw deserializeError(msg.error)
        continue
      }
      if (waited === 'timed-out') throw new TimeoutError(`synchronous inference did not finish within ${SYNC_TIMEOUT_MS / 1000} s`)
      Atomics.store(this.syncFlag, SYNC_SLOT, 0)
    }
  }

  async run (model: string, input: unknown, endpointType: EndpointType, options: RunOptions = {}): Promise<unknown> {
    return await this.call({ type: 'infer', model, input, endpointType, source: options.source }, options)
  }

  runSync (model: string, input: unknown, endpointType: EndpointType, source?: string): unknown {
    return this.callSync({ type: 'infer', model, input, endpointType, source })
  }

  async load (model: string, endpointType: EndpointType = 'auto', options: RunOptions = {}): Promise<EndpointInfo> {
    return await this.call({ type: 'load', model, endpointType, source: options.source }, options) as EndpointInfo
  }

  loadSync (model: string, endpointType: EndpointType = 'auto'): EndpointInfo {
    return this.callSync({ type: 'load', model, endpointType }) as EndpointInfo
  }

  async unload (model: string): Promise<boolean> {
    return await this.call({ type: 'unload', model }) as boolean
  }

  /** Releases every session and ends the worker. */
  async stop (): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    this.worker.ref()
    this.worker.postMessage({ type: 'stop' })
    const timer = setTimeout(() => { void this.worker.terminate() }, 5_000)
    await this.exited
    clearTimeout(timer)
  }
}

export type { SerializedError }
