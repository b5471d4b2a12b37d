/**
 * Bounds the sections of a CAR stream before it is decoded. @ipld/car reads a section's length and then
 * buffers that many bytes, so a CAR from an untrusted source (a gateway, an upload) claiming a 4 GiB block
 * would be buffered whole before any check could refuse it. This pass-through reads only the framing
 * (each section's varint length) and fails as soon as one is over its limit, having buffered nothing.
 */
import { ContentVerificationError } from '../errors.js'
import { MAX_BLOCK_BYTES } from './bounded-body.js'

/** Kubo's largest block (bitswap's limit), plus room for the CID in front of it. */
export const MAX_CAR_SECTION_BYTES = MAX_BLOCK_BYTES + 256
/**
 * The largest section read even when big blocks are allowed (`dag/import?allow-big-block=true`): go-car's
 * MaxAllowedSectionSize, past which Kubo's own `dag import` refuses a section. Without it an upload could
 * announce gigabytes and have them buffered.
 */
export const MAX_BIG_CAR_SECTION_BYTES = 32 * 1024 * 1024
/** A CAR v1 header is a small dag-cbor map (version and roots). */
export const MAX_CAR_HEADER_BYTES = 64 * 1024

export interface CarLimits {
  /** Largest section (CID + block) allowed; default MAX_CAR_SECTION_BYTES. */
  maxSection?: number
  /** Largest header allowed; default MAX_CAR_HEADER_BYTES. */
  maxHeader?: number
  /** Names the source in errors (`gateway http://…`). */
  source?: string
}

/** `source`'s chunks, unchanged, failing with ContentVerificationError at a section (or header) over its limit. */
export async function * limitCarSections (source: AsyncIterable<Uint8Array>, limits: CarLimits = {}): AsyncGenerator<Uint8Array> {
  const maxSection = limits.maxSection ?? MAX_CAR_SECTION_BYTES
  const maxHeader = limits.maxHeader ?? MAX_CAR_HEADER_BYTES
  let header = true
  // the varint being read (its value so far and its bit shift), or the bytes left in the current section
  let value = 0
  let shift = 0
  let remaining = 0
  for await (const chunk of source) {
    let at = 0
    while (at < chunk.byteLength) {
      if (remaining > 0) {
        const take = Math.min(remaining, chunk.byteLength - at)
        remaining -= take
        at += take
        continue
      }
      const byte = chunk[at++]
      value += (byte & 0x7f) * 2 ** shift
      shift += 7
      const limit = header ? maxHeader : maxSection
      if (value > limit || shift > 63) {
        throw new ContentVerificationError(`CAR ${header ? 'header' : 'section'} of ${value > limit ? `at least ${value}` : 'an unreadable number of'} bytes${limits.source === undefined ? '' : ` from ${limits.source}`} is over the limit of ${limit} bytes`,
          { context: { ...(limits.source === undefined ? {} : { source: limits.source }), limit } })
      }
      if ((byte & 0x80) === 0) {
        remaining = value
        value = 0
        shift = 0
        header = false
      }
    }
    yield chunk
  }
}
