/**
 * Writes a model folder the way transformers.js reads it. The whole folder is written into a temporary
 * sibling (`.<name>.tmp-…`) and renamed into place at the end, so a reader never sees half a model and
 * a build that fails (a full disk, a crash) leaves nothing behind that a later run would trust.
 *
 * The target must be new, an empty folder, or the same tiny model already (its `config.json` equal to
 * the one being written, so the same family and options, and no files the build would not write): that
 * one is replaced, so re-running a build is harmless. Anything else is refused, rather than mixing a
 * tiny model into someone's folder.
 */
import { lstat, mkdtemp, readdir, readFile, rename, rm, rmdir, writeFile } from 'node:fs/promises'
import { basename, dirname, join, relative, resolve, sep } from 'node:path'
import { ValidationError } from '../../errors.js'
import { PATH_ERRORS, makeDirectory } from '../../content/make-directory.js'

/** File contents: bytes, text, or a JSON value (written with 2-space indentation and a final newline). */
export type ModelFileContent = Uint8Array | string | object

function serialise (content: ModelFileContent): Uint8Array | string {
  return content instanceof Uint8Array || typeof content === 'string' ? content : `${JSON.stringify(content, null, 2)}\n`
}

function code (err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException)?.code
}

function badTarget (dir: string, message: string, cause?: unknown): ValidationError {
  return new ValidationError(`dir: ${dir} ${message}`, [{ path: 'dir', message }], { cause, context: { field: 'dir', file: dir } })
}

/** Creating `dir`'s parent or the temporary folder beside `dir` failed: a ValidationError on dir for a path that cannot be used, else `err`. */
function destinationError (dir: string, err: unknown): unknown {
  if (code(err) === 'EEXIST' || code(err) === 'ENOTDIR') return badTarget(dir, 'is inside a file, not a folder', err)
  if (!PATH_ERRORS.has(code(err) ?? '')) return err
  return badTarget(dir, `cannot be created: ${(err as Error).message}`, err)
}

/** Files under `dir`, relative and `/`-separated (folders left out). */
async function filesUnder (dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true })
  return entries.filter(e => !e.isDirectory()).map(e => relative(dir, join(e.parentPath, e.name)).split(sep).join('/'))
}

/** True when `dir` holds the very model being written: the same config.json, and no file the build would not write. */
async function isSameModel (dir: string, names: readonly string[], config: Uint8Array | string | undefined): Promise<boolean> {
  if (config === undefined) return false
  try {
    const existing = await readFile(join(dir, 'config.json'))
    if (!existing.equals(Buffer.from(config))) return false
    return (await filesUnder(dir)).every(f => names.includes(f))
  } catch {
    return false
  }
}

/**
 * What is at `dir` now: nothing (or an empty folder: it is replaced), the same model (replaced), or
 * something to refuse with a ValidationError.
 */
async function inspectTarget (dir: string, names: readonly string[], config: Uint8Array | string | undefined): Promise<'new' | 'same'> {
  let info
  try {
    info = await lstat(dir)
  } catch (err) {
    if (code(err) === 'ENOENT') return 'new'
    if (code(err) === 'ENOTDIR') throw badTarget(dir, 'is inside a file, not a folder', err)
    throw err
  }
  if (info.isSymbolicLink()) throw badTarget(dir, 'is a symbolic link; give the folder it points to')
  if (!info.isDirectory()) throw badTarget(dir, 'exists and is not a folder')
  if ((await readdir(dir)).length === 0) return 'new'
  if (await isSameModel(dir, names, config)) return 'same'
  throw badTarget(dir, 'is not empty (and is not this tiny model with the same family and options); give a new or empty folder')
}

/**
 * Writes `files` (paths relative to `dir`, `/`-separated) as the folder `dir`, creating its parent as
 * needed. On failure nothing is left: neither a partial `dir` nor the parent folders this call created.
 * @returns the relative paths written, sorted.
 * @throws ValidationError when `dir` is a file, a symbolic link, or a non-empty folder other than this model.
 */
export async function writeModelFiles (dir: string, files: Record<string, ModelFileContent>): Promise<string[]> {
  const names = Object.keys(files).sort()
  const config = files['config.json'] === undefined ? undefined : serialise(files['config.json'])
  await inspectTarget(dir, names, config)
  const parent = dirname(resolve(dir))
  let created: string | undefined
  try {
    created = await makeDirectory(parent)
  } catch (err) {
    throw destinationError(dir, err)
  }
  let staging: string | undefined
  try {
    staging = await mkdtemp(join(parent, `.${basename(dir)}.tmp-`)).catch((err: unknown) => { throw destinationError(dir, err) })
    for (const name of names) {
      const target = join(staging, ...name.split('/'))
      await makeDirectory(dirname(target))
      await writeFile(target, serialise(files[name]))
    }
    await moveIntoPlace(staging, dir, names, config)
    return names
  } catch (error) {
    if (staging !== undefined) await rm(staging, { recursive: true, force: true })
    // Parent folders this call made, innermost first; rmdir stops at one another build is using.
    for (let d = parent; created !== undefined && d.length >= created.length; d = dirname(d)) {
      if (await rmdir(d).then(() => false, () => true)) break
    }
    throw error
  }
}

/** Renames the finished `staging` folder to `dir`, replacing an empty folder or the same model. */
async function moveIntoPlace (staging: string, dir: string, names: readonly string[], config: Uint8Array | string | undefined): Promise<void> {
  // Checked again: the folder may have changed while the files were written.
  if (await inspectTarget(dir, names, config) === 'same') {
    const old = `${staging}-old`
    await rename(dir, old)
    try {
      await rename(staging, dir)
    } catch (err) {
      await rename(old, dir).catch(() => {})
      throw err
    }
    await rm(old, { recursive: true, force: true })
    return
  }
  try {
    await rename(staging, dir)
  } catch (err) {
    // A concurrent build of the same model got there first: its folder is as good as this one.
    if ((code(err) === 'ENOTEMPTY' || code(err) === 'EEXIST') && await isSameModel(dir, names, config)) {
      await rm(staging, { recursive: true, force: true })
      return
    }
    if (code(err) === 'ENOTEMPTY' || code(err) === 'EEXIST') throw badTarget(dir, 'was filled by something else while the model was written', err)
    throw err
  }
}
