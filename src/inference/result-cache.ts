/**
 * The result cache (`performance.enable_caching`, `cache_size`): results keyed by a SHA-256 of
 * (model, task, canonical input), least recently used evicted first, bounded by the JSON size of the
 * stored results. A hit returns a deep copy, so callers cannot change what the next hit sees.
 */
import { createHash } from 'node:crypto'
import { canonicalJson } from './canonical-input.js'

export interface ResultCacheStats {
  entries: number
  bytes: number
  maxBytes: number
  hits: number
  misses: number
}

export class ResultCache {
  private readonly entries = new Map<string, { json: string, bytes: number }>()
  private bytes = 0
  private hits = 0
  private misses = 0

  constructor (readonly maxBytes: number) {}

  static key (model: string, task: string, input: unknown): string {
    return createHash('sha256').update(canonicalJson({ model, task, input })).digest('hex')
  }

  get (key: string): unknown {
    const entry = this.entries.get(key)
    if (entry === undefined) {
      this.misses++
      return undefined
    }
    // Re-insert to mark as most recently used.
    this.entries.delete(key)
    this.entries.set(key, entry)
    this.hits++
    return JSON.parse(entry.json)
  }

  set (key: string, value: unknown): void {
    const json = JSON.stringify(value)
    const bytes = Buffer.byteLength(json) + key.length
    if (bytes > this.maxBytes) return
    this.delete(key)
    while (this.bytes + bytes > this.maxBytes) {
      const oldest = this.entries.keys().next().value as string
      this.delete(oldest)
    }
    this.entries.set(key, { json, bytes })
    this.bytes += bytes
  }

  delete (key: string): void {
    const entry = this.entries.get(key)
    if (entry === undefined) return
    this.entries.delete(key)
    this.bytes -= entry.bytes
  }

  clear (): void {
    this.entries.clear()
    this.bytes = 0
  }

  stats (): ResultCacheStats {
    return { entries: this.entries.size, bytes: this.bytes, maxBytes: this.maxBytes, hits: this.hits, misses: this.misses }
  }
}
