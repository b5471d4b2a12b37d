/**
 * A CAR v1 byte stream of blocks, for uploads (Kubo's `dag/import`). The blocks are pulled only as fast
 * as the bytes are read (CarWriter waits for its reader), and a reader that stops early stops the walk
 * too: nothing is buffered beyond a block or two, whatever the DAG's size.
 */
import type { CID } from 'multiformats/cid'
import type { DagBlock } from './unixfs-reader.js'

/** The CAR of `root` with `blocks(signal)` in it; `signal` fires when the reader stops early. */
export async function * carBytes (root: CID, blocks: (signal: AbortSignal) => AsyncIterable<DagBlock>): AsyncGenerator<Uint8Array> {
  const { CarWriter } = await import('@ipld/car/writer')
  const { writer, out } = CarWriter.create([root])
  const stop = new AbortController()
  const stopped = new Promise<'stopped'>(resolve => { stop.signal.addEventListener('abort', () => resolve('stopped'), { once: true }) })
  let failed: { err: unknown } | undefined
  const pump = (async () => {
    try {
      for await (const block of blocks(stop.signal)) {
        if (await Promise.race([writer.put(block), stopped]) === 'stopped') return
      }
    } catch (err) {
      failed = { err }
    } finally {
      await writer.close()
    }
  })()
  try {
    yield * out
    await pump
    if (failed !== undefined) throw failed.err
  } finally {
    stop.abort()
  }
}
