/**
 * Terminal progress for downloads and transfers. On a TTY: live cli-progress bars, one per file (or one
 * per model in `aggregate` mode). Anywhere else (a pipe, a CI log, a file): one plain line per finished
 * file, since redrawn bars would fill a log with escape codes and partial lines.
 */
import cliProgress from 'cli-progress'
import { formatBytes } from '../config/units.js'

/** What a transfer reports: `DownloadProgressEvent` from hub downloads has this shape, so do IPFS transfers. */
export interface TransferProgressEvent {
  /** File (path inside the model or transfer). */
  file: string
  status: 'initiate' | 'download' | 'progress' | 'done'
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

type Stream = NodeJS.WritableStream & { isTTY?: boolean }

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
  const multi = new cliProgress.MultiBar({
    stream,
    format: FORMAT,
    barsize: 24,
    hideCursor: false,
    clearOnComplete: false,
    stopOnComplete: false,
    autopadding: true,
    emptyOnZero: true,
    gracefulExit: false
  }, cliProgress.Presets.shades_classic)
  const bars = new Map<string, cliProgress.SingleBar>()
  let stopped = false
  return {
    onProgress (event) {
      if (stopped) return
      const key = aggregate ? (event.model ?? event.file) : `${event.model ?? ''}\u0000${event.file}`
      const name = label(event, aggregate)
      const loaded = aggregate ? (event.modelLoaded ?? event.loaded) : event.loaded
      let total = aggregate ? (event.modelTotal ?? event.total) : event.total
      if (!aggregate && event.status === 'done') total = Math.max(total, loaded)
      let bar = bars.get(key)
      if (bar === undefined) {
        bar = multi.create(Math.max(total, 1), 0, payload(name, loaded, total))
        bars.set(key, bar)
      }
      if (total > 0 && bar.getTotal() !== total) bar.setTotal(total)
      bar.update(Math.min(loaded, Math.max(total, 1)), payload(name, loaded, total))
    },
    stop () {
      if (stopped) return
      stopped = true
      multi.stop()
    }
  }
}

function lineReporter (stream: Stream, aggregate: boolean): ProgressReporter {
  const finished = new Set<string>()
  let stopped = false
  return {
    onProgress (event) {
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
