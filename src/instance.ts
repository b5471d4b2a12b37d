/**
 * `initialize()` and `getInstance()`, the seed's utility functions. The process-wide instance is the
 * one piece of module state in the package, on purpose: it is what `getInstance()` promises.
 */
import { IpfsAccelerate } from './accelerator.js'
import type { ResourcesInit, Metadata } from './config/schema.js'

let instance: IpfsAccelerate | undefined

/** A new instance with default settings (or the given ones). */
export function initialize (resources?: ResourcesInit | null, metadata?: Metadata | null): IpfsAccelerate {
  return new IpfsAccelerate(resources, metadata)
}

/**
 * The process-wide instance, created on first call; the same object on every call until it is reset
 * or stopped (after `stop()`, the next call makes a new one rather than hand out a dead instance).
 */
export function getInstance (): IpfsAccelerate {
  if (instance === undefined || instance.isStopped) instance = new IpfsAccelerate()
  return instance
}

/** Stops and forgets the process-wide instance (the next getInstance() makes a new one). */
export async function resetInstance (): Promise<void> {
  const current = instance
  instance = undefined
  await current?.stop()
}
