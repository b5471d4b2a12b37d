/**
 * Results kept in IPFS: each result is stored as JSON content (so it has a CID and can be shared), and
 * an index maps the result-cache key (hash of model, task, canonical input) to that CID. The index is
 * a small JSON file in the repository, replaced atomically, so a repeated request after a restart is a
 * cache hit. Results read back are verified against their CID by the store.
 *
 * The index is only a cache: an entry whose result cannot be read back (unpinned and collected, corrupt,
 * not JSON) is a miss, logged and dropped from the index, so the result is computed and stored again;
 * an index file that is not valid JSON is set aside (`results-index.json.corrupt-<time>`) and a fresh one
 * started.
 */
import { readFile, writeFile, rename } from 'node:fs/promises'
import path from 'node:path'
import { CID } from 'multiformats/cid'
import { silentLogger, type Logger } from '../logging/logger.js'
import type { ContentStore } from './content-store.js'
import { makeDirectory } from './make-directory.js'

export const RESULT_INDEX_FILE = 'results-index.json'

export interface StoredResult {
  value: Record<string, unknown>
  cid: string
}

export interface ResultStoreOptions {
  /** Where misses and a corrupt index are reported (default: nowhere). */
  logger?: Logger
}

export class ResultStore {
  private index?: Promise<Map<string, string>>
  private writing: Promise<void> = Promise.resolve()
  /** Keys dropped here: a write must not bring them back from the file it merges. */
  private readonly dropped = new Set<string>()
  private readonly log: Logger

  constructor (private readonly store: ContentStore, private readonly folder: string, options: ResultStoreOptions = {}) {
    this.log = (options.logger ?? silentLogger()).child({ ns: 'ipfs-accelerate:content:results' })
  }

  private get file (): string {
    return path.join(this.folder, RESULT_INDEX_FILE)
  }

  /**
   * The index on disk: empty when there is none (or it cannot be read); a file that is not a JSON object
   * of strings is renamed aside, logged, and counts as empty.
   */
  private async readIndexFile (): Promise<Map<string, string>> {
    let text: string
    try {
      text = await readFile(this.file, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.log.warn({ err, file: this.file }, 'cannot read the result index; starting a fresh one')
      return new Map()
    }
    try {
      const parsed = JSON.parse(text) as unknown
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not a JSON object')
      return new Map(Object.entries(parsed as Record<string, unknown>).filter((e): e is [string, string] => typeof e[1] === 'string'))
    } catch (err) {
      const aside = `${this.file}.corrupt-${Date.now()}`
      await rename(this.file, aside).catch(() => {})
      this.log.warn({ err, file: this.file, movedTo: aside }, 'the result index is not valid JSON: set aside, starting a fresh one')
      return new Map()
    }
  }

  private async load (): Promise<Map<string, string>> {
    this.index ??= this.readIndexFile()
    return await this.index
  }

  /** The stored result for `key`, or undefined (a miss, also when the stored result cannot be read). */
  async get (key: string): Promise<StoredResult | undefined> {
    const index = await this.load()
    const cid = index.get(key)
    if (cid === undefined) return undefined
    try {
      const bytes = await this.store.get(CID.parse(cid))
      const value = JSON.parse(new TextDecoder().decode(bytes)) as unknown
      if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('the stored result is not a JSON object')
      return { value: value as Record<string, unknown>, cid }
    } catch (err) {
      if ((err as Error)?.name === 'AbortError') throw err
      this.log.warn({ err, key, cid }, 'a stored result cannot be read back: dropped from the index, it will be computed again')
      if (index.get(key) === cid) {
        index.delete(key)
        this.dropped.add(key)
        await this.save(index).catch((saveErr: unknown) => { this.log.warn({ err: saveErr, file: this.file }, 'cannot write the result index') })
      }
      return undefined
    }
  }

  async set (key: string, value: Record<string, unknown>): Promise<string> {
    const cid = await this.store.put!(new TextEncoder().encode(JSON.stringify(value)), { pin: true })
    const index = await this.load()
    index.set(key, cid.toString())
    this.dropped.delete(key)
    await this.save(index)
    return cid.toString()
  }

  /**
   * Writes the index. Writes are serialised and go through a temp file, so the index is never
   * half-written; entries another instance on the same repository wrote meanwhile are merged in, not
   * lost (except those dropped here).
   */
  private async save (index: Map<string, string>): Promise<void> {
    const write = async (): Promise<void> => {
      await makeDirectory(this.folder)
      for (const [k, v] of await this.readIndexFile()) if (!index.has(k) && !this.dropped.has(k)) index.set(k, v)
      const tmp = `${this.file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`
      await writeFile(tmp, JSON.stringify(Object.fromEntries(index)))
      await rename(tmp, this.file)
    }
    // a failed write must not fail every later one
    const run = this.writing.then(write, write)
    this.writing = run.catch(() => {})
    await run
  }
}
