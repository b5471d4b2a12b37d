/**
 * Results kept in IPFS: each result is stored as JSON content (so it has a CID and can be shared), and
 * an index maps the result-cache key (hash of model, task, canonical input) to that CID. The index is
 * a small JSON file in the repository, replaced atomically, so a repeated request after a restart is a
 * cache hit. Results read back are verified against their CID by the store.
 */
import { readFile, writeFile, rename, mkdir } from 'node:fs/promises'
import path from 'node:path'
import { CID } from 'multiformats/cid'
import type { ContentStore } from './content-store.js'

export const RESULT_INDEX_FILE = 'results-index.json'

export interface StoredResult {
  value: Record<string, unknown>
  cid: string
}

export class ResultStore {
  private index?: Promise<Map<string, string>>
  private writing: Promise<void> = Promise.resolve()

  constructor (private readonly store: ContentStore, private readonly folder: string) {}

  private get file (): string {
    return path.join(this.folder, RESULT_INDEX_FILE)
  }

  private async load (): Promise<Map<string, string>> {
    this.index ??= readFile(this.file, 'utf8').then(
      text => new Map(Object.entries(JSON.parse(text) as Record<string, string>)),
      () => new Map<string, string>()
    )
    return await this.index
  }

  async get (key: string): Promise<StoredResult | undefined> {
    const cid = (await this.load()).get(key)
    if (cid === undefined) return undefined
    const bytes = await this.store.get(CID.parse(cid))
    return { value: JSON.parse(new TextDecoder().decode(bytes)) as Record<string, unknown>, cid }
  }

  async set (key: string, value: Record<string, unknown>): Promise<string> {
    const cid = await this.store.put!(new TextEncoder().encode(JSON.stringify(value)), { pin: true })
    const index = await this.load()
    index.set(key, cid.toString())
    // Writes are serialised and go through a temp file, so the index is never half-written; entries
    // another instance on the same repository wrote meanwhile are merged in, not lost.
    this.writing = this.writing.then(async () => {
      await mkdir(this.folder, { recursive: true })
      const onDisk = await readFile(this.file, 'utf8').then(t => JSON.parse(t) as Record<string, string>, () => ({}))
      for (const [k, v] of Object.entries(onDisk)) if (!index.has(k)) index.set(k, v)
      const tmp = `${this.file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`
      await writeFile(tmp, JSON.stringify(Object.fromEntries(index)))
      await rename(tmp, this.file)
    })
    await this.writing
    return cid.toString()
  }
}
