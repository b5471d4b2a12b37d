import assert from 'node:assert/strict'
import type { Worker } from 'node:worker_threads'
import type { IpfsAccelerate } from '../../src/index.js'

/** The engine's worker thread: reached through private fields, only to watch it exit or make it die as a crash would. */
export function workerOf (acc: IpfsAccelerate): Worker {
  const engine = (acc as unknown as { engineInstance?: { worker: Worker } }).engineInstance
  assert.ok(engine !== undefined, 'the engine has started')
  return engine.worker
}
