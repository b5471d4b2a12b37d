/**
 * The injected logger: pino, with a namespace per component (`ipfs-accelerate:inference:engine`).
 * `logging.level` maps the seed's Python-style names (INFO, WARNING, CRITICAL) onto pino's.
 */
import { pino, type Logger as PinoLogger, type DestinationStream } from 'pino'
import type { LoggingConfig } from '../config/schema.js'

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
  const dest = destination ?? (config.log_file !== undefined
    ? pino.destination({ dest: config.log_file, append: true, mkdir: true, sync: true })
    : pino.destination({ fd: 2, sync: true }))
  return pino({ name: 'ipfs-accelerate', level: pinoLevel(config.level), base: undefined }, dest)
}

/** A child logger for one component. */
export function componentLogger (root: Logger, component: string): Logger {
  return root.child({ ns: `ipfs-accelerate:${component}` })
}

/** A logger that drops everything: for components used standalone (tests, tools). */
export function silentLogger (): Logger {
  return pino({ level: 'silent' })
}
