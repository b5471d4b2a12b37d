/**
 * Messages between the main-thread `InferenceEngine` and its worker. Everything here crosses a
 * structured-clone boundary: plain data, typed arrays, no functions or class instances.
 */
import type { SerializedError } from '../errors.js'
import type { EndpointType, Task } from '../config/schema.js'

/** Per-request options beside the seed's input (generation settings, pooling, ...). */
export type InferenceOptions = Record<string, unknown>

export interface InferRequest {
  type: 'infer'
  id: number
  model: string
  endpointType: EndpointType
  input: unknown
  /** Local folder to load from instead of resolving `model` (a pulled content-addressed model). */
  source?: string
  /** Ask the worker to send each generated piece of text as a `token` message. */
  stream?: boolean
  /** Answer on the synchronous channel (the caller is blocked in Atomics.wait). */
  sync?: boolean
}

export interface LoadRequest {
  type: 'load'
  id: number
  model: string
  endpointType: EndpointType
  source?: string
  sync?: boolean
}

export interface UnloadRequest {
  type: 'unload'
  id: number
  model: string
  sync?: boolean
}

export type WorkerRequest = InferRequest | LoadRequest | UnloadRequest

/** What `initEndpoints` reports per model. */
export interface EndpointInfo {
  model: string
  /** Where the weights were read from. */
  dir: string
  task: Task
  /** transformers.js device name (`cpu`, `cuda`, ...). */
  device: string
  dtype: string
  /** Seconds spent resolving, downloading and loading (including warm-up). */
  load_time: number
  /** Why a preferred device or dtype was not used, if any. */
  fallbacks: Array<{ device?: string, dtype?: string, reason: string }>
}

/** Progress of model downloads, forwarded from transformers.js. */
export interface ModelProgressEvent {
  model: string
  file?: string
  status: string
  loaded?: number
  total?: number
  progress?: number
}

export type WorkerResponse =
  | { type: 'result', id: number, value: unknown }
  | { type: 'error', id: number, error: SerializedError }
  | { type: 'token', id: number, text: string }
  | { type: 'progress', id: number, event: ModelProgressEvent }
  | { type: 'log', level: 'debug' | 'info' | 'warn' | 'error', msg: string, data?: Record<string, unknown> }
