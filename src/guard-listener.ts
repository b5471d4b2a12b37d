/**
 * Progress listeners are the caller's code, called from deep inside a transfer or from the worker's
 * messages. Progress is only ever reported: a listener that throws, or returns a promise that rejects,
 * is logged and ignored, never fails the work it watches, and never becomes an unhandled rejection
 * (which ends a Node process).
 */
import type { Logger } from './logging/logger.js'

export function guardListener<E> (listener: (event: E) => unknown, logger: Logger): (event: E) => void {
  const failed = (err: unknown): void => { logger.warn({ err }, 'a progress listener failed; ignored') }
  return event => {
    try {
      const returned = listener(event)
      if (returned instanceof Promise) returned.catch(failed)
    } catch (err) {
      failed(err)
    }
  }
}
