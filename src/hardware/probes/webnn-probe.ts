/**
 * WebNN exists only in browsers (`navigator.ml`); onnxruntime-node has no WebNN provider, so in Node it is
 * always unavailable, with a reason. Where `navigator.ml` exists, a context must really be created.
 */
import { availability, type WebnnStatus } from '../hardware-report.js'
import { callAsync, type Probe, type ProbeContext } from '../probe-context.js'

export function * probeWebnn (ctx: ProbeContext): Probe<WebnnStatus> {
  const ml = ctx.env.navigator?.ml
  if (ml === undefined) {
    return { provider: 'webnn', available: false, reason: 'WebNN (navigator.ml) exists only in browsers; this runtime has none and onnxruntime-node has no WebNN provider' }
  }
  const createContext = ml.createContext
  if (typeof createContext !== 'function') return { provider: 'webnn', available: false, reason: 'navigator.ml has no createContext()' }
  const answer = yield * callAsync('navigator.ml.createContext()', ctx.timeouts.commandMs, async () => await createContext.call(ml))
  return { provider: 'webnn', ...availability(answer.ok ? [] : [answer.error ?? 'navigator.ml.createContext() failed']) }
}
