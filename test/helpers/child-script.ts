import { spawnSync, type SpawnSyncReturns } from 'node:child_process'
import { fileURLToPath } from 'node:url'

/** How long a child script may run: a case that would hang (in the thread pool, or blocking the thread) fails here. */
const CHILD_TIMEOUT_MS = 60_000

/**
 * Runs an ES module script (importing './src/index.ts') in a child Node process from the repository root,
 * killed after a minute. For cases that hang without a fix: node:test's timeout cannot stop work stuck in
 * the libuv thread pool or a synchronous loop, and such a process may not even exit.
 */
export function runChildScript (script: string, env: Record<string, string>): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: fileURLToPath(new URL('../..', import.meta.url)),
    encoding: 'utf8',
    timeout: CHILD_TIMEOUT_MS,
    killSignal: 'SIGKILL',
    env: { ...process.env, ...env }
  })
}
