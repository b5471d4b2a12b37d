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
import { unpackFloatLists, type WorkerRequest, type WorkerResponse, type CancelRequest, type HardwareMessage, type EndpointInfo, type ModelProgressEvent } from './protocol.js'

/** A request before the engine numbers it. */
type NewRequest = WorkerRequest extends infer R ? R extends WorkerRequest ? Omit<R, 'id'> : never : never

export interface EngineInit {
  config: ResolvedConfig
  /**
   * Detects the hardware the worker will select devices from. Called once the worker is starting, so
   * that the probes (one starts a child process) overlap the worker's own start-up (its imports).
   */
  detectHardware: () => HardwareReport
  logger: Logger
}

export interface RunOptions {
  /**
   * Called with each piece of generated text (text generation only). A throw, or a returned promise
   * that rejects, fails the call with that error and cancels the generation; the result waits for the
   * promises returned before it to settle.
   */
  onToken?: (text: string) => unknown
  /** Called with download progress while the model is fetched. */
  onProgress?: (event: ModelProgressEvent) => void
  /** A local folder to load the model from, when the caller already fetched it (content-addressed ids). */
  source?: string
  /**
   * Gives up on the call: it rejects with AbortError at once, and the worker stops working on it (a
   * generation ends at its next token; a request still queued never runs).
   */
  signal?: AbortSignal
}

interface PendingCall {
  resolve: (value: unknown) => void
  reject: (err: unknown) => void
  options: RunOptions
  /** Detaches the abort listener, once the call is settled. */
  detach?: () => void
  /** Promises onToken returned that have not settled yet (handled: they never reject). */
  callbacks?: Set<Promise<void>>
}

/** Longest a synchronous call may block before it gives up (model downloads included). */
const SYNC_TIMEOUT_MS = 30 * 60_000

/** How long a synchronous call waits for a new worker to start before it reports a failure. */
const WORKER_START_TIMEOUT_MS = 60_000

/** Slots of the shared flag array (the worker writes the same slots: see engine-worker.ts). */
const SYNC_SLOT = 0
const READY_SLOT = 1
const EXITED_SLOT = 2

function startWorker (workerData: Record<string, unknown>, transferList: MessagePort[]): Worker {
  if (import.meta.url.endsWith('.ts')) {
    // Running from source under tsx (tests, `npm run demo`): workers do not inherit tsx's loader, so
    // the worker registers it before importing its TypeScript entry. tsx is resolved from here: an eval'd
    // worker would resolve a bare 'tsx' from the current folder, which may be any folder.
    const entry = new URL('./engine-worker.ts', import.meta.url).href
    const tsx = import.meta.resolve('tsx/esm/api')
    const boot = `import(${JSON.stringify(tsx)}).then(m => { m.register(); return import(${JSON.stringify(entry)}) })`
    return new Worker(boot, { eval: true, workerData, transferList })
  }
  return new Worker(fileURLToPath(new URL('./engine-worker.js', import.meta.url)), { workerData, transferList })
}

export class InferenceEngine extends EventEmitter<{ progress: [ModelProgressEvent] }> {
  private readonly worker: Worker
  private readonly pending = new Map<number, PendingCall>()
  private readonly syncPort: MessagePort
  /** [SYNC_SLOT]: a sync answer is waiting; [READY_SLOT]: 1 once the worker listens; [EXITED_SLOT]: 1 once it is exiting. */
  private readonly syncFlag = new Int32Array(new SharedArrayBuffer(12))
  /** Why the worker is gone, once it is: every later call fails at once with it. */
  private exitError?: Error
  private nextId = 1
  /** Async requests made in the current turn of the event loop, posted together (see `post`). */
  private outbox: Array<WorkerRequest | CancelRequest> = []
  private stopped = false
  private stopping?: Promise<void>
  private readonly exited: Promise<void>
  /**
   * Requests the worker was sent and has not answered yet, including those whose callers gave up (the
   * worker answers every request). While any is left the worker holds the process: a process that exits
   * while the worker is inside an onnxruntime call aborts (SIGABRT) instead of exiting.
   */
  private readonly unanswered = new Set<number>()
  /** The calls waiting on each caller's signal: one 'abort' listener per signal however many calls share it (Node warns past 10). */
  private readonly signals = new Map<AbortSignal, { ids: Set<number>, onAbort: () => void }>()

  constructor (private readonly init: EngineInit) {
    super()
    const channel = new MessageChannel()
    this.syncPort = channel.port1
    this.worker = startWorker({ config: init.config, syncPort: channel.port2, syncFlag: this.syncFlag }, [channel.port2])
    // The worker sends its answers in batches (see engine-worker.ts).
    this.worker.on('message', (messages: WorkerResponse[]) => { for (const msg of messages) this.onMessage(msg) })
    this.worker.on('error', err => { this.failAll(new InferenceError(`inference worker failed: ${err.message}`, { cause: err })) })
    // The worker must not keep the process alive when the user forgets stop(): it only runs on demand.
    // After the 'message' listener: adding one refs the worker's port again.
    this.worker.unref()
    this.exited = new Promise(resolve => this.worker.once('exit', code => {
      this.exitError = this.stopped
        ? new AbortError('the engine was stopped')
        : new InferenceError(`the inference worker exited (code ${code}); the next call starts a new one`)
      this.failAll(this.exitError)
      resolve()
    }))
    let hardware: HardwareReport
    try {
      hardware = init.detectHardware()
    } catch (err) {
      void this.worker.terminate()
      throw err
    }
    // The first message, ahead of any request (requests are posted a tick later, or after this returns).
    this.worker.postMessage([{ type: 'hardware', report: hardware } satisfies HardwareMessage])
  }

  /** False once the worker has exited (crashed, or stopped): the accelerator then starts a new engine. */
  get alive (): boolean {
    return this.exitError === undefined && Atomics.load(this.syncFlag, EXITED_SLOT) === 0
  }

  private onMessage (msg: WorkerResponse): void {
    if (msg.type === 'log') {
      this.init.logger[msg.level](msg.data ?? {}, msg.msg)
      return
    }
    const call = this.pending.get(msg.id)
    if (msg.type === 'progress') {
      // A listener that throws must not take the process down: progress is only ever reported.
      try {
        this.emit('progress', msg.event)
        call?.options.onProgress?.(msg.event)
      } catch (err) {
        this.init.logger.warn({ err }, 'a progress listener threw; ignored')
      }
      return
    }
    if (msg.type === 'result' || msg.type === 'error') this.answered(msg.id)
    if (call === undefined) return
    if (msg.type === 'token') {
      this.onToken(msg.id, call, msg.text)
      return
    }
    if (msg.type === 'result' && call.callbacks !== undefined && call.callbacks.size > 0) {
      // A token's callback still running could yet fail the call: the result waits for it (an abort
      // or stop() still settles the call at once meanwhile).
      const value = unpackFloatLists(msg.value)
      void Promise.all(call.callbacks).then(() => { this.settle(msg.id)?.resolve(value) })
      return
    }
    this.settle(msg.id)
    if (msg.type === 'result') call.resolve(unpackFloatLists(msg.value))
    else call.reject(deserializeError(msg.error))
  }

  /**
   * Runs the caller's onToken. If it throws, or returns a promise that rejects, the call fails with
   * that error and the generation is cancelled in the worker; a later failure of the same call is
   * dropped (never an unhandled rejection: Node ends the process on one).
   */
  private onToken (id: number, call: PendingCall, text: string): void {
    const fail = (err: unknown): void => {
      if (this.settle(id) === undefined) return
      call.reject(err)
      if (this.unanswered.has(id)) this.post({ type: 'cancel', id })
    }
    try {
      const returned = call.options.onToken?.(text)
      if (typeof (returned as PromiseLike<unknown> | undefined)?.then !== 'function') return
      const settled: Promise<void> = Promise.resolve(returned).then(() => { call.callbacks?.delete(settled) }, fail)
      call.callbacks ??= new Set()
      call.callbacks.add(settled)
    } catch (err) {
      fail(err)
    }
  }

  /** Forgets a pending call (later messages for it are ignored) and returns it. */
  private settle (id: number): PendingCall | undefined {
    const call = this.pending.get(id)
    this.pending.delete(id)
    call?.detach?.()
    return call
  }

  /** The worker is done with request `id`: once it is done with all, it no longer holds the process. */
  private answered (id: number): void {
    this.unanswered.delete(id)
    if (this.unanswered.size === 0 && !this.stopped) this.worker.unref()
  }

  private failAll (err: unknown): void {
    for (const id of [...this.pending.keys()]) this.settle(id)?.reject(err)
  }

  /** Registers call `id` with its signal; returns what detaches it. */
  private watch (signal: AbortSignal, id: number): () => void {
    let group = this.signals.get(signal)
    if (group === undefined) {
      const ids = new Set<number>()
      const onAbort = (): void => {
        for (const callId of [...ids]) {
          this.settle(callId)?.reject(new AbortError('the call was aborted'))
          this.post({ type: 'cancel', id: callId } satisfies CancelRequest)
        }
      }
      group = { ids, onAbort }
      this.signals.set(signal, group)
      signal.addEventListener('abort', onAbort, { once: true })
    }
    const { ids, onAbort } = group
    ids.add(id)
    return () => {
      ids.delete(id)
      if (ids.size === 0 && this.signals.get(signal) === group) {
        this.signals.delete(signal)
        signal.removeEventListener('abort', onAbort)
      }
    }
  }

  private async call (request: NewRequest, options: RunOptions = {}): Promise<unknown> {
    if (this.stopped) throw new AbortError('the engine was stopped')
    if (this.exitError !== undefined) throw this.exitError
    const signal = options.signal
    if (signal?.aborted === true) throw new AbortError('the call was aborted before it started')
    const id = this.nextId++
    return await new Promise((resolve, reject) => {
      const call: PendingCall = { resolve, reject, options }
      if (signal !== undefined) call.detach = this.watch(signal, id)
      this.pending.set(id, call)
      // Keep the process alive while work is in flight (see `unanswered`).
      this.unanswered.add(id)
      this.worker.ref()
      this.post({ ...request, id, stream: options.onToken !== undefined } as WorkerRequest)
    })
  }

  /**
   * Requests made in one turn of the event loop (a burst of concurrent calls) travel as one message:
   * each message costs a dispatch in the worker, and the worker sees the whole burst at once, so its
   * batcher can fill a batch without waiting for its window.
   */
  private post (request: WorkerRequest | CancelRequest): void {
    this.outbox.push(request)
    if (this.outbox.length === 1) process.nextTick(this.flushOutbox)
  }

  private readonly flushOutbox = (): void => {
    const requests = this.outbox
    this.outbox = []
    if (this.exitError !== undefined || requests.length === 0) return // failAll already rejected them
    try {
      this.worker.postMessage(requests)
    } catch {
      // One request that cannot be cloned (the accelerator checks inputs, so this is a caller going
      // around it) fails alone; the others still go.
      for (const request of requests) {
        try {
          this.worker.postMessage([request])
        } catch (err) {
          this.answered(request.id)
          this.settle(request.id)?.reject(new InferenceError(`the request could not be sent to the inference worker: ${(err as Error).message}`, { cause: err }))
        }
      }
    }
  }

  private callSync (request: NewRequest): unknown {
    if (this.stopped) throw new AbortError('the engine was stopped')
    if (!this.alive) throw this.exitError ?? new InferenceError('the inference worker exited; the next call starts a new one')
    // A worker that failed to start would never answer, and a blocked thread cannot hear its exit
    // event: wait for its ready flag first, with a bound.
    if (Atomics.load(this.syncFlag, READY_SLOT) === 0 && Atomics.wait(this.syncFlag, READY_SLOT, 0, WORKER_START_TIMEOUT_MS) === 'timed-out') {
      throw new InferenceError(`the inference worker did not start within ${WORKER_START_TIMEOUT_MS / 1000} s`)
    }
    const id = this.nextId++
    this.worker.postMessage([{ ...request, id, sync: true }])
    const deadline = Date.now() + SYNC_TIMEOUT_MS
    for (;;) {
      // Cleared before the port is read: the worker posts its answer first and raises the flag after,
      // so an answer that arrives after this read still wakes the wait below.
      Atomics.store(this.syncFlag, SYNC_SLOT, 0)
      const received = receiveMessageOnPort(this.syncPort) as { message: WorkerResponse } | undefined
      if (received !== undefined) {
        const msg = received.message
        // An answer for another id is the late answer of an earlier call that timed out: dropped.
        if (msg.type === 'result' && msg.id === id) return unpackFloatLists(msg.value)
        if (msg.type === 'error' && msg.id === id) throw deserializeError(msg.error)
        continue
      }
      // The worker sets EXITED_SLOT (and wakes us) as it exits: a blocked thread cannot hear 'exit'.
      if (Atomics.load(this.syncFlag, EXITED_SLOT) !== 0) throw new InferenceError('the inference worker exited during a synchronous call; the next call starts a new one')
      if (Date.now() >= deadline) throw new TimeoutError(`synchronous inference did not finish within ${SYNC_TIMEOUT_MS / 1000} s`)
      Atomics.wait(this.syncFlag, SYNC_SLOT, 0, Math.max(1, deadline - Date.now()))
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

  /**
   * Releases every session and ends the worker; calls still pending fail at once with AbortError. The
   * worker ends itself (engine-worker.ts): it is never terminated from here, since terminating it in the
   * middle of an onnxruntime call aborts the whole process. So this waits out a model call in progress.
   */
  async stop (): Promise<void> {
    this.stopping ??= (async () => {
      this.stopped = true
      this.worker.ref()
      // Requests not sent yet are dropped with their calls: nothing in the worker waits for them.
      this.outbox = []
      this.failAll(new AbortError('the engine was stopped'))
      this.worker.postMessage([{ type: 'stop' }])
      await this.exited
    })()
    await this.stopping
  }
}

export type { SerializedError }
