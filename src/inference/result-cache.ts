/**
 * The result cache (`performance.enable_caching`, `cache_size`): results keyed by a SHA-256 of
 * (model, task, canonical input), least recently used evicted first, bounded by the JSON size of the
 * stored results (the UTF-8 bytes of their JSON, as held: see `set`). A hit returns a deep copy, so
 * callers cannot change what the next hit sees.
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
  /** `utf8`: `json` holds the UTF-8 bytes of the JSON, one per latin1 character (see `set`). */
  private readonly entries = new Map<string, { json: string, bytes: number, utf8: boolean }>()
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
    return JSON.parse(entry.utf8 ? Buffer.from(entry.json, 'latin1').toString('utf8') : entry.json)
  }

  set (key: string, value: unknown): void {
    let json = JSON.stringify(value)
    const bytes = Buffer.byteLength(json) + key.length
    if (bytes > this.maxBytes) return
    // V8 keeps a string holding any character past U+00FF at two bytes per character, the ASCII ones
    // too: the JSON of a result with one such character (generated text, a label) would take twice the
    // bytes counted. Its UTF-8 bytes, held as a latin1 string, take one byte each: what is counted.
    const utf8 = bytes - key.length !== json.length
    if (utf8) json = Buffer.from(json, 'utf8').toString('latin1')
    this.delete(key)
    while (this.bytes + bytes > this.maxBytes) {
      const oldest = this.entries.keys().next().value as string
      this.delete(oldest)
    }
    this.entries.set(key, { json, bytes, utf8 })
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
