/** The hashing baseline the content benchmarks compare against. */
import { createHash } from 'node:crypto'
import { open } from 'node:fs/promises'

const MiB = 1024 * 1024

/** sha-256 (hex) of a file read in 1 MiB pieces into two reused buffers, the next read issued before hashing. */
export async function sha256File (file: string): Promise<string> {
  const hash = createHash('sha256')
  const handle = await open(file, 'r')
  try {
    const buffers = [Buffer.allocUnsafe(MiB), Buffer.allocUnsafe(MiB)]
    let position = 0
    let i = 0
    let pending = handle.read(buffers[0], 0, MiB, 0)
    while (true) {
      const { bytesRead } = await pending
      if (bytesRead === 0) break
      const current = buffers[i]
      position += bytesRead
      i ^= 1
      pending = handle.read(buffers[i], 0, MiB, position)
      hash.update(current.subarray(0, bytesRead))
    }
  } finally {
    await handle.close()
  }
  return hash.digest('hex')
}
