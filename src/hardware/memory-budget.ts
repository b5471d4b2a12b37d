/**
 * Keeps the models loaded at once within `hardware.max_memory`. The loader asks before loading; the
 * budget answers which models to unload first, least recently used first. It does the accounting and
 * knows which models are in use (`use`): a model some request still needs is never chosen for
 * unloading. When only models in use stand in the way, `reserveWhenFree` waits until enough of them
 * are released, in arrival order. The caller unloads, and releases a reservation whose load failed.
 */
import type { HardwareConfig } from '../config/schema.js'
import { formatBytes, parseSize } from '../config/units.js'
import { ModelLoadError } from '../errors.js'

interface Waiter {
  key: string
  bytes: number
  evict?: (victim: string) => void
  resolve: (victims: string[]) => void
  reject: (err: unknown) => void
  /** Settles (never rejects) once this waiter got its reservation or gave up. */
  settled: Promise<void>
  settle: () => void
}

export class MemoryBudget {
  /** Reserved bytes per key; Map order is recency order, least recently used first. */
  private readonly entries = new Map<string, number>()
  private usedBytes = 0
  /** How many users hold each key (`use`); held keys are never evicted. */
  private readonly users = new Map<string, number>()
  /** `whenFree` callers, by key. */
  private readonly freeWaiters = new Map<string, Array<() => void>>()
  /** Reservations waiting for models in use to be released, first come first served. */
  private readonly waiters: Waiter[] = []

  /** @param maxBytes the bound in bytes; undefined means unbounded (nothing is ever evicted). */
  constructor (readonly maxBytes: number | undefined) {
    if (maxBytes !== undefined && (!Number.isFinite(maxBytes) || maxBytes < 0)) {
      throw new RangeError(`MemoryBudget: maxBytes must be a non-negative number, got ${maxBytes}`)
    }
  }

  /** A budget from the config's `hardware.max_memory` (`"8GB"`, `1073741824`, or unset). */
  static fromConfig (hardware: Pick<HardwareConfig, 'max_memory'>): MemoryBudget {
    return new MemoryBudget(hardware.max_memory === undefined ? undefined : parseSize(hardware.max_memory))
  }

  /** Bytes currently reserved. */
  get used (): number {
    return this.usedBytes
  }

  /** Keys held, least recently used first. */
  keys (): string[] {
    return [...this.entries.keys()]
  }

  has (key: string): boolean {
    return this.entries.has(key)
  }

  /**
   * Marks `key` as in use (a request queued for it or running on it) until the returned function is
   * called; calling that again does nothing. Uses nest: the key is free once every use is released. The
   * key need not be reserved yet (a request waiting for the model to load holds it too).
   */
  use (key: string): () => void {
    this.users.set(key, (this.users.get(key) ?? 0) + 1)
    let released = false
    return () => {
      if (released) return
      released = true
      const left = (this.users.get(key) ?? 1) - 1
      if (left > 0) {
        this.users.set(key, left)
      } else {
        this.users.delete(key)
        for (const wake of this.freeWaiters.get(key) ?? []) wake()
        this.freeWaiters.delete(key)
        this.pump()
      }
    }
  }

  inUse (key: string): boolean {
    return this.users.has(key)
  }

  /** Resolves once no request uses `key` (at once when none does). */
  async whenFree (key: string): Promise<void> {
    if (!this.users.has(key)) return
    await new Promise<void>(resolve => {
      const list = this.freeWaiters.get(key) ?? []
      list.push(resolve)
      this.freeWaiters.set(key, list)
    })
  }

  /** Reservations waiting in `reserveWhenFree` for models in use to be released. */
  get waiting (): number {
    return this.waiters.length
  }

  /** Whether a reservation for `key` is waiting in `reserveWhenFree`. */
  isWaiting (key: string): boolean {
    return this.waiters.some(w => w.key === key)
  }

  /**
   * A promise that settles once every reservation waiting now has been granted or given up, or
   * undefined when none waits. Callers about to start using a reserved model wait for it first, so a
   * model in steady use cannot keep a waiting load out forever.
   */
  whenWaitersServed (): Promise<void> | undefined {
    return this.waiters.at(-1)?.settled
  }

  /**
   * Reserves `bytes` for `key` (replacing an earlier reservation for it) and marks it most recently used.
   * Returns the keys the caller must unload to make room, least recently used first; they are already
   * released here. Keys in use are never among them. Throws ModelLoadError when the model alone is
   * larger than the bound (no eviction could make it fit), or when only models in use stand in the way
   * (see `reserveWhenFree` to wait instead); in both cases nothing is evicted.
   * @param model the model identifier for the error's context, when the key is not readable as one.
   */
  reserve (key: string, bytes: number, model: string = key): string[] {
    this.check(bytes, model)
    const victims = this.plan(key, bytes)
    if (victims === undefined) {
      const inUse = this.keys().filter(k => k !== key && this.inUse(k))
      throw new ModelLoadError(
        `model ${model} needs ${formatBytes(bytes)} (${bytes} bytes) but hardware.max_memory (${formatBytes(this.maxBytes ?? 0)}) is taken by models in use`,
        { context: { model, bytes, max_memory: this.maxBytes, field: 'hardware.max_memory', in_use: inUse } }
      )
    }
    return this.apply(key, bytes, victims)
  }

  /**
   * Like `reserve`, but when only models in use stand in the way, waits (behind reservations already
   * waiting) until enough of them are released. `evict` is called for each victim synchronously at the
   * moment it is released from the budget, before anything else runs, so a caller can take the model
   * out of reach of new users at once; the promise then resolves with the same keys. Rejects with
   * ModelLoadError when the model alone is larger than the bound.
   */
  async reserveWhenFree (key: string, bytes: number, model: string = key, evict?: (victim: string) => void): Promise<string[]> {
    this.check(bytes, model)
    return await new Promise<string[]>((resolve, reject) => {
      let settle!: () => void
      const settled = new Promise<void>(resolve => { settle = resolve })
      this.waiters.push({ key, bytes, evict, resolve, reject, settled, settle })
      this.pump()
    })
  }

  /** Rejects every reservation still waiting with `reason` (the engine is stopping). */
  cancelWaiting (reason: unknown): void {
    for (const waiter of this.waiters.splice(0)) {
      waiter.reject(reason)
      waiter.settle()
    }
  }

  /** Marks a key as just used, so it is evicted last. Unknown keys are ignored. */
  touch (key: string): void {
    const size = this.entries.get(key)
    if (size === undefined) return
    this.entries.delete(key)
    this.entries.set(key, size)
  }

  /** Drops a reservation (model unloaded, or its load failed). Unknown keys are ignored. */
  release (key: string): void {
    const size = this.entries.get(key)
    if (size === undefined) return
    this.entries.delete(key)
    this.usedBytes -= size
    this.pump()
  }

  private check (bytes: number, model: string): void {
    if (!Number.isFinite(bytes) || bytes < 0) throw new RangeError(`MemoryBudget: bytes must be a non-negative number, got ${bytes}`)
    if (this.maxBytes !== undefined && bytes > this.maxBytes) {
      throw new ModelLoadError(
        `model ${model} needs ${formatBytes(bytes)} (${bytes} bytes), more than hardware.max_memory allows (${formatBytes(this.maxBytes)}, ${this.maxBytes} bytes)`,
        { context: { model, bytes, max_memory: this.maxBytes, field: 'hardware.max_memory' } }
      )
    }
  }

  /** The keys to evict, least recently used first, so `key` fits; undefined when keys in use prevent it. Changes nothing. */
  private plan (key: string, bytes: number): string[] | undefined {
    if (this.maxBytes === undefined) return []
    let used = this.usedBytes - (this.entries.get(key) ?? 0)
    const victims: string[] = []
    for (const [victim, size] of this.entries) {
      if (used + bytes <= this.maxBytes) break
      if (victim === key || this.inUse(victim)) continue
      victims.push(victim)
      used -= size
    }
    return used + bytes <= this.maxBytes ? victims : undefined
  }

  private apply (key: string, bytes: number, victims: readonly string[]): string[] {
    const previous = this.entries.get(key)
    if (previous !== undefined) {
      this.entries.delete(key)
      this.usedBytes -= previous
    }
    for (const victim of victims) {
      this.usedBytes -= this.entries.get(victim) ?? 0
      this.entries.delete(victim)
    }
    this.entries.set(key, bytes)
    this.usedBytes += bytes
    return [...victims]
  }

  /** Grants waiting reservations in order, as far as they fit; the first that does not fit blocks the rest. */
  private pump (): void {
    while (this.waiters.length > 0) {
      const head = this.waiters[0]
      const victims = this.plan(head.key, head.bytes)
      if (victims === undefined) return
      this.waiters.shift()
      this.apply(head.key, head.bytes, victims)
      try {
        for (const victim of victims) head.evict?.(victim)
        head.resolve(victims)
      } catch (err) {
        head.reject(err)
      } finally {
        head.settle()
      }
    }
  }
}
