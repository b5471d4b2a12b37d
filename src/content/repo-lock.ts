/**
 * One HeliaStore per repository at a time (across processes too): the pack layout appends to a shared
 * file and the datastore journal is read once at open, so two writers would corrupt or miss each other's
 * data. `<repo>/repo.lock` holds the owner's pid; a lock whose process is gone is taken over.
 */
import fs from 'node:fs/promises'
import path from 'node:path'
import { ValidationError } from '../errors.js'

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

/** Takes the repository's lock; resolves to its release. ValidationError when another store holds it. */
export async function lockRepo (repo: string): Promise<() => Promise<void>> {
  await fs.mkdir(repo, { recursive: true })
  const file = path.join(repo, LOCK_FILE)
  const token = `${process.pid} ${Date.now()}-${Math.random().toString(36).slice(2)}`
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      await fs.writeFile(file, token, { flag: 'wx' })
      return async () => {
        const current = await fs.readFile(file, 'utf8').catch(() => '')
        if (current === token) await fs.rm(file, { force: true })
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    }
    const holder = await fs.readFile(file, 'utf8').catch(() => '')
    const pid = Number.parseInt(holder.split(' ')[0] ?? '', 10)
    if (Number.isInteger(pid) && pid > 0 && processAlive(pid)) {
      const who = pid === process.pid ? 'another HeliaStore in this process' : `process ${pid}`
      throw ValidationError.field('ipfs.repo', `repository ${repo} is in use by ${who} (stop it first, or use another repo)`, { file, pid })
    }
    await fs.rm(file, { force: true }) // stale: its process is gone
  }
  throw ValidationError.field('ipfs.repo', `could not lock repository ${repo}`, { file })
}
