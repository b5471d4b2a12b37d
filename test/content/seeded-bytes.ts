/**
 * Deterministic pseudo-random bytes (mulberry32, written little-endian 32 bits at a time) so tests and
 * benchmarks can name the CID of a large file without storing it. `seededChunks` yields the same bytes as
 * `seededBytes` for the same size and seed, in pieces.
 */

function fill (out: Uint8Array, state: { s: number }): void {
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength)
  const whole = out.byteLength & ~3
  let s = state.s
  for (let i = 0; i < whole; i += 4) {
    s = (s + 0x6D2B79F5) | 0
    let t = Math.imul(s ^ (s >>> 15), 1 | s)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    view.setUint32(i, (t ^ (t >>> 14)) >>> 0, true)
  }
  if (whole < out.byteLength) {
    s = (s + 0x6D2B79F5) | 0
    let t = Math.imul(s ^ (s >>> 15), 1 | s)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    const last = (t ^ (t >>> 14)) >>> 0
    for (let i = whole; i < out.byteLength; i++) out[i] = (last >>> (8 * (i - whole))) & 0xff
  }
  state.s = s
}

export function seededBytes (size: number, seed = 42): Uint8Array {
  const out = new Uint8Array(size)
  fill(out, { s: seed })
  return out
}

/** The bytes of `seededBytes(size, seed)` in pieces of `chunkSize` (a multiple of 4). */
export function * seededChunks (size: number, seed = 42, chunkSize = 1 << 20): Generator<Uint8Array> {
  if (chunkSize % 4 !== 0) throw new RangeError('chunkSize must be a multiple of 4')
  const state = { s: seed }
  for (let offset = 0; offset < size; offset += chunkSize) {
    const piece = new Uint8Array(Math.min(chunkSize, size - offset))
    fill(piece, state)
    yield piece
  }
}
