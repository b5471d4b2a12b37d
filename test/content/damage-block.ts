/** Test helper: damages a stored block on disk, as a failing disk or a stray write would. */
import assert from 'node:assert/strict'
import { open } from 'node:fs/promises'
import type { CID } from 'multiformats/cid'

interface Locates {
  where: (cid: CID) => Promise<{ file: string, offset: number, length: number } | undefined>
}

/** Flips one byte in the middle of the stored block `cid`. */
export async function damageBlock (blockstore: Locates, cid: CID): Promise<void> {
  const where = await blockstore.where(cid)
  assert.ok(where !== undefined, `${cid.toString()} is not stored`)
  const handle = await open(where.file, 'r+')
  try {
    const at = where.offset + (where.length >> 1)
    const one = Buffer.alloc(1)
    await handle.read(one, 0, 1, at)
    one[0] ^= 0xff
    await handle.write(one, 0, 1, at)
  } finally {
    await handle.close()
  }
}
