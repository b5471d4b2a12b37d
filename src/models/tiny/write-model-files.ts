/**
 * Writes a model folder the way transformers.js reads it. Each file goes to a temporary name first and
 * is renamed into place, so a reader never sees half a model file and a crashed build leaves no
 * truncated `model.onnx` behind that a later run would trust.
 */
import { mkdir, rename, rm, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'

let tempCounter = 0

/** File contents: bytes, text, or a JSON value (written with 2-space indentation and a final newline). */
export type ModelFileContent = Uint8Array | string | object

/**
 * Writes `files` (paths relative to `dir`, `/`-separated) under `dir`, creating folders as needed.
 * @returns the relative paths written, sorted.
 */
export async function writeModelFiles (dir: string, files: Record<string, ModelFileContent>): Promise<string[]> {
  await mkdir(dir, { recursive: true })
  const names = Object.keys(files).sort()
  for (const name of names) {
    const target = join(dir, ...name.split('/'))
    await mkdir(dirname(target), { recursive: true })
    const content = files[name]
    const data = content instanceof Uint8Array || typeof content === 'string'
      ? content
      : `${JSON.stringify(content, null, 2)}\n`
    // Unique per call so that two builds into the same folder never share a temporary file.
    const temp = `${target}.${process.pid}-${tempCounter++}.tmp`
    try {
      await writeFile(temp, data)
      await rename(temp, target)
    } catch (error) {
      await rm(temp, { force: true })
      throw error
    }
  }
  return names
}
