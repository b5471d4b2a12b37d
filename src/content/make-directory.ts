/**
 * `fs.mkdir(dir, { recursive: true })` without its endless loop. On Node 20 a recursive mkdir retries
 * for ever, at 100% CPU, when creating a level answers ENOENT although its parent exists: procfs does
 * that for any new folder (`/proc/x/y`), so a user's path under /proc hung the process instead of
 * failing. Here each missing level is created with a plain mkdir, and is tried again at most once, after
 * its parent has been made: a second ENOENT is thrown.
 */
import { mkdirSync, statSync } from 'node:fs'
import fs from 'node:fs/promises'
import path from 'node:path'

/** Errno codes that say a path given as a destination is unusable (not that the disk failed or a transfer broke). */
export const PATH_ERRORS: ReadonlySet<string> = new Set(['ENOENT', 'ENOTDIR', 'EEXIST', 'EISDIR', 'EACCES', 'EPERM', 'EROFS', 'ENAMETOOLONG', 'ELOOP', 'EINVAL'])

function code (err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException)?.code
}

/**
 * Creates `dir` and any missing folders above it. Same contract as `fs.mkdir(dir, { recursive: true })`:
 * resolves to the first (outermost) folder it created, or undefined when `dir` already was a folder;
 * rejects with the mkdir errno error (EEXIST for a file at `dir`, ENOTDIR for a file above it, EACCES,
 * ENOENT for a level that cannot be created although its parent exists, ...).
 */
export async function makeDirectory (dir: string): Promise<string | undefined> {
  try {
    await fs.mkdir(dir)
    return dir
  } catch (err) {
    if (code(err) === 'EEXIST') return await existingFolder(dir, err)
    const parent = path.dirname(dir)
    if (code(err) !== 'ENOENT' || parent === dir) throw err
    const first = await makeDirectory(parent)
    try {
      await fs.mkdir(dir)
      return first ?? dir
    } catch (again) {
      // made meanwhile by someone else: as good as ours
      if (code(again) === 'EEXIST') return await existingFolder(dir, again).then(() => first)
      throw again
    }
  }
}

/** undefined when `dir` is a folder (a link to one included), else `err` (its EEXIST) is thrown. */
async function existingFolder (dir: string, err: unknown): Promise<undefined> {
  if (!(await fs.stat(dir).then(s => s.isDirectory(), () => false))) throw err
  return undefined
}

/** makeDirectory, synchronously (for what must be ready before a constructor returns: the log file's folder). */
export function makeDirectorySync (dir: string): string | undefined {
  try {
    mkdirSync(dir)
    return dir
  } catch (err) {
    if (code(err) === 'EEXIST') {
      if (!statSync(dir, { throwIfNoEntry: false })?.isDirectory()) throw err
      return undefined
    }
    const parent = path.dirname(dir)
    if (code(err) !== 'ENOENT' || parent === dir) throw err
    const first = makeDirectorySync(parent)
    try {
      mkdirSync(dir)
    } catch (again) {
      if (code(again) !== 'EEXIST' || statSync(dir, { throwIfNoEntry: false })?.isDirectory() !== true) throw again
    }
    return first ?? dir
  }
}
