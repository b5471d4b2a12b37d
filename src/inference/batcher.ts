/**
 * Dynamic batching: requests for one model that arrive while it is busy (or within `windowMs`) are
 * merged into one model call of at most `maxBatch` items, and each caller gets exactly its own result.
 * With `maxBatch` 1 every request runs alone, and starts as it is submitted when the model is free;
 * once `maxBatch` rows are queued the window ends early, since no later request could join that
 * batch anyway.
 */
import { AbortError } from '../errors.js'

export type BatchRunner<I, O> = (items: I[]) => Promise<O[]>

interface Pending<I, O> {
  item: I
  size: number
  /** Its caller gave up when this fires: it is dropped, not run, if its batch has not started. */
  signal?: AbortSignal
  /** Detaches the abort listener, once the item leaves the queue. */
  detach?: () => void
  resolve: (value: O) => void
  reject: (err: unknown) => void
}

export interface BatcherInit {
  /** Largest number of rows in one model call. */
  maxBatch: number
  /** How long the first request of a batch waits for others to join; 0 = only those already queued. */
  windowMs: number
  /**
   * Runs each batch inside a slot (the engine's concurrency bound). The batch is made up once the slot
   * is granted, so requests arriving meanwhile join it and those given up meanwhile are dropped.
   */
  slot?: <T>(fn: () => Promise<T>) => Promise<T>
}

export class Batcher<I, O> {
  /** Insertion order is arrival order; a Set lets an item given up leave from anywhere in it. */
  private readonly queue = new Set<Pending<I, O>>()
  /** Rows of the items in `queue`. */
  private queuedRows = 0
  private running = false
  private scheduled = false
  /** The window timer while the first request of a batch waits for others. */
  private windowTimer: ReturnType<typeof setTimeout> | undefined

  constructor (private readonly init: BatcherInit, private readonly runner: BatchRunner<I, O>) {}

  /** `size` is how many batch rows this item fills (a request carrying 3 texts fills 3). */
  async submit (item: I, size = 1, signal?: AbortSignal): Promise<O> {
    if (signal?.aborted === true) throw new AbortError('the call was aborted')
    return await new Promise<O>((resolve, reject) => {
      const pending: Pending<I, O> = { item, size, signal, resolve, reject }
      if (signal !== undefined) {
        // Given up while queued: it leaves the queue at once, so what it holds (its input) is freed
        // now, not when the batcher next gets a slot, which behind long model calls can be much later.
        const onAbort = (): void => {
          if (this.dequeue(pending)) reject(new AbortError('the call was aborted'))
        }
        signal.addEventListener('abort', onAbort, { once: true })
        pending.detach = () => { signal.removeEventListener('abort', onAbort) }
      }
      this.queue.add(pending)
      this.queuedRows += size
      this.schedule()
    })
  }

  get pending (): number {
    return this.queue.size
  }

  /** Takes an item out of the queue; false when it had already left. */
  private dequeue (pending: Pending<I, O>): boolean {
    if (!this.queue.delete(pending)) return false
    this.queuedRows -= pending.size
    pending.detach?.()
    return true
  }

  private readonly onFlush = (): void => {
    this.scheduled = false
    this.windowTimer = undefined
    void this.flush()
  }

  private schedule (): void {
    if (this.running) return
    if (this.scheduled) {
      // A full batch gains nothing from the rest of the window: it is the batch the timer would take.
      if (this.windowTimer !== undefined && this.queuedRows >= this.init.maxBatch) {
        clearTimeout(this.windowTimer)
        this.windowTimer = undefined
        setImmediate(this.onFlush)
      }
      return
    }
    if (this.init.maxBatch <= 1) {
      // Nothing can join a batch of one: run now rather than a turn of the event loop later.
      void this.flush()
      return
    }
    this.scheduled = true
    if (this.init.maxBatch > 1 && this.init.windowMs > 0 && this.queuedRows < this.init.maxBatch) {
      this.windowTimer = setTimeout(this.onFlush, this.init.windowMs)
    } else {
      setImmediate(this.onFlush)
    }
  }

  private takeBatch (): Array<Pending<I, O>> {
    const batch: Array<Pending<I, O>> = []
    let rows = 0
    for (const next of this.queue) {
      // An item larger than maxBatch still runs, alone.
      if (batch.length > 0 && rows + next.size > this.init.maxBatch) break
      this.dequeue(next)
      batch.push(next)
      rows += next.size
    }
    return batch
  }

  private async flush (): Promise<void> {
    if (this.running) return
    this.running = true
    try {
      const inSlot = this.init.slot ?? (async <T>(fn: () => Promise<T>): Promise<T> => await fn())
      while (this.queue.size > 0) {
        await inSlot(async () => { await this.runBatch(this.takeBatch()) })
      }
    } finally {
      this.running = false
    }
  }

  private async runBatch (batch: Array<Pending<I, O>>): Promise<void> {
    if (batch.length === 0) return
    try {
      const results = await this.runner(batch.map(p => p.item))
      batch.forEach((p, i) => { p.resolve(results[i]) })
    } catch (err) {
      if (batch.length === 1) batch[0].reject(err)
      else {
        // One bad request must not fail its neighbours: retry each alone so only it gets the error.
        for (const p of batch) {
          try {
            p.resolve((await this.runner([p.item]))[0])
          } catch (e) {
            p.reject(e)
          }
        }
      }
    }
  }
}
