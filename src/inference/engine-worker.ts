/**
 * Entry point of the inference worker thread: receives requests from `InferenceEngine`, runs them on
 * a `WorkerEngine` and answers on the async channel, or on the sync channel (then wakes the blocked
 * caller through the shared flag).
 */
import { parentPort, workerData, type MessagePort } from 'node:worker_threads'
import { serializeError } from '../errors.js'
import { WorkerEngine } from './worker-engine.js'
import { routeConsole } from './worker-console.js'
import type { WorkerRequest, WorkerResponse, CancelRequest, HardwareMessage } from './protocol.js'

const { config, syncPort, syncFlag } = workerData as {
  config: ConstructorParameters<typeof WorkerEngine>[0]
  syncPort: MessagePort
  syncFlag: Int32Array
}
const port = parentPort
if (port === null) throw new Error('engine-worker must run as a worker thread')

// Answers posted in one turn of the event loop (a batch's results, say) travel as one message: each
// message costs ~25 µs here and can wake the main thread, which dominated small-model bursts.
let outbox: WorkerResponse[] = []
const flushOutbox = (): void => {
  const messages = outbox
  outbox = []
  port.postMessage(messages)
}
const post = (msg: WorkerResponse): void => {
  outbox.push(msg)
  // After the microtasks of the current macrotask: every answer a batch settles goes in one message,
  // without waiting for another turn of the event loop.
  if (outbox.length === 1) process.nextTick(flushOutbox)
}
const hooks: ConstructorParameters<typeof WorkerEngine>[2] = {
  progress: event => { post({ type: 'progress', id: 0, event }) },
  log: (level, msg, data) => { post({ type: 'log', level, msg, data }) }
}
/** Made when the hardware report arrives: the main thread's first message (see engine.ts). */
let workerEngine: WorkerEngine | undefined
function engine (): WorkerEngine {
  if (workerEngine === undefined) throw new Error('the inference worker got a request before the hardware report')
  return workerEngine
}

function answer (request: WorkerRequest, msg: WorkerResponse): void {
  if (request.sync === true) {
    syncPort.postMessage(msg)
    Atomics.store(syncFlag, SYNC_SLOT, 1)
    Atomics.notify(syncFlag, SYNC_SLOT)
  } else {
    post(msg)
  }
}

/** Aborts for the inference requests in progress, by request id (a `cancel` message fires one). */
const inProgress = new Map<number, AbortController>()

async function handle (request: WorkerRequest): Promise<unknown> {
  const onProgress = (event: Parameters<Parameters<WorkerEngine['loadModel']>[2]>[0]): void => {
    post({ type: 'progress', id: request.id, event })
  }
  switch (request.type) {
    case 'infer': {
      const controller = new AbortController()
      inProgress.set(request.id, controller)
      try {
        return await engine().infer(request.model, request.input, request.endpointType, onProgress, request.source,
          request.stream === true ? text => { post({ type: 'token', id: request.id, text }) } : undefined, controller.signal)
      } finally {
        inProgress.delete(request.id)
      }
    }
    case 'load':
      return await engine().loadModel(request.model, request.endpointType, onProgress, request.source)
    case 'unload':
      return await engine().unload(request.model)
  }
}

// Slots of the shared flag array, as in engine.ts.
const SYNC_SLOT = 0
const READY_SLOT = 1
const EXITED_SLOT = 2

/** How long the worker waits for its sessions to be released after `stop` before it exits anyway. */
const STOP_GRACE_MS = 5_000

// Tell a caller blocked in a synchronous call that the worker is up.
Atomics.store(syncFlag, READY_SLOT, 1)
Atomics.notify(syncFlag, READY_SLOT)

// ... and that it is gone, however it ends (a crash included): the blocked caller cannot hear the
// 'exit' event, so it would otherwise wait out its whole timeout.
process.on('exit', () => {
  Atomics.store(syncFlag, EXITED_SLOT, 1)
  Atomics.store(syncFlag, SYNC_SLOT, 1)
  Atomics.notify(syncFlag, SYNC_SLOT)
})

routeConsole(console, (level, msg) => { post({ type: 'log', level, msg, data: { source: 'console' } }) })

// Requests arrive in lists: those the main thread made in one turn of its event loop.
port.on('message', (requests: Array<WorkerRequest | CancelRequest | HardwareMessage | { type: 'stop' }>) => {
  for (const request of requests) {
    if (request.type === 'hardware') {
      workerEngine ??= new WorkerEngine(config, request.report, hooks)
      continue
    }
    if (request.type === 'stop') {
      // Their callers already have their AbortError: generations end at their next token, queued requests never run.
      for (const controller of inProgress.values()) controller.abort()
      void (workerEngine?.stop() ?? Promise.resolve()).finally(() => { port.close() })
      // The main thread never terminates this worker (terminated inside an onnxruntime call, it would abort
      // the whole process), so it ends itself once the sessions are released, or after a grace period when
      // something (a stalled download) would keep it alive: process.exit runs from JavaScript, that is
      // between model calls. Unref'd: a worker done sooner exits without waiting for it.
      setTimeout(() => { process.exit(0) }, STOP_GRACE_MS).unref()
      return
    }
    if (request.type === 'cancel') {
      // Its caller already has its AbortError; no answer is sent.
      inProgress.get(request.id)?.abort()
      continue
    }
    handle(request).then(
      value => { answer(request, { type: 'result', id: request.id, value }) },
      (err: unknown) => { answer(request, { type: 'error', id: request.id, error: serializeError(err) }) }
    )
  }
})

