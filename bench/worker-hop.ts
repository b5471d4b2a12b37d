/**
 * What the hop to the inference worker costs on this machine, apart from any engine code: a request
 * posted to a worker thread that works for X ms (standing in for the model call) and answers, against
 * the same X ms of work done on the caller's own thread followed by one `setImmediate` (what a direct
 * onnxruntime-node `session.run` does). The difference is the price of keeping onnxruntime off the
 * caller's event loop, and it grows with X: a thread that has slept for milliseconds wakes slower.
 *
 *   npx tsx bench/worker-hop.ts [--rounds 20] [--per-round 20] [--busy 0,0.5,2,8]
 */
import { Worker } from 'node:worker_threads'
import { argNumber, argValue, printHeader } from './lib/env.js'
import { median, quantile, fmt } from './lib/stats.js'
import { markdownTable } from './lib/table.js'

const ROUNDS = argNumber('rounds', 20)
const PER_ROUND = argNumber('per-round', 20)
const BUSY_MS = (argValue('busy') ?? '0,0.5,2,8').split(',').map(Number)
if (BUSY_MS.some(ms => !Number.isFinite(ms) || ms < 0)) throw new Error('--busy expects non-negative milliseconds separated by commas')

/** Spins for `ms` (the stand-in for a model call, which keeps its thread busy the same way). */
function busyFor (ms: number): void {
  const end = performance.now() + ms
  while (performance.now() < end) { /* working */ }
}

// The worker answers each request after `busy` ms; with a shared flag it also wakes a blocked caller.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads')
const flag = workerData.flag
parentPort.on('message', ({ busy, sync }) => {
  const end = performance.now() + busy
  while (performance.now() < end) {}
  parentPort.postMessage(1)
  if (sync) { Atomics.store(flag, 0, 1); Atomics.notify(flag, 0) }
})`

interface Contender {
  name: string
  /** One call with `busy` ms of work; resolves once the caller has the answer. */
  run: (busy: number) => Promise<void>
}

const flag = new Int32Array(new SharedArrayBuffer(4))
const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { flag } })

const contenders: Contender[] = [
  {
    name: 'same thread: work, then one setImmediate (a direct session.run)',
    run: async busy => {
      await new Promise<void>(resolve => {
        setImmediate(() => {
          busyFor(busy)
          resolve()
        })
      })
    }
  },
  {
    name: 'worker, caller awaits its message (processAsync)',
    run: async busy => {
      await new Promise(resolve => {
        worker.once('message', resolve)
        worker.postMessage({ busy, sync: false })
      })
    }
  },
  {
    name: 'worker, caller blocked in Atomics.wait (process())',
    run: async busy => {
      Atomics.store(flag, 0, 0)
      const answered = new Promise(resolve => worker.once('message', resolve))
      worker.postMessage({ busy, sync: true })
      Atomics.wait(flag, 0, 0)
      await answered
    }
  }
]

printHeader('Thread hop to a worker', import.meta.url, [
  `${ROUNDS} rounds x ${PER_ROUND} calls per contender and work length, contenders in turn within each round`,
  'overhead = time per call less the work itself; no model and no engine code involved'
])

const samples = new Map<string, number[]>()
for (let round = 0; round < ROUNDS; round++) {
  for (const busy of BUSY_MS) {
    for (const c of contenders) {
      const key = `${busy}\u0000${c.name}`
      const list = samples.get(key) ?? []
      samples.set(key, list)
      await c.run(busy) // unmeasured: the first call after a switch wakes whatever slept
      for (let i = 0; i < PER_ROUND; i++) {
        const started = performance.now()
        await c.run(busy)
        list.push((performance.now() - started - busy) * 1000)
      }
    }
  }
}
await worker.terminate()

const rows = BUSY_MS.flatMap(busy => {
  const base = median(samples.get(`${busy}\u0000${contenders[0].name}`) ?? [])
  return contenders.map(c => {
    const list = samples.get(`${busy}\u0000${c.name}`) ?? []
    return [`${busy} ms`, c.name, fmt(median(list)), `${fmt(quantile(list, 0.1))}–${fmt(quantile(list, 0.9))}`, fmt(median(list) - base)]
  })
})
console.log(markdownTable(['work per call', 'contender', 'overhead µs (median)', 'p10–p90 µs', 'extra over same thread µs'], rows))
