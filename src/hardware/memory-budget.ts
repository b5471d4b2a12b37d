/**
 * Keeps the models loaded at once within `hardware.max_memory`. The loader asks before loading; the
 * budget answers which models to unload first, least recently used first. It only does the accounting:
 * the caller unloads, and releases a reservation whose load failed.
 */
import type { HardwareConfig } from '../config/schema.js'
import { formatBytes, parseSize } from '../config/units.js'
import { ModelLoadError } from '../errors.js'

export class MemoryBudget {
  /** Reserved bytes per key; Map order is recency order, least recently used first. */
  private readonly entries = new Map<string, number>()
  private usedBytes = 0

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
   * Reserves `bytes` for `key` (replacing an earlier reservation for it) and marks it most recently used.
   * Returns the keys the caller must unload to make room, least recently used first; they are already
   * released here. Throws ModelLoadError when the model alone is larger than the bound: no eviction could
   * make it fit, so nothing is evicted.
   * @param model the model identifier for the error's context, when the key is not readable as one.
   */
  reserve (key: string, bytes: number, model: string = key): string[] {
    if (!Number.isFinite(bytes) || bytes < 0) throw new RangeError(`MemoryBudget: bytes must be a non-negative number, got ${bytes}`)
    if (this.maxBytes !== undefined && bytes > this.maxBytes) {
      throw new ModelLoadError(
        `model ${model} needs ${formatBytes(bytes)} (${bytes} bytes), more than hardware.max_memory allows (${formatBytes(this.maxBytes)}, ${this.maxBytes} bytes)`,
        { context: { model, bytes, max_memory: this.maxBytes, field: 'hardware.max_memory' } }
      )
    }
    this.release(key)
    const evicted: string[] = []
    if (this.maxBytes !== undefined) {
      for (const [victim, size] of this.entries) {
        if (this.usedBytes + bytes <= this.maxBytes) break
        this.entries.delete(victim)
        this.usedBytes -= size
        evicted.push(victim)
      }
    }
    this.entries.set(key, bytes)
    this.usedBytes += bytes
    return evicted
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
  }
}
