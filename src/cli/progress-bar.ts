/**
 * Terminal progress for downloads and transfers. On a TTY: live cli-progress bars, one per file (or one
 * per model in `aggregate` mode). Anywhere else (a pipe, a CI log, a file): one plain line per finished
 * file, since redrawn bars would fill a log with escape codes and partial lines. Files found in a cache
 * (`cached`) are not downloads: they get no bar and no line.
 *
 * While bars are live, they own the terminal's last lines, so other output to the same stream (log
 * lines, which pino writes straight to fd 2) is caught and printed above the bars, which are then redrawn
 * below it.
 */
import fs from 'node:fs'
import cliProgress from 'cli-progress'
import { formatBytes } from '../config/units.js'

/** What a transfer reports: `DownloadProgressEvent` from hub downloads has this shape, so do IPFS transfers. */
export interface TransferProgressEvent {
  /** File (path inside the model or transfer). */
  file: string
  /** `cached`: the file was already at hand and was not transferred. */
  status: 'initiate' | 'download' | 'progress' | 'done' | 'cached'
  /** Bytes of this file so far. */
  loaded: number
  /** Size of this file; 0 while unknown. */
  total: number
  /** Model or transfer the file belongs to, shown before the file name. */
  model?: string
  /** Bytes over all files of `model` (aggregate mode). */
  modelLoaded?: number
  /** Known size of all files of `model` (aggregate mode). */
  modelTotal?: number
}

export interface ProgressReporter {
  onProgress: (event: TransferProgressEvent) => void
  /** Stops redrawing and leaves the final state on screen. Safe to call twice. */
  stop: () => void
}

export interface ProgressReporterOptions {
  /** `files`: one bar per file (default). `aggregate`: one bar per model. */
  mode?: 'files' | 'aggregate'
}

type Stream = NodeJS.WritableStream & { isTTY?: boolean, fd?: number }

type WriteSync = (fd: number, data: string | NodeJS.ArrayBufferView, ...rest: unknown[]) => number

/** The text and byte count of an `fs.writeSync` call (string, or a view with offset/length or options). */
function writeSyncText (data: string | NodeJS.ArrayBufferView, rest: unknown[]): { text: string, bytes: number } {
  if (typeof data === 'string') {
    const encoding = typeof rest[1] === 'string' ? rest[1] as BufferEncoding : 'utf8'
    return { text: data, bytes: Buffer.byteLength(data, encoding) }
  }
  const options = typeof rest[0] === 'object' && rest[0] !== null ? rest[0] as { offset?: number, length?: number } : {}
  const offset = typeof rest[0] === 'number' ? rest[0] : options.offset ?? 0
  const length = typeof rest[1] === 'number' ? rest[1] : options.length ?? data.byteLength - offset
  return { text: Buffer.from(data.buffer, data.byteOffset + offset, length).toString('utf8'), bytes: length }
}

/** Only one reporter at a time redirects a stream's writes; a second one (rare) draws without it. */
let capturing = false
/** A stream's own `write` while a capture has replaced it: what every reporter draws with. */
const unpatched = new WeakMap<object, (...args: unknown[]) => boolean>()

function writeOf (stream: Stream): (...args: unknown[]) => boolean {
  return unpatched.get(stream) ?? (stream.write as (...args: unknown[]) => boolean)
}

/**
 * Redirects writes to `stream` (its `write`, and `fs.writeSync` on its file descriptor) to `onText`
 * until `restore()`; `direct` still writes to the stream itself. Partial lines are held until their
 * newline (or `restore()`), so each call of `onText` is whole lines.
 */
function captureWrites (stream: Stream, onText: (text: string) => void): { direct: (text: string) => void, restore: () => void } {
  const target = stream as unknown as { write: (...args: unknown[]) => boolean }
  const original = writeOf(stream)
  const own = Object.prototype.hasOwnProperty.call(target, 'write')
  const direct = (text: string): void => { original.call(stream, text) }
  if (capturing) return { direct, restore: () => {} }
  capturing = true
  unpatched.set(stream, original)
  let partial = ''
  const take = (text: string): void => {
    partial += text
    const end = partial.lastIndexOf('\n')
    if (end < 0) return
    const lines = partial.slice(0, end + 1)
    partial = partial.slice(end + 1)
    onText(lines)
  }
  target.write = (chunk: unknown, encoding?: unknown, callback?: unknown): boolean => {
    take(typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString(typeof encoding === 'string' ? encoding as BufferEncoding : 'utf8'))
    const done = typeof encoding === 'function' ? encoding : callback
    if (typeof done === 'function') process.nextTick(done as () => void)
    return true
  }
  const mutableFs = fs as unknown as { writeSync: WriteSync }
  const originalWriteSync = mutableFs.writeSync
  const fd = stream.fd
  if (typeof fd === 'number') {
    mutableFs.writeSync = function (this: unknown, file: number, data: string | NodeJS.ArrayBufferView, ...rest: unknown[]): number {
      if (file !== fd) return originalWriteSync.call(this, file, data, ...rest)
      const { text, bytes } = writeSyncText(data, rest)
      take(text)
      return bytes
    }
  }
  return {
    direct,
    restore () {
      if (!capturing) return
      capturing = false
      unpatched.delete(stream)
      if (own) target.write = original
      else delete (target as { write?: unknown }).write
      mutableFs.writeSync = originalWriteSync
      if (partial !== '') direct(partial)
      partial = ''
    }
  }
}

const FORMAT = '{name} [{bar}] {percentage}% | {loadedText}/{totalText}'
/** Keeps bars aligned: longer names are cut from the left, where the common prefix is. */
const NAME_WIDTH = 40

function label (event: TransferProgressEvent, aggregate: boolean): string {
  const name = aggregate ? (event.model ?? event.file) : event.model === undefined ? event.file : `${event.model}/${event.file}`
  return name.length > NAME_WIDTH ? `…${name.slice(name.length - NAME_WIDTH + 1)}` : name.padEnd(NAME_WIDTH)
}

function payload (name: string, loaded: number, total: number): Record<string, string> {
  return { name, loadedText: formatBytes(loaded), totalText: total > 0 ? formatBytes(total) : '?' }
}

function barReporter (stream: Stream, aggregate: boolean): ProgressReporter {
  const bars = new Map<string, cliProgress.SingleBar>()
  let stopped = false
  let capture: ReturnType<typeof captureWrites> | undefined
  // The bars' own drawing goes straight to the stream, past the capture below.
  const write = writeOf(stream)
  const barStream = Object.create(stream, { write: { value: (...args: unknown[]) => write.apply(stream, args) } }) as Stream
  const multi = new cliProgress.MultiBar({
    stream: barStream,
    format: FORMAT,
    barsize: 24,
    hideCursor: false,
    clearOnComplete: false,
    stopOnComplete: false,
    autopadding: true,
    emptyOnZero: true,
    gracefulExit: false,
    // After text was printed above them, every bar must be redrawn one line lower, changed or not.
    forceRedraw: true
  }, cliProgress.Presets.shades_classic)
  // Above the bars: clear from the first bar line, print the text (wrapping, which the bars turn off),
  // and redraw the bars below it.
  const printAbove = (text: string): void => {
    multi.log(`\u001b[?7h${text}\u001b[?7l`)
    multi.update()
  }
  return {
    onProgress (event) {
      if (stopped) return
      // Nothing was transferred: no bar of its own; the model's bar still takes the new totals.
      if (event.status === 'cached' && (!aggregate || bars.get(event.model ?? event.file) === undefined)) return
      const key = aggregate ? (event.model ?? event.file) : `${event.model ?? ''}\u0000${event.file}`
      const name = label(event, aggregate)
      const loaded = aggregate ? (event.modelLoaded ?? event.loaded) : event.loaded
      let total = aggregate ? (event.modelTotal ?? event.total) : event.total
      if (!aggregate && event.status === 'done') total = Math.max(total, loaded)
      let bar = bars.get(key)
      if (bar === undefined) {
        bar = multi.create(Math.max(total, 1), 0, payload(name, loaded, total))
        bars.set(key, bar)
        capture ??= captureWrites(stream, printAbove)
      }
      if (total > 0 && bar.getTotal() !== total) bar.setTotal(total)
      bar.update(Math.min(loaded, Math.max(total, 1)), payload(name, loaded, total))
    },
    stop () {
      if (stopped) return
      stopped = true
      multi.stop()
      capture?.restore()
    }
  }
}

function lineReporter (stream: Stream, aggregate: boolean): ProgressReporter {
  const finished = new Set<string>()
  let stopped = false
  return {
    onProgress (event) {
      // Only finished transfers: a `cached` file was not downloaded.
      if (stopped || event.status !== 'done') return
      const key = `${event.model ?? ''}\u0000${event.file}`
      if (finished.has(key)) return
      finished.add(key)
      const name = event.model === undefined ? event.file : `${event.model}/${event.file}`
      let line = `downloaded ${name} (${formatBytes(Math.max(event.total, event.loaded))})`
      if (aggregate && event.modelTotal !== undefined && event.modelTotal > 0) {
        line += ` [${formatBytes(event.modelLoaded ?? 0)}/${formatBytes(event.modelTotal)} of ${event.model ?? 'all files'}]`
      }
      stream.write(`${line}\n`)
    },
    stop () {
      stopped = true
    }
  }
}

/**
 * A reporter writing to `stream`: live bars when it is a TTY, one line per finished file otherwise.
 * Call `stop()` when the transfer ends (also after a failure) so the bars stop redrawing.
 */
export function createProgressReporter (stream: Stream = process.stderr, options: ProgressReporterOptions = {}): ProgressReporter {
  const aggregate = options.mode === 'aggregate'
  return stream.isTTY === true ? barReporter(stream, aggregate) : lineReporter(stream, aggregate)
}
