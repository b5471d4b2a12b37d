/**
 * A string-keyed map kept in memory and persisted to one append-only journal file. Every record is
 * checksummed; on open the journal is replayed up to the first torn or corrupt record (a crash loses at
 * most the batch being written, never earlier ones), and it is compacted (rewritten to a temporary file,
 * fsynced, renamed) when superseded records dominate.
 *
 * Writes update memory at once and reach the file in the background, batched; `flush()` resolves when
 * everything written so far is in the file (written, not fsynced: `close()` fsyncs).
 *
 * File: 'IAJ1', then records [op u8 (1 set, 2 delete)][key length u32][value length u32][key utf-8]
 * [value][checksum u32: first 4 bytes of sha-256 over the rest of the record], little-endian.
 */
import { createHash } from 'node:crypto'
import fs from 'node:fs/promises'
import path from 'node:path'

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

  constructor (file: string) {
    this.file = path.resolve(file)
  }

  /** Loads the journal (creating it if missing). */
  async open (): Promise<void> {
    await fs.mkdir(path.dirname(this.file), { recursive: true })
    let bytes: Buffer
    try {
      bytes = await fs.readFile(this.file)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
      bytes = Buffer.alloc(0)
    }
    const valid = this.replay(bytes)
    if (valid !== bytes.byteLength || bytes.byteLength === 0 || this.records > 2 * this.data.size + COMPACT_SLACK) {
      await this.rewrite()
    }
    this.handle = await fs.open(this.file, 'a')
  }

  /** Writes what is pending, fsyncs and closes the file. */
  async close (): Promise<void> {
    await this.flush()
    await this.handle?.sync()
    await this.handle?.close()
    this.handle = undefined
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

  /** Writes the live data as a fresh journal (temporary file, fsync, rename). */
  private async rewrite (): Promise<void> {
    const parts: Buffer[] = [MAGIC]
    for (const [key, value] of this.data) parts.push(encodeRecord(OP_SET, key, value))
    const tmp = `${this.file}.${process.pid}.tmp`
    const h = await fs.open(tmp, 'w')
    try {
      await h.writeFile(Buffer.concat(parts))
      await h.sync()
    } finally {
      await h.close()
    }
    await fs.rename(tmp, this.file)
    this.records = this.data.size
  }

  private append (record: Buffer): void {
    if (this.handle === undefined) throw new Error(`journal ${this.file} is not open`)
    this.pending.push(record)
    this.records++
    this.writing ??= this.drain()
  }

  private async drain (): Promise<void> {
    try {
      while (true) {
        if (this.pending.length > 0) {
          const batch = Buffer.concat(this.pending)
          this.pending = []
          await (this.handle as fs.FileHandle).write(batch)
        } else if (this.records > 2 * this.data.size + COMPACT_SLACK) {
          // records appended meanwhile stay pending and are written by the next turn
          await this.handle?.close()
          await this.rewrite()
          this.handle = await fs.open(this.file, 'a')
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

  /** Like `flush`, then fsyncs the file: what was written so far survives a power loss. */
  async sync (): Promise<void> {
    await this.flush()
    await this.handle?.sync()
  }

  /** Resolves when every write so far has been tried; a failure stays for `flush` to report. */
  async settled (): Promise<void> {
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
