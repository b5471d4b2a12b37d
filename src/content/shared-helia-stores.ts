/**
 * Embedded stores shared within one process. A repository may be open in one HeliaStore at a time
 * (see repo-lock.ts), yet the seed's own examples make a new `IpfsAccelerate({}, {})` per call, all on the
 * default repository. So instances in one process share the store of a repository, counted by
 * reference: the last one to release it stops it. This registry is process-wide by design.
 */
import { HeliaStore, type HeliaStoreInit } from './helia-store.js'

interface Shared {
  store: HeliaStore
  users: number
  starting: Promise<void>
}

const shared = new Map<string, Shared>()

export interface HeliaStoreLease {
  store: HeliaStore
  /** Gives the store back; the last lease stops it. */
  release: () => Promise<void>
}

/** A started store for `init.repo`, shared with every other lease on the same folder in this process. */
export async function leaseHeliaStore (init: HeliaStoreInit): Promise<HeliaStoreLease> {
  const candidate = new HeliaStore(init)
  let entry = shared.get(candidate.repo)
  if (entry === undefined) {
    entry = { store: candidate, users: 0, starting: candidate.start() }
    shared.set(candidate.repo, entry)
  }
  entry.users++
  const current = entry
  try {
    await current.starting
  } catch (err) {
    current.users--
    if (shared.get(current.store.repo) === current) shared.delete(current.store.repo)
    throw err
  }
  let released = false
  return {
    store: current.store,
    release: async () => {
      if (released) return
      released = true
      current.users--
      if (current.users === 0 && shared.get(current.store.repo) === current) {
        shared.delete(current.store.repo)
        await current.store.stop()
      }
    }
  }
}
