/**
 * One handler per task: it loads what the task needs (model class, tokenizer or processor), turns a
 * seed-shaped input into validated rows, runs a batch of them and shapes the seed's result. Inputs
 * are checked here, before onnxruntime sees them, so bad input is a ValidationError naming the field.
 */
import type { Task, ModelConfig } from '../../config/schema.js'

/** transformers.js objects are loosely typed; the handlers own the casts. */
export type AnyModel = any // eslint-disable-line @typescript-eslint/no-explicit-any

export interface LoadedModel {
  /** The identifier the caller used. */
  id: string
  dir: string
  task: Task
  /** The model's config.json. */
  config: Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any
  /** Per-model settings from `resources.models`, if any. */
  settings: Partial<ModelConfig>
  device: string
  dtype: string
  model: AnyModel
  tokenizer?: AnyModel
  processor?: AnyModel
}

export interface LoadContext {
  dir: string
  config: Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any
  /** Options for `from_pretrained` (device, dtype, session_options, local_files_only). */
  pretrained: Record<string, unknown>
}

export interface RunContext {
  /** Sends a piece of generated text to a streaming caller. */
  onToken?: (text: string) => void
  /**
   * Most rows one model call may hold (`resources.models[id].batch_size`, else `hardware.batch_size`);
   * given to batchable handlers.
   * A handler whose single request can carry many rows splits them into calls of at most this many.
   */
  maxBatch?: number
  /** Fires when the caller gave up (unbatched tasks): a generation stops at its next token. */
  signal?: AbortSignal
}

export interface TaskHandler<P = unknown> {
  readonly task: Task
  /** Can several prepared requests share one model call? */
  readonly batchable: boolean
  load(ctx: LoadContext): Promise<Pick<LoadedModel, 'model' | 'tokenizer' | 'processor'>>
  /** Validates and normalises one request. `rows` is how many batch rows it fills. */
  prepare(input: unknown, model: LoadedModel): Promise<{ value: P, rows: number }>
  /**
   * Runs prepared requests (one, or several when batchable); one result body per request. A body may
   * hold float32 vectors as `FloatList`s (protocol.ts): the main thread turns them into plain lists.
   */
  run(model: LoadedModel, items: P[], ctx: RunContext): Promise<Array<Record<string, unknown>>>
  /** A minimal input for warm-up, or undefined when the task cannot make one. */
  warmupInput?(model: LoadedModel): unknown
}

/**
 * Awaits the parts of a model (its sessions, tokenizer, processor) loading side by side. When one
 * fails, the parts that did load are disposed of before the error is thrown: with Promise.all a session
 * would finish loading after the failure, reachable by nothing and held until the process ends, once
 * per request that retries the broken model, and outside hardware.max_memory's accounting.
 */
export async function loadParts<T extends readonly unknown[]> (parts: readonly [...{ [K in keyof T]: Promise<T[K]> }]): Promise<T> {
  const settled = await Promise.allSettled(parts)
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected')
  if (failed === undefined) return settled.map(s => (s as PromiseFulfilledResult<unknown>).value) as unknown as T
  await Promise.allSettled(settled.map(async s => { if (s.status === 'fulfilled') await (s.value as AnyModel)?.dispose?.() }))
  throw failed.reason
}
