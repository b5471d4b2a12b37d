/**
 * Timeouts and retries for every network call a content store makes: each attempt gets its own
 * deadline (`ipfs.timeout`; for a streamed upload, the longest stall), transient failures are retried `ipfs.retry_count`
 * times with a small exponential backoff, and what comes out is one of our errors:
 * - NotFoundError, ContentVerificationError, ValidationError: at once, never retried,
 * - AbortError: the caller's signal fired,
 * - TimeoutError: the last attempt ran past its deadline,
 * - IpfsConnectionError: anything else (refused, reset, 5xx), with `context.attempts`.
 */
import { ContentVerificationError, IpfsConnectionError, NotFoundError, TimeoutError, ValidationError } from '../errors.js'
import { abortReason, sleep } from './async-utils.js'
import { DEFAULT_IPFS_RETRY_COUNT, DEFAULT_IPFS_TIMEOUT_S } from '../config/defaults.js'

export interface NetworkInit {
  /** Deadline of one attempt, ms (default `ipfs.timeout` = 30 s). */
  timeoutMs?: number
  /** Attempts after the first (default `ipfs.retry_count` = 3). */
  retries?: number
  /** First backoff, ms; doubles each retry, capped at 2 s (default 100). */
  backoffMs?: number
}

export const DEFAULT_BACKOFF_MS = 100
const MAX_BACKOFF_MS = 2_000

export interface ResolvedNetwork {
  timeoutMs: number
  retries: number
  backoffMs: number
}

export function resolveNetwork (init: NetworkInit = {}): ResolvedNetwork {
  return {
    timeoutMs: init.timeoutMs ?? DEFAULT_IPFS_TIMEOUT_S * 1000,
    retries: Math.max(0, init.retries ?? DEFAULT_IPFS_RETRY_COUNT),
    backoffMs: init.backoffMs ?? DEFAULT_BACKOFF_MS
  }
}

/** One failed attempt, as reported in `context.attempts`. */
export interface AttemptFailure {
  attempt: number
  error: string
  message: string
}

/** Errors that say something definite about the content: retrying cannot change them. */
export function isFinal (err: unknown): boolean {
  return err instanceof NotFoundError || err instanceof ContentVerificationError || err instanceof ValidationError
}

function describe (err: unknown): { error: string, message: string } {
  const e = err as Error & { cause?: { code?: string, message?: string } }
  const cause = e?.cause?.code ?? e?.cause?.message
  return { error: e?.name ?? 'Error', message: `${e?.message ?? String(err)}${cause !== undefined && !String(e?.message).includes(cause) ? ` (${cause})` : ''}` }
}

function isAborted (signal: AbortSignal | undefined): signal is AbortSignal {
  return signal?.aborted === true
}

/** One attempt's deadline; `touch()` restarts it (a long transfer that keeps moving is not cut). */
function attemptDeadline (ms: number): { signal: AbortSignal, touch: () => void, clear: () => void } {
  const controller = new AbortController()
  const timer = setTimeout(() => controller.abort(new DOMException(`no answer within ${ms} ms`, 'TimeoutError')), ms)
  timer.unref()
  return { signal: controller.signal, touch: () => { if (!controller.signal.aborted) timer.refresh() }, clear: () => clearTimeout(timer) }
}

/**
 * Runs `fn` with a fresh deadline per attempt until it succeeds, fails definitely, or attempts run out.
 * `what` names the call (`block/get bafy…`), `store` the store and `target` its URL, for messages. A call
 * that streams (an upload) calls `touch` as it moves, so `timeoutMs` bounds a stall rather than the whole
 * transfer.
 */
export async function withRetry<T> (what: string, where: { store: string, target: string }, net: ResolvedNetwork, signal: AbortSignal | undefined, fn: (signal: AbortSignal, touch: () => void) => Promise<T>): Promise<T> {
  const attempts: AttemptFailure[] = []
  let timedOut = false
  for (let attempt = 1; attempt <= net.retries + 1; attempt++) {
    if (signal?.aborted === true) throw abortReason(signal, what)
    const deadline = attemptDeadline(net.timeoutMs)
    const combined = signal === undefined ? deadline.signal : AbortSignal.any([signal, deadline.signal])
    try {
      return await fn(combined, deadline.touch)
    } catch (err) {
      if (isAborted(signal)) throw abortReason(signal, what)
      if (isFinal(err)) throw err
      timedOut = deadline.signal.aborted
      attempts.push({ attempt, ...(timedOut ? { error: 'TimeoutError', message: `no answer within ${net.timeoutMs} ms` } : describe(err)) })
      if (attempt <= net.retries) await sleep(Math.min(MAX_BACKOFF_MS, net.backoffMs * 2 ** (attempt - 1)), signal)
    } finally {
      deadline.clear()
    }
  }
  const context = { store: where.store, target: where.target, attempts }
  const tries = `${attempts.length} attempt${attempts.length === 1 ? '' : 's'}`
  if (timedOut) throw new TimeoutError(`${what}: ${where.store} at ${where.target} did not answer within ${net.timeoutMs} ms (${tries})`, { context })
  const last = attempts.at(-1)
  throw new IpfsConnectionError(`${what}: ${where.store} at ${where.target} failed after ${tries}: ${last?.message ?? 'unknown error'}`, { context })
}
