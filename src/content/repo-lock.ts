/**
 * One HeliaStore per repository at a time (across processes too): the pack layout appends to a shared
 * file and the datastore journal is read once at open, so two writers would corrupt or miss each other's
 * data. `<repo>/repo.lock` names its owner: JSON `{ pid, start, boot, host, token }`, where `start` is the
 * process's start time (field 22 of /proc/<pid>/stat, clock ticks since boot) and `boot` the kernel's
 * boot id (Linux; absent elsewhere). A pid alone is not an identity: pids are reused (after a reboot, in
 * a container where every run is pid 1), so a lock is taken over when its process is gone, or when the
 * process now running under that pid is another one (its start time or boot id differ). Where /proc is
 * missing, a running pid counts as the owner. A lock naming this very process is live only if this
 * process holds it now (kept in memory), whatever the platform: otherwise it is a leftover of an earlier
 * process that had the same pid. The lock file is created with its content in one step (a hard link of
 * a written temporary file), so nobody ever reads it empty. `host` is recorded for people reading the file only: a
 * container gets a new host name on every start, and a repository shared between machines (a network
 * file system) is not supported, since only local processes can be checked.
 *
 * A lock in the older format (`<pid> <token>`, no start time) is taken over when its pid is not running,
 * is this process (and not held by it), or runs another program than this one
 * (/proc/<pid>/comm differs: pid 1 of a machine is init, not node).
 */
import { readFileSync } from 'node:fs'
import fs from 'node:fs/promises'
import { hostname } from 'node:os'
import path from 'node:path'
import { ValidationError } from '../errors.js'
import { makeDirectory } from './make-directory.js'

export const LOCK_FILE = 'repo.lock'

/** Whether a process with this id is running (EPERM: it runs, as another user). */
export function processAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** What tells one process from a later one with the same pid (Linux), or undefined where /proc cannot say. */
export interface ProcessIdentity {
  /** Start time, clock ticks after boot. */
  start: string
  /** Kernel boot id. */
  boot: string
}

function readProc (file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8')
  } catch {
    return undefined
  }
}

/** The identity of the running process `pid` (Linux /proc), or undefined when it cannot be read. */
export function processIdentity (pid: number): ProcessIdentity | undefined {
  const stat = readProc(`/proc/${pid}/stat`)
  const boot = readProc('/proc/sys/kernel/random/boot_id')?.trim()
  if (stat === undefined || boot === undefined) return undefined
  // fields after the command name, which is in parentheses and may itself hold spaces and parentheses
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  const start = fields[19] // field 22 overall: fields[0] is field 3
  return start !== undefined && /^\d+$/.test(start) ? { start, boot } : undefined
}

interface LockRecord {
  pid: number
  start?: string
  boot?: string
  host?: string
  token?: string
}

function parseLock (text: string): LockRecord | undefined {
  try {
    const value = JSON.parse(text) as Partial<LockRecord>
    if (value !== null && typeof value === 'object' && Number.isInteger(value.pid)) return value as LockRecord
  } catch {
    // the older format
  }
  const pid = Number.parseInt(text.split(' ')[0] ?? '', 10)
  return Number.isInteger(pid) && pid > 0 ? { pid } : undefined
}

/** The lock files' contents this process holds now (one per repository it has open). */
const heldHere = new Set<string>()

/** Whether the lock's owner may still be running (so the lock must be respected). */
function ownerLive (lock: LockRecord, text: string): boolean {
  // Our own pid: we know exactly which locks we hold; any other naming us is a leftover of an earlier
  // process that had our pid (a container's pid 1), on every platform.
  if (lock.pid === process.pid) return heldHere.has(text)
  if (!processAlive(lock.pid)) return false
  const now = processIdentity(lock.pid)
  if (lock.start !== undefined) {
    // the same pid but another process (reused pid, a later boot) is not the owner
    return now === undefined || (now.start === lock.start && now.boot === lock.boot)
  }
  // older format: no start time recorded
  const comm = readProc(`/proc/${lock.pid}/comm`)
  const ours = readProc('/proc/self/comm')
  return comm === undefined || ours === undefined || comm === ours
}

/** Takes the repository's lock; resolves to its release. ValidationError when another store holds it. */
export async function lockRepo (repo: string): Promise<() => Promise<void>> {
  try {
    await makeDirectory(repo)
  } catch (cause) {
    // A file where the folder should be (or above it), no permission: the user's setting, not a crash.
    const code = (cause as NodeJS.ErrnoException).code ?? ''
    throw ValidationError.field('ipfs.repo', `cannot use ${repo} as the IPFS repository: ${code === 'EEXIST' || code === 'ENOTDIR' ? 'it (or a folder above it) is a file' : (cause as Error).message}`, { file: repo })
  }
  const file = path.join(repo, LOCK_FILE)
  const identity = processIdentity(process.pid)
  const token = JSON.stringify({
    pid: process.pid,
    ...(identity === undefined ? {} : { start: identity.start, boot: identity.boot }),
    host: hostname(),
    token: `${Date.now()}-${Math.random().toString(36).slice(2)}`
  }) + '\n'
  for (let attempt = 0; attempt < 3; attempt++) {
    if (await createWithContent(file, token)) {
      heldHere.add(token)
      return async () => {
        heldHere.delete(token)
        const current = await fs.readFile(file, 'utf8').catch(() => '')
        if (current === token) await fs.rm(file, { force: true })
      }
    }
    const holder = await fs.readFile(file, 'utf8').catch(() => '')
    const lock = parseLock(holder)
    if (lock !== undefined && ownerLive(lock, holder)) {
      const who = lock.pid === process.pid ? 'another HeliaStore in this process' : `process ${lock.pid}`
      throw ValidationError.field('ipfs.repo', `repository ${repo} is in use by ${who} (stop it first, or use another repo; if it is not running, delete ${file})`, { file, pid: lock.pid })
    }
    // stale: its process is gone. Remove it only if it is still the lock judged stale (not one just taken).
    const again = await fs.readFile(file, 'utf8').catch(() => '')
    if (again === holder) await fs.rm(file, { force: true })
  }
  throw ValidationError.field('ipfs.repo', `could not lock repository ${repo}`, { file })
}

/**
 * Creates `file` holding `content`, or returns false when it exists. The content is written to a
 * temporary file first and hard-linked into place, so no other process ever reads the lock empty (an
 * empty lock would look stale and be removed); where hard links are not supported, `wx` is used.
 */
async function createWithContent (file: string, content: string): Promise<boolean> {
  const temp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`
  await fs.writeFile(temp, content)
  try {
    await fs.link(temp, file)
    return true
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'EEXIST') return false
    try {
      await fs.writeFile(file, content, { flag: 'wx' })
      return true
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false
      throw e
    }
  } finally {
    await fs.rm(temp, { force: true })
  }
}
