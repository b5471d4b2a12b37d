/** Small async helpers shared by the content stores. */
import { AbortError, TimeoutError } from '../errors.js'

/**
 * Maps `source` through `fn` with at most `concurrency` calls in flight, yielding results in source
 * order. Memory stays bounded: at most `concurrency` results wait to be consumed.
 */
export async function * mapOrdered<T, R> (source: Iterable<T> | AsyncIterable<T>, concurrency: number, fn: (item: T) => Promise<R>): AsyncGenerator<R> {
  const pending: Array<Promise<R>> = []
  const iterator = (Symbol.asyncIterator in source ? source[Symbol.asyncIterator]() : (source as Iterable<T>)[Symbol.iterator]()) as AsyncIterator<T> | Iterator<T>
  let done = false
  try {
    while (true) {
      while (!done && pending.length < concurrency) {
        const next = await iterator.next()
        if (next.done === true) { done = true; break }
        const p = fn(next.value)
        p.catch(() => {}) // handled when awaited below; avoids an unhandled rejection while earlier results are consumed
        pending.push(p)
      }
      const head = pending.shift()
      if (head === undefined) return
      yield await head
    }
  } finally {
    if (!done) await iterator.return?.()
  }
}

/** The signal's reason as one of our errors: TimeoutError for a timeout, AbortError otherwise. */
export function abortReason (signal: AbortSignal, what: string): Error {
  const reason = signal.reason as { name?: string } | undefined
  if (reason instanceof AbortError || reason instanceof TimeoutError) return reason
  if (reason?.name === 'TimeoutError') return new TimeoutError(`${what} timed out`, { cause: reason })
  return new AbortError(`${what} was aborted`, { cause: reason })
}

export function throwIfAborted (signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted === true) throw abortReason(signal, what)
}

/** Resolves after `ms`, or rejects early when `signal` aborts. */
export async function sleep (ms: number, signal?: AbortSignal): Promise<void> {
  throwIfAborted(signal, 'wait')
  await new Promise<void>((resolve, reject) => {
    const onAbort = (): void => { clearTimeout(timer); reject(abortReason(signal as AbortSignal, 'wait')) }
    const timer = setTimeout(() => { signal?.removeEventListener('abort', onAbort); resolve() }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

/** Combines optional signals (undefined entries are skipped). */
export function anySignal (...signals: Array<AbortSignal | undefined>): AbortSignal | undefined {
  const present = signals.filter((s): s is AbortSignal => s !== undefined)
  if (present.length === 0) return undefined
  if (present.length === 1) return present[0]
  return AbortSignal.any(present)
}

/** Concatenates chunks into one Uint8Array (no copy when there is a single chunk). */
export function concatChunks (chunks: Uint8Array[], total?: number): Uint8Array {
  if (chunks.length === 1) return chunks[0]
  const size = total ?? chunks.reduce((n, c) => n + c.byteLength, 0)
  const out = new Uint8Array(size)
  let offset = 0
  for (const c of chunks) { out.set(c, offset); offset += c.byteLength }
  return out
}

/** Collects an (async) iterable of byte chunks into one Uint8Array. */
export async function collectBytes (source: Iterable<Uint8Array> | AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = []
  let total = 0
  for await (const chunk of source) { chunks.push(chunk); total += chunk.byteLength }
  return chunks.length === 0 ? new Uint8Array(0) : concatChunks(chunks, total)
}
