/**
 * Every error ipfs-accelerate throws on purpose. One class per condition, matched on `.name`
 * (equal to the class name), each with a stable `code` for the CLI and HTTP edges and the
 * context a caller needs to act on (model, field, file, ...). `docs/errors.md` lists them; a test
 * keeps that table complete.
 */

/** Context carried by every error: what it was about. All optional. */
export interface ErrorContext {
  /** Model identifier the error concerns. */
  model?: string
  /** Dotted path of the config key or input field that was wrong (`hardware.batch_size`, `input_ids[3]`). */
  field?: string
  /** File the error concerns (a model file, a config file). */
  file?: string
  /** Anything else worth reporting. */
  [key: string]: unknown
}

export interface ErrorOptions {
  cause?: unknown
  context?: ErrorContext
}

/** Base class: never thrown itself. */
export abstract class AccelerateError extends Error {
  /** Stable machine-readable code, listed in docs/errors.md. */
  abstract readonly code: string
  readonly context: ErrorContext

  constructor (message: string, options: ErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = new.target.name
    this.context = options.context ?? {}
  }

  /** A JSON-safe view without stack: what the server and CLI may show. */
  toJSON (): { name: string, code: string, message: string, context: ErrorContext } {
    return { name: this.name, code: this.code, message: this.message, context: this.context }
  }
}

/** One problem found while validating config or input. */
export interface ValidationIssue {
  /** Dotted path of the offending key (`performance.cache_size`, `input.pixel_values`). */
  path: string
  message: string
}

/** Bad input, bad config, unknown model: something the caller gave us is wrong. */
export class ValidationError extends AccelerateError {
  readonly code = 'ERR_VALIDATION'
  readonly issues: readonly ValidationIssue[]

  constructor (message: string, issues: ValidationIssue[] = [], options: ErrorOptions = {}) {
    const field = options.context?.field ?? issues[0]?.path
    super(issues.length > 0 && !message.includes(issues[0].path)
      ? `${message}: ${issues.map(i => `${i.path}: ${i.message}`).join('; ')}`
      : message, { ...options, context: { ...options.context, ...(field === undefined ? {} : { field }) } })
    this.issues = Object.freeze([...issues])
  }

  /** Shorthand for a single wrong field. */
  static field (field: string, message: string, context: ErrorContext = {}): ValidationError {
    return new ValidationError(`${field}: ${message}`, [{ path: field, message }], { context: { ...context, field } })
  }
}

/** A model could not be found, downloaded, read or loaded. */
export class ModelLoadError extends AccelerateError {
  readonly code = 'ERR_MODEL_LOAD'
}

/** A requested device is missing or unusable, or a strict hardware request could not be met. */
export class HardwareError extends AccelerateError {
  readonly code = 'ERR_HARDWARE'
}

/** The model loaded, but running it failed. */
export class InferenceError extends AccelerateError {
  readonly code = 'ERR_INFERENCE'
}

/** Every configured IPFS store (embedded, Kubo, gateway) failed. `context.attempts` says what each said. */
export class IpfsConnectionError extends AccelerateError {
  readonly code = 'ERR_IPFS_CONNECTION'
}

/** A libp2p peer could not be dialled or did not answer the inference protocol. */
export class PeerConnectionError extends AccelerateError {
  readonly code = 'ERR_PEER_CONNECTION'
}

/** Content did not match its CID, or a block used an unsupported codec or hash. */
export class ContentVerificationError extends AccelerateError {
  readonly code = 'ERR_CONTENT_VERIFICATION'
}

/** Content is not in the store (and, for stores that can fetch, could not be found). */
export class NotFoundError extends AccelerateError {
  readonly code = 'ERR_NOT_FOUND'
}

/** An operation ran past its time limit (`ipfs.timeout`, a request deadline). */
export class TimeoutError extends AccelerateError {
  readonly code = 'ERR_TIMEOUT'
}

/** The instance was stopped, or an operation was aborted by its signal. */
export class AbortError extends AccelerateError {
  readonly code = 'ERR_ABORTED'
}

/**
 * The local disk under the IPFS repository or the model cache failed: full, over quota, read-only, not
 * writable by this user, failing, or the process ran out of file descriptors. `context.code` is the
 * errno code (`ENOSPC`, ...), `context.file` the path when the system call named one, `context.operation`
 * what was being done (`storeToIpfs`, `ipfs add`).
 */
export class StorageError extends AccelerateError {
  readonly code = 'ERR_STORAGE'
}

/** Every error class, by name: used by docs/errors.md's completeness test and to rebuild errors sent across a worker boundary. */
export const errorClasses = {
  ValidationError,
  ModelLoadError,
  HardwareError,
  InferenceError,
  IpfsConnectionError,
  PeerConnectionError,
  ContentVerificationError,
  NotFoundError,
  TimeoutError,
  AbortError,
  StorageError
} as const

export type ErrorName = keyof typeof errorClasses

/** Plain-object form of an error, for crossing a worker or process boundary. */
export interface SerializedError {
  name: string
  message: string
  context?: ErrorContext
  issues?: ValidationIssue[]
  stack?: string
  /** The error's `cause`, serialized the same way (a few levels deep). */
  cause?: SerializedError
}

/** How many levels of `cause` cross a boundary: enough for "load failed <- download failed <- socket closed". */
const MAX_CAUSE_DEPTH = 4

export function serializeError (err: unknown, depth = 0): SerializedError {
  const out: SerializedError = err instanceof Error ? { name: err.name, message: err.message, stack: err.stack } : { name: 'Error', message: String(err) }
  if (err instanceof AccelerateError) out.context = err.context
  if (err instanceof ValidationError) out.issues = [...err.issues]
  const cause = err instanceof Error ? err.cause : undefined
  if (cause !== undefined && depth < MAX_CAUSE_DEPTH) out.cause = serializeError(cause, depth + 1)
  return out
}

/** A cause as it was: one of ours by its class, anything else as a plain Error with its name. */
function deserializeCause (data: SerializedError): Error {
  if (Object.hasOwn(errorClasses, data.name)) return deserializeError(data)
  const err = new Error(data.message, data.cause === undefined ? undefined : { cause: deserializeCause(data.cause) })
  err.name = data.name
  if (data.stack !== undefined) err.stack = data.stack
  return err
}

/** Rebuilds a typed error from its serialized form; unknown names become InferenceError. */
export function deserializeError (data: SerializedError): AccelerateError {
  let err: AccelerateError
  const cause = data.cause === undefined ? undefined : deserializeCause(data.cause)
  if (data.name === 'ValidationError') {
    const v = new ValidationError(data.message, [], { context: data.context, cause })
    ;(v as { issues: readonly ValidationIssue[] }).issues = Object.freeze([...(data.issues ?? [])])
    err = v
  } else {
    // own keys only: a name such as `toString` or `__proto__` must not reach Object.prototype
    const Cls = Object.hasOwn(errorClasses, data.name) ? (errorClasses as Record<string, new (m: string, o?: ErrorOptions) => AccelerateError>)[data.name] : InferenceError
    err = new Cls(data.message, { context: data.context, cause })
  }
  if (data.stack !== undefined) err.stack = data.stack
  return err
}

/**
 * Errno codes that mean the local storage itself failed (what it means, what to do). ENOENT, EEXIST and
 * the like are left out: they usually say something about the request (a wrong path), not the disk.
 */
const STORAGE_CODES: Record<string, { what: string, fix: string }> = {
  ENOSPC: { what: 'no space left on the device', fix: 'free space on that disk, or move ipfs.repo / hub.cache_dir to a disk that has it' },
  EDQUOT: { what: 'disk quota exceeded', fix: 'free space within the quota or have it raised' },
  EFBIG: { what: 'file too large for the file system', fix: 'move ipfs.repo / hub.cache_dir to a file system that allows larger files' },
  EIO: { what: 'input/output error', fix: 'the disk or file system is failing: check it (dmesg, fsck) before retrying' },
  EROFS: { what: 'read-only file system', fix: 'remount it read-write, or point ipfs.repo / hub.cache_dir to a writable folder' },
  EACCES: { what: 'permission denied', fix: 'give this user read and write access to the folder, or point ipfs.repo / hub.cache_dir elsewhere' },
  EPERM: { what: 'operation not permitted', fix: 'give this user read and write access to the folder, or point ipfs.repo / hub.cache_dir elsewhere' },
  EMFILE: { what: 'too many open files in this process', fix: 'raise the open-file limit (ulimit -n)' },
  ENFILE: { what: 'too many open files on this system', fix: 'raise the system\'s open-file limit (fs.file-max) or close other programs' },
  ENOTDIR: { what: 'a part of the path is a file, not a folder', fix: 'use a path whose parts are folders (check ipfs.repo / hub.cache_dir)' }
}

/** System calls of sockets and processes: an EACCES, EPERM or EMFILE from them is not about storage. */
const NON_STORAGE_SYSCALLS = new Set(['connect', 'listen', 'bind', 'accept', 'socket', 'getaddrinfo', 'getnameinfo', 'spawn', 'kill'])

/**
 * A StorageError for an errno failure of the local disk (found on `err` or, for a foreign wrapper, its
 * causes), with `err` as its cause; undefined for anything else, our own errors included. Called at the
 * public boundaries (the API facade, the CLI) rather than at every fs call.
 */
export function toStorageError (err: unknown, operation: string): StorageError | undefined {
  let at = err
  for (let depth = 0; depth <= MAX_CAUSE_DEPTH && at instanceof Error && !(at instanceof AccelerateError); depth++, at = at.cause) {
    const { code, syscall, path: file } = at as NodeJS.ErrnoException
    const known = typeof code === 'string' ? STORAGE_CODES[code] : undefined
    if (known === undefined || (syscall !== undefined && NON_STORAGE_SYSCALLS.has(syscall))) continue
    const where = `${syscall === undefined ? '' : `, ${syscall}`}${file === undefined ? '' : ` ${file}`}`
    return new StorageError(`${operation}: ${known.what} (${code}${where}): ${known.fix}`, {
      cause: err,
      context: { code, operation, ...(syscall === undefined ? {} : { syscall }), ...(file === undefined ? {} : { file }) }
    })
  }
  return undefined
}
