/**
 * A small in-process readers/writer lock: many readers (imports, pins) or one writer (gc). Writers are
 * not starved: once a writer waits, new readers queue behind it.
 */
export type Release = () => void

export class RwLock {
  private readers = 0
  private writer = false
  private readonly queue: Array<{ write: boolean, grant: () => void }> = []

  async read (): Promise<Release> {
    if (!this.writer && this.queue.length === 0) {
      this.readers++
      return this.releaser(false)
    }
    await new Promise<void>(resolve => this.queue.push({ write: false, grant: resolve }))
    return this.releaser(false)
  }

  async write (): Promise<Release> {
    if (!this.writer && this.readers === 0 && this.queue.length === 0) {
      this.writer = true
      return this.releaser(true)
    }
    await new Promise<void>(resolve => this.queue.push({ write: true, grant: resolve }))
    return this.releaser(true)
  }

  private releaser (write: boolean): Release {
    let released = false
    return () => {
      if (released) return
      released = true
      if (write) this.writer = false
      else this.readers--
      this.drain()
    }
  }

  private drain (): void {
    while (this.queue.length > 0 && !this.writer) {
      const next = this.queue[0]
      if (next.write) {
        if (this.readers > 0) return
        this.queue.shift()
        this.writer = true
        next.grant()
        return
      }
      this.queue.shift()
      this.readers++
      next.grant()
    }
  }
}
