/**
 * The injected logger: pino, with a namespace per component (`ipfs-accelerate:inference:engine`).
 * `logging.level` maps the seed's Python-style names (INFO, WARNING, CRITICAL) onto pino's.
 */
import { pino, type Logger as PinoLogger, type DestinationStream } from 'pino'
import { dirname } from 'node:path'
import type { LoggingConfig } from '../config/schema.js'
import { ValidationError } from '../errors.js'
import { makeDirectorySync } from '../content/make-directory.js'

export type Logger = PinoLogger

const LEVELS: Record<string, string> = {
  TRACE: 'trace',
  DEBUG: 'debug',
  INFO: 'info',
  WARNING: 'warn',
  WARN: 'warn',
  ERROR: 'error',
  CRITICAL: 'fatal',
  FATAL: 'fatal',
  SILENT: 'silent'
}

export function pinoLevel (level: string): string {
  return LEVELS[level.toUpperCase()] ?? 'info'
}

/**
 * Creates the root logger. Logs go to `log_file` when set (appended, created if missing) and to stderr
 * otherwise, so stdout stays free for results and the CLI's output.
 */
export function createLogger (config: Pick<LoggingConfig, 'level' | 'log_file'>, destination?: DestinationStream): Logger {
  const dest = destination ?? (config.log_file !== undefined ? openLogFile(config.log_file) : pino.destination({ fd: 2, sync: true }))
  return pino({ name: 'ipfs-accelerate', level: pinoLevel(config.level), base: undefined }, dest)
}

/**
 * The log file, its folder created first (not by pino's own recursive mkdir, which spins for ever under
 * /proc: see make-directory.ts). A path that cannot be a log file is a ValidationError on the setting.
 */
function openLogFile (file: string): DestinationStream {
  try {
    makeDirectorySync(dirname(file))
    return pino.destination({ dest: file, append: true, mkdir: false, sync: true })
  } catch (cause) {
    throw new ValidationError(`logging.log_file: cannot write the log file ${file}: ${(cause as Error).message}`, [{ path: 'logging.log_file', message: (cause as Error).message }], { cause, context: { field: 'logging.log_file', file } })
  }
}

/** A child logger for one component. */
export function componentLogger (root: Logger, component: string): Logger {
  return root.child({ ns: `ipfs-accelerate:${component}` })
}

/** A logger that drops everything: for components used standalone (tests, tools). */
export function silentLogger (): Logger {
  return pino({ level: 'silent' })
}
