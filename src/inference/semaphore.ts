import { AbortError } from '../errors.js'

/** Bounds how many async operations run at once; the rest wait in FIFO order. */
export class Semaphore {
  private active = 0
  /** Insertion order is FIFO order; a Set lets a waiter that gave up leave from anywhere in the line. */
  private readonly waiting = new Set<() => void>()

  constructor (readonly limit: number) {}

  /** Waiting operations. */
  get pending (): number {
    return this.waiting.size
  }

  /**
   * Runs `fn` once a slot is free. When `signal` fires while it waits, it leaves the line at once and
   * rejects with AbortError: what it holds (its input) is freed then, not when its turn would come,
   * which behind long model calls can be much later.
   */
  async run<T> (fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    // A waiter is handed the finishing operation's slot (`active` stays counted): were the slot freed
    // and the waiter only woken, a caller arriving before the waiter resumes could take it too.
    if (this.active >= this.limit) await this.wait(signal)
    else this.active++
    try {
      return await fn()
    } finally {
      const next = this.waiting.values().next()
      if (next.done === true) this.active--
      else {
        this.waiting.delete(next.value)
        next.value()
      }
    }
  }

  private async wait (signal?: AbortSignal): Promise<void> {
    if (signal?.aborted === true) throw new AbortError('the call was aborted')
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        this.waiting.delete(grant)
        reject(new AbortError('the call was aborted'))
      }
      const grant = (): void => {
        signal?.removeEventListener('abort', onAbort)
        resolve()
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      this.waiting.add(grant)
    })
  }
}
