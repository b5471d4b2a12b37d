/**
 * The benchmark's side of bench/lib/gateway-server-child.ts: spawns `node --import tsx` on it (its own
 * HeliaStore and HTTP server, "process A") and sends it requests. `close()` asks it to stop and delete
 * its repository, and kills it if it has not exited within a few seconds; the child also stops by itself
 * when our end of its stdin closes (this process exiting or dying). On SIGINT/SIGTERM the children are
 * killed and the functions given to `onInterrupt` run before this process dies of the signal.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { createInterface } from 'node:readline'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = path.resolve(fileURLToPath(new URL('../..', import.meta.url)))
const CHILD = path.join(ROOT, 'bench', 'lib', 'gateway-server-child.ts')

export interface ServerProcess {
  readonly pid: number
  /** Sends one request; resolves with the child's answer (without id/ok), rejects with its error. */
  request: <T = Record<string, unknown>>(op: string, args?: Record<string, unknown>) => Promise<T>
  /** Stops the child (gracefully, then SIGKILL after `graceMs`). Safe to call twice. */
  close: (graceMs?: number) => Promise<void>
}

const live = new Map<ChildProcessWithoutNullStreams, Promise<void>>()
const cleanups: Array<() => void> = []
let hooked = false

/**
 * Runs `fn` (synchronous, e.g. deleting the benchmark's folders) if the benchmark is interrupted
 * (SIGINT/SIGTERM), after its server processes have been killed and have exited. Normal and failing
 * runs clean up in their own `finally`.
 */
export function onInterrupt (fn: () => void): void {
  hookSignals()
  cleanups.push(fn)
}

/** On Ctrl-C / kill of the benchmark: kill the children, wait for them, clean up, then die of the signal. */
function hookSignals (): void {
  if (hooked) return
  hooked = true
  process.once('exit', () => { for (const child of live.keys()) child.kill('SIGKILL') })
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      void (async () => {
        for (const child of live.keys()) child.kill('SIGKILL')
        await Promise.race([Promise.all(live.values()), new Promise(resolve => setTimeout(resolve, 3000))])
        for (const fn of cleanups) {
          try { fn() } catch { /* best effort */ }
        }
        process.kill(process.pid, signal)
      })()
    })
  }
}

export async function startServerProcess (): Promise<ServerProcess> {
  hookSignals()
  const env = { ...process.env }
  delete env.NODE_OPTIONS
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD], { cwd: ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] })
  child.stdin.on('error', () => {}) // EPIPE once the child is gone: the 'exit' handler reports it
  let stderr = ''
  child.stderr.on('data', (chunk: Buffer) => { stderr = (stderr + chunk.toString()).slice(-8000) })
  const pending = new Map<number, { resolve: (v: Record<string, unknown>) => void, reject: (e: Error) => void }>()
  let exited: { code: number | null, signal: NodeJS.Signals | null } | undefined
  const done = new Promise<void>(resolve => {
    child.on('exit', (code, signal) => {
      exited = { code, signal }
      for (const p of pending.values()) p.reject(new Error(`server process exited (${code ?? signal}) before answering\n${stderr}`))
      pending.clear()
      resolve()
    })
  })
  live.set(child, done)
  void done.then(() => live.delete(child))
  child.on('error', err => {
    for (const p of pending.values()) p.reject(err)
    pending.clear()
  })
  createInterface({ input: child.stdout }).on('line', line => {
    let answer: { id: number, ok: boolean, error?: string } & Record<string, unknown>
    try {
      answer = JSON.parse(line)
    } catch {
      return // not ours
    }
    const p = pending.get(answer.id)
    if (p === undefined) return
    pending.delete(answer.id)
    if (answer.ok) {
      const { id: _id, ok: _ok, ...rest } = answer
      p.resolve(rest)
    } else {
      p.reject(new Error(`server process: ${answer.error ?? 'failed'}`))
    }
  })
  let next = 1
  const request = async <T>(op: string, args: Record<string, unknown> = {}): Promise<T> => {
    if (exited !== undefined) throw new Error(`server process already exited (${exited.code ?? exited.signal})\n${stderr}`)
    const id = next++
    const answer = new Promise<Record<string, unknown>>((resolve, reject) => pending.set(id, { resolve, reject }))
    child.stdin.write(JSON.stringify({ id, op, ...args }) + '\n')
    return await answer as T
  }
  let closing: Promise<void> | undefined
  const close = async (graceMs = 5000): Promise<void> => {
    closing ??= (async () => {
      if (exited === undefined) {
        child.stdin.end() // the child closes its store and server, deletes its repository, exits
        const timer = setTimeout(() => { if (exited === undefined) child.kill('SIGKILL') }, graceMs)
        await done
        clearTimeout(timer)
      }
    })()
    await closing
  }
  return { pid: child.pid as number, request, close }
}
