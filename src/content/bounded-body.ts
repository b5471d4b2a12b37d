/**
 * Reading HTTP bodies from servers that are not trusted (a gateway, an image URL in a request): a body is
 * refused past the most it can sensibly hold (for a gateway, the largest block there can be: a hostile or
 * broken one could send gigabytes for one CID), and the body of an answer we do not use (a 404, a 500) is
 * read only a little, for the connection's sake, then dropped.
 */
import { ContentVerificationError } from '../errors.js'

/** Kubo's largest block (bitswap's limit). */
export const MAX_BLOCK_BYTES = 2 * 1024 * 1024
/** What is read of an unused body before the connection is given up instead. */
const DISCARD_BYTES = 64 * 1024

/**
 * The whole body, or, as soon as it is known to exceed `max` bytes (declared or read), the error
 * `tooLarge` makes (by default a ContentVerificationError naming `what`); the rest is not read.
 */
export async function boundedBody (res: Response, max: number, what: string, tooLarge: (size: number) => Error = size => blockTooLarge(size, max, what)): Promise<Uint8Array> {
  const declared = Number(res.headers.get('content-length') ?? Number.NaN)
  if (declared > max) {
    await res.body?.cancel().catch(() => {})
    throw tooLarge(declared)
  }
  const chunks: Uint8Array[] = []
  let total = 0
  if (res.body === null) return new Uint8Array(0)
  const reader = res.body.getReader()
  try {
    while (true) {
      const { done, value } = await reader.read()
      if (done) break
      total += value.byteLength
      if (total > max) throw tooLarge(total)
      chunks.push(value)
    }
  } catch (err) {
    await reader.cancel().catch(() => {})
    throw err
  }
  return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)
}

/** Reads a little of an unused body (so a short one frees the connection for reuse), then drops the rest. */
export async function discardBody (res: Response): Promise<void> {
  if (res.body === null) return
  const reader = res.body.getReader()
  let read = 0
  try {
    while (read <= DISCARD_BYTES) {
      const { done, value } = await reader.read()
      if (done) return
      read += value.byteLength
    }
    await reader.cancel()
  } catch {
    // the body was going to be dropped anyway
  }
}

function blockTooLarge (size: number, max: number, what: string): ContentVerificationError {
  return new ContentVerificationError(`${what}: the answer has more than ${max} bytes (${size} at least), more than a block can hold`, { context: { limit: max } })
}
