/**
 * transformers.js and its tokenizers report through `console` (Whisper's "No language specified -
 * defaulting to English", input dumps on a failed run). In the inference worker those lines go to the
 * engine's logger instead, so `logging.level` and `log_file` apply to them. A warning repeated on
 * every call is logged once (the first 1000 distinct ones are remembered).
 */
import { inspect } from 'node:util'

export type LogLevel = 'debug' | 'info' | 'warn' | 'error'

type ConsoleLike = Pick<Console, 'debug' | 'log' | 'info' | 'warn' | 'error'>

const REMEMBERED_WARNINGS = 1000

export function routeConsole (target: ConsoleLike, log: (level: LogLevel, msg: string) => void): void {
  const warned = new Set<string>()
  const text = (args: unknown[]): string => args.map(a => typeof a === 'string' ? a : a instanceof Error ? a.message : inspect(a, { depth: 2, breakLength: Infinity })).join(' ')
  const to = (level: LogLevel) => (...args: unknown[]): void => {
    const msg = text(args)
    if (level === 'warn') {
      if (warned.has(msg)) return
      if (warned.size >= REMEMBERED_WARNINGS) warned.clear()
      warned.add(msg)
    }
    log(level, msg)
  }
  target.debug = to('debug')
  target.log = to('debug')
  target.info = to('info')
  target.warn = to('warn')
  target.error = to('error')
}
