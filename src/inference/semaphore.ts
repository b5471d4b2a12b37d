/** Bounds how many async operations run at once; the rest wait in FIFO order. */
export class Semaphore {
  private active = 0
  private readonly waiting: Array<() => void> = []

  constructor (readonly limit: number) {}

  async run<T> (fn: () => Promise<T>): Promise<T> {
    // A waiter is handed the finishing operation's slot (`active` stays counted): were the slot freed
    // and the waiter only woken, a caller arriving before the waiter resumes could take it too.
    if (this.active >= this.limit) await new Promise<void>(resolve => this.waiting.push(resolve))
    else this.active++
    try {
      return await fn()
    } finally {
      const next = this.waiting.shift()
      if (next !== undefined) next()
      else this.active--
    }
  }
}
