/**
 * `Promise.withResolvers` for Node 20: helia, libp2p, it-queue and mortice call it, and it only
 * arrived in Node 22. Import this module (for its effect) before any dynamic `import('helia')`.
 * It installs nothing when the runtime already has it.
 */

interface Resolvers<T> {
  promise: Promise<T>
  resolve: (value: T | PromiseLike<T>) => void
  reject: (reason?: unknown) => void
}

/** Installs the polyfill if needed; returns true when it had to. Safe to call any number of times. */
export function installPromiseWithResolvers (): boolean {
  const P = Promise as unknown as { withResolvers?: <T>() => Resolvers<T> }
  if (typeof P.withResolvers === 'function') return false
  Object.defineProperty(Promise, 'withResolvers', {
    configurable: true,
    writable: true,
    value: function withResolvers<T> (): Resolvers<T> {
      let resolve!: Resolvers<T>['resolve']
      let reject!: Resolvers<T>['reject']
      const promise = new Promise<T>((res, rej) => { resolve = res; reject = rej })
      return { promise, resolve, reject }
    }
  })
  return true
}
