/**
 * Messages between the main-thread `InferenceEngine` and its worker. Everything here crosses a
 * structured-clone boundary: plain data, typed arrays, no functions or class instances.
 */
import type { SerializedError } from '../errors.js'
import type { EndpointType, Task } from '../config/schema.js'
import type { HardwareReport } from '../hardware/index.js'

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

/** Stop work on request `id` (its caller gave up): a generation ends at its next token. No answer. */
export interface CancelRequest {
  type: 'cancel'
  id: number
}

export type WorkerRequest = InferRequest | LoadRequest | UnloadRequest

/** The worker's first message: the hardware report it selects devices from (detected while it starts). */
export interface HardwareMessage {
  type: 'hardware'
  report: HardwareReport
}

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

/**
 * A list of float32 values on its way from the worker: a Float32Array clones as one block, where a
 * list of numbers clones (and is rebuilt) number by number. The main thread turns it back into the
 * plain list the caller gets (`unpackFloatLists`), so results keep their shape.
 */
export interface FloatList {
  $float32: Float32Array
}

export function floatList (values: Float32Array): FloatList {
  return { $float32: values }
}

/**
 * Replaces every `FloatList` in a result by a plain list of numbers (in place where it can). Only
 * objects and lists of objects or lists are searched: lists of numbers or strings are left unread.
 */
export function unpackFloatLists (value: unknown): unknown {
  if (value === null || typeof value !== 'object' || ArrayBuffer.isView(value)) return value
  if (Array.isArray(value)) {
    if (value.length > 0 && typeof value[0] === 'object' && value[0] !== null) {
      for (let i = 0; i < value.length; i++) value[i] = unpackFloatLists(value[i])
    }
    return value
  }
  const packed = (value as Partial<FloatList>).$float32
  if (packed instanceof Float32Array) return toNumbers(packed)
  const obj = value as Record<string, unknown>
  for (const key of Object.keys(obj)) {
    const v = obj[key]
    if (v !== null && typeof v === 'object') obj[key] = unpackFloatLists(v)
  }
  return obj
}

function toNumbers (values: Float32Array): number[] {
  // A loop of push is several times faster than Array.from on a typed array, and gives the same
  // packed list of doubles (cheap to clone again).
  const out: number[] = []
  for (let i = 0; i < values.length; i++) out.push(values[i])
  return out
}

export type WorkerResponse =
  | { type: 'result', id: number, value: unknown }
  | { type: 'error', id: number, error: SerializedError }
  | { type: 'token', id: number, text: string }
  | { type: 'progress', id: number, event: ModelProgressEvent }
  | { type: 'log', level: 'debug' | 'info' | 'warn' | 'error', msg: string, data?: Record<string, unknown> }
