/**
 * A string-keyed map kept in memory and persisted to one append-only journal file. Every record is
 * checksummed; on open the journal is replayed up to the first torn or corrupt record and cut there (a
 * crash loses at most the batch being written, never earlier ones), and it is compacted (rewritten to a
 * temporary file, fsynced, renamed) when superseded records dominate. A batch can be cut between any two
 * of its records, so one update must never take two records (a delete then a set). A file that does not
 * start like a journal is refused with a ContentVerificationError naming it, not emptied.
 *
 * Writes update memory at once and reach the file in the background, batched; `flush()` resolves when
 * everything written so far is in the file (written, not fsynced: `close()` fsyncs).
 *
 * Failed writes (a full disk, EIO): each batch is written at the end of the records already in the file
 * (a positioned write, not O_APPEND) and stays pending until all of it is there. A short or failed write
 * is therefore written again, over its own torn bytes, by the next turn (the next write, or `flush`,
 * which reports the failure meanwhile): memory and file never diverge for good, and later records are
 * never appended behind a torn one (replay stops at the first bad record, so they would be lost). A
 * compaction that fails leaves the journal as it was and is tried again later; it is not an error.
 *
 * File: 'IAJ1', then records [op u8 (1 set, 2 delete)][key length u32][value length u32][key utf-8]
 * [value][checksum u32: first 4 bytes of sha-256 over the rest of the record], little-endian.
 */
import { createHash } from 'node:crypto'
import fs from 'node:fs/promises'
import path from 'node:path'
import { ContentVerificationError } from '../errors.js'
import { makeDirectory } from './make-directory.js'

const MAGIC = Buffer.from('IAJ1')
const OP_SET = 1
const OP_DELETE = 2
const HEADER = 9
const CHECKSUM = 4
/** Compact when the journal holds this many more records than live keys (and at least twice as many). */
const COMPACT_SLACK = 10_000

function checksum (bytes: Uint8Array): number {
  return createHash('sha256').update(bytes).digest().readUInt32LE(0)
}

function encodeRecord (op: number, key: string, value?: Uint8Array): Buffer {
  const k = Buffer.from(key, 'utf8')
  const v = value ?? new Uint8Array(0)
  const out = Buffer.allocUnsafe(HEADER + k.byteLength + v.byteLength + CHECKSUM)
  out.writeUInt8(op, 0)
  out.writeUInt32LE(k.byteLength, 1)
  out.writeUInt32LE(v.byteLength, 5)
  k.copy(out, HEADER)
  out.set(v, HEADER + k.byteLength)
  const end = HEADER + k.byteLength + v.byteLength
  out.writeUInt32LE(checksum(out.subarray(0, end)), end)
  return out
}

export class Journal {
  /** The journal file. */
  readonly file: string
  private readonly data = new Map<string, Uint8Array>()
  private handle: fs.FileHandle | undefined
  private pending: Buffer[] = []
  private writing: Promise<void> | undefined
  private failure: Error | undefined
  private records = 0
  /** Bytes of the file holding whole records: where the next batch goes. */
  private length = 0
  /** No compaction before `records` passes this (set after a compaction failed). */
  private compactAfter = 0

  constructor (file: string) {
    this.file = path.resolve(file)
  }

  /** Loads the journal (creating it if missing). */
  async open (): Promise<void> {
    await makeDirectory(path.dirname(this.file))
    let bytes: Buffer
    try {
      bytes = await fs.readFile(this.file)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
      bytes = Buffer.alloc(0)
    }
    await this.removeTemporaries()
    const valid = this.replay(bytes)
    if (valid === 0 && bytes.byteLength > 0) {
      // never what a crash leaves (a journal is created whole, by a rename): another file, or damage
      throw new ContentVerificationError(`${this.file} is not a journal (it does not start with ${MAGIC.toString()}); it was left as it is: move it away to start with an empty one`, { context: { file: this.file } })
    }
    this.length = valid
    if (valid === 0) {
      await this.rewrite()
    } else {
      // a torn tail (a process killed mid-append): cut it (needs no free space, unlike a rewrite)
      if (valid !== bytes.byteLength) await fs.truncate(this.file, valid)
      if (this.compactDue()) await this.rewrite().catch(() => { this.compactAfter = this.records + COMPACT_SLACK })
    }
    this.handle = await fs.open(this.file, 'r+')
  }

  /** Writes what is pending, fsyncs and closes the file (closed even when the writes fail). */
  async close (): Promise<void> {
    try {
      await this.flush()
      await this.handle?.sync()
    } finally {
      const h = this.handle
      this.handle = undefined
      await h?.close()
    }
  }

  /** Removes temporary files of rewrites that a killed process left (one process owns the repository). */
  private async removeTemporaries (): Promise<void> {
    const prefix = `${path.basename(this.file)}.`
    for (const name of await fs.readdir(path.dirname(this.file))) {
      if (name.startsWith(prefix) && /^\d+\.tmp$/.test(name.slice(prefix.length))) await fs.rm(path.join(path.dirname(this.file), name), { force: true })
    }
  }

  private compactDue (): boolean {
    return this.records > 2 * this.data.size + COMPACT_SLACK && this.records > this.compactAfter
  }

  get size (): number {
    return this.data.size
  }

  get (key: string): Uint8Array | undefined {
    return this.data.get(key)
  }

  has (key: string): boolean {
    return this.data.has(key)
  }

  set (key: string, value: Uint8Array): void {
    this.data.set(key, value)
    this.append(encodeRecord(OP_SET, key, value))
  }

  /** Returns whether the key was there. */
  delete (key: string): boolean {
    if (!this.data.delete(key)) return false
    this.append(encodeRecord(OP_DELETE, key))
    return true
  }

  /** A snapshot of the entries (safe to mutate the journal while iterating it). */
  entries (): Array<[string, Uint8Array]> {
    return [...this.data]
  }

  keys (): string[] {
    return [...this.data.keys()]
  }

  /** Replays records into memory; returns the length of the valid prefix. */
  private replay (bytes: Buffer): number {
    this.data.clear()
    this.records = 0
    if (bytes.byteLength < MAGIC.byteLength || !bytes.subarray(0, MAGIC.byteLength).equals(MAGIC)) return 0
    let offset = MAGIC.byteLength
    while (offset + HEADER <= bytes.byteLength) {
      const op = bytes.readUInt8(offset)
      const keyLength = bytes.readUInt32LE(offset + 1)
      const valueLength = bytes.readUInt32LE(offset + 5)
      const end = offset + HEADER + keyLength + valueLength
      if ((op !== OP_SET && op !== OP_DELETE) || end + CHECKSUM > bytes.byteLength) break
      if (checksum(bytes.subarray(offset, end)) !== bytes.readUInt32LE(end)) break
      const key = bytes.toString('utf8', offset + HEADER, offset + HEADER + keyLength)
      if (op === OP_SET) this.data.set(key, new Uint8Array(bytes.subarray(offset + HEADER + keyLength, end)))
      else this.data.delete(key)
      this.records++
      offset = end + CHECKSUM
    }
    return offset
  }

  /**
   * Writes the live data as a fresh journal (temporary file, fsync, rename); the temporary file goes
   * when it fails. The handle, if open, is moved to the new file.
   */
  private async rewrite (): Promise<void> {
    const parts: Buffer[] = [MAGIC]
    for (const [key, value] of this.data) parts.push(encodeRecord(OP_SET, key, value))
    const bytes = Buffer.concat(parts)
    const tmp = `${this.file}.${process.pid}.tmp`
    try {
      const h = await fs.open(tmp, 'w')
      try {
        await h.writeFile(bytes)
        await h.sync()
      } finally {
        await h.close()
      }
      await fs.rename(tmp, this.file)
    } catch (err) {
      await fs.rm(tmp, { force: true }).catch(() => {})
      throw err
    }
    this.records = this.data.size
    this.length = bytes.byteLength
    if (this.handle !== undefined) {
      const old = this.handle
      this.handle = await fs.open(this.file, 'r+')
      await old.close().catch(() => {})
    }
  }

  private append (record: Buffer): void {
    if (this.handle === undefined) throw new Error(`journal ${this.file} is not open`)
    this.pending.push(record)
    this.records++
    this.writing ??= this.drain()
  }

  private async drain (): Promise<void> {
    try {
      while (this.handle !== undefined) {
        if (this.pending.length > 0) {
          const taken = this.pending.length
          const batch = Buffer.concat(this.pending)
          await this.writeAt(this.handle, batch, this.length)
          // only now: a failed batch stays pending, to be written again at the same place
          this.pending.splice(0, taken)
          this.length += batch.byteLength
          if (this.pending.length === 0) this.failure = undefined // everything reported as failed is written now
        } else if (this.compactDue()) {
          // records appended meanwhile stay pending and are written by the next turn, into the new file;
          // a failed compaction costs nothing but space, so it is not a write failure
          await this.rewrite().catch(() => { this.compactAfter = this.records + COMPACT_SLACK })
        } else {
          break
        }
      }
    } catch (err) {
      this.failure = err as Error
    } finally {
      this.writing = undefined
    }
  }

  /** Writes all of `batch` at `position` (a full disk first writes part of it, then fails). */
  private async writeAt (handle: fs.FileHandle, batch: Buffer, position: number): Promise<void> {
    let done = 0
    while (done < batch.byteLength) {
      const { bytesWritten } = await handle.write(batch, done, batch.byteLength - done, position + done)
      if (bytesWritten <= 0) throw Object.assign(new Error(`journal ${this.file}: write made no progress`), { code: 'EIO' })
      done += bytesWritten
    }
  }

  /** Like `flush`, then fsyncs the file: what was written so far survives a power loss. */
  async sync (): Promise<void> {
    await this.flush()
    await this.handle?.sync()
  }

  /**
   * Resolves when every write so far has been tried (a batch that failed before is tried again); a
   * failure stays for `flush` to report.
   */
  async settled (): Promise<void> {
    if (this.pending.length > 0 && this.handle !== undefined) this.writing ??= this.drain()
    while (this.writing !== undefined) await this.writing
  }

  /** Resolves when every write so far is in the journal file; rethrows a failed background write. */
  async flush (): Promise<void> {
    await this.settled()
    if (this.failure !== undefined) {
      const err = this.failure
      this.failure = undefined
      throw err
    }
  }
}
