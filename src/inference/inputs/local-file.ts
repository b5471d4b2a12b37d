/**
 * Reading a file an input names by path (an image, a WAV file). Only a regular file is read, and never
 * more than a bound: a device such as /dev/zero reports size 0 and never ends (memory grew without
 * bound), and opening a FIFO for reading blocks a thread-pool thread until a writer comes, which can be
 * never (the call never settled, and stop() waited for it for ever).
 */
import { constants, type Stats } from 'node:fs'
import { open, stat, type FileHandle } from 'node:fs/promises'

/** What a path names, for the error, when it is not a regular file. */
function kind (info: Stats): string {
  if (info.isDirectory()) return 'a folder'
  if (info.isFIFO()) return 'a FIFO (named pipe)'
  if (info.isCharacterDevice() || info.isBlockDevice()) return 'a device'
  if (info.isSocket()) return 'a socket'
  return 'a special file'
}

/** Opening a FIFO without it returns at once instead of waiting for a writer; a regular file ignores it (absent on Windows). */
const NO_WAIT = constants.O_NONBLOCK ?? 0

/**
 * The bytes of the regular file at `path` (links followed), at most `maxBytes`; otherwise an Error
 * saying why (the caller turns it into a ValidationError on its field). `tooLarge` makes the error for a
 * file over the bound, given the size seen so far.
 */
export async function readLocalFile (path: string, maxBytes: number, tooLarge: (size: number) => Error): Promise<Uint8Array> {
  // Checked before opening: opening a FIFO blocks, and opening a device can have effects of its own.
  const info = await stat(path)
  if (!info.isFile()) throw new Error(`it is ${kind(info)}, not a regular file`)
  if (info.size > maxBytes) throw tooLarge(info.size)
  let handle: FileHandle | undefined
  try {
    handle = await open(path, constants.O_RDONLY | NO_WAIT)
    // The path may have been swapped for something else since the stat: check what was opened.
    const opened = await handle.stat()
    if (!opened.isFile()) throw new Error(`it is ${kind(opened)}, not a regular file`)
    // The size is only a hint: the file may grow while it is read (a /proc file says 0), so read to its
    // end, one byte past the bound at most, which tells a file over the bound from one exactly at it.
    let buffer = Buffer.allocUnsafe(Math.min(opened.size, maxBytes) + 1)
    let length = 0
    for (;;) {
      if (length === buffer.length) {
        if (length > maxBytes) throw tooLarge(length)
        const grown = Buffer.allocUnsafe(Math.min(buffer.length * 2, maxBytes + 1))
        buffer.copy(grown)
        buffer = grown
      }
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length)
      if (bytesRead === 0) return buffer.subarray(0, length)
      length += bytesRead
    }
  } finally {
    await handle?.close()
  }
}
