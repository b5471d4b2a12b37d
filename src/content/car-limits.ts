/**
 * Bounds the sections of a CAR stream before it is decoded. @ipld/car reads a section's length and then
 * buffers that many bytes, so a CAR from an untrusted source (a gateway, an upload) claiming a 4 GiB block
 * would be buffered whole before any check could refuse it. This pass-through reads only the framing
 * (each section's varint length) and fails as soon as one is over its limit, having buffered nothing.
 * It reads CAR v1 and v2 (which @ipld/car's decoder reads too, and Kubo's `dag import` takes).
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
  const framing = new CarFraming(limits)
  for await (const chunk of source) {
    framing.scan(chunk)
    yield chunk
  }
}

/** dag-cbor `{ version: 2 }`: the header a CAR v2 starts with (its "pragma"), in the only encoding dag-cbor allows. */
const V2_PRAGMA = Buffer.from([0xa1, 0x67, 0x76, 0x65, 0x72, 0x73, 0x69, 0x6f, 0x6e, 0x02])
/** The pragma with its length in front. */
const V2_PRAGMA_BYTES = 1 + V2_PRAGMA.byteLength
/** characteristics (16 bytes), data offset, data size, index offset (u64 little-endian each). */
const V2_HEADER_BYTES = 40

/**
 * Where a CAR stream is: reading a length (a header's or a section's), passing the bytes it announced, or,
 * in a CAR v2 (the v1 payload wrapped between a fixed header and an optional index, as go-car's
 * `car create` writes by default), its header, the padding before the payload, and the index after it.
 */
type Phase = 'length' | 'header' | 'section' | 'v2-header' | 'padding' | 'index'

/** Reads the framing of a CAR v1 or v2, chunk by chunk, keeping nothing but a CAR v2's 40-byte header. */
class CarFraming {
  private readonly maxSection: number
  private readonly maxHeader: number
  private readonly source: string | undefined
  private phase: Phase = 'length'
  /** The length being read is a header's (else a section's). */
  private header = true
  /** The first header: only it may be a CAR v2 pragma. */
  private outer = true
  // the varint being read (its value so far and its bit shift)
  private value = 0
  private shift = 0
  /** Bytes left in the current header, section, v2 header or padding. */
  private remaining = 0
  /** The bytes kept of the current phase: the outer header when it may be a pragma, the v2 header. */
  private kept: Buffer[] | undefined
  /**
   * A CAR v2's payload bytes not yet read. Past them comes its index, which the decoder never reads: the
   * rest passes unchecked, but only from a section boundary on (a header is always checked).
   */
  private payloadLeft = Number.POSITIVE_INFINITY

  constructor (limits: CarLimits) {
    this.maxSection = limits.maxSection ?? MAX_CAR_SECTION_BYTES
    this.maxHeader = limits.maxHeader ?? MAX_CAR_HEADER_BYTES
    this.source = limits.source
  }

  scan (chunk: Uint8Array): void {
    let at = 0
    while (at < chunk.byteLength && this.phase !== 'index') {
      const payload = this.phase === 'length' || this.phase === 'header' || this.phase === 'section'
      const before = at
      if (this.phase === 'length') {
        this.readLengthByte(chunk[at++])
      } else {
        const take = Math.min(this.remaining, chunk.byteLength - at)
        this.kept?.push(Buffer.from(chunk.subarray(at, at + take)))
        this.remaining -= take
        at += take
        if (this.remaining === 0) this.endOfPhase()
      }
      if (payload) this.payloadLeft -= at - before
      if (this.phase === 'length' && !this.header && this.value === 0 && this.shift === 0 && this.payloadLeft <= 0) this.phase = 'index'
    }
  }

  private readLengthByte (byte: number): void {
    this.value += (byte & 0x7f) * 2 ** this.shift
    this.shift += 7
    const limit = this.header ? this.maxHeader : this.maxSection
    if (this.value > limit || this.shift > 63) {
      throw this.error(`CAR ${this.header ? 'header' : 'section'} of ${this.value > limit ? `at least ${this.value}` : 'an unreadable number of'} bytes${this.from()} is over the limit of ${limit} bytes`, { limit })
    }
    if ((byte & 0x80) !== 0) return
    this.kept = this.header && this.outer && this.value === V2_PRAGMA.byteLength ? [] : undefined
    this.enter(this.header ? 'header' : 'section', this.value)
    this.value = 0
    this.shift = 0
    // an empty header or section is the decoder's to refuse; here it simply ends
    if (this.remaining === 0) this.endOfPhase()
  }

  /** The current header, section, v2 header or padding has been read whole: what comes next. */
  private endOfPhase (): void {
    const kept = this.kept === undefined ? undefined : Buffer.concat(this.kept)
    this.kept = undefined
    if (this.phase === 'header' && this.outer && kept?.equals(V2_PRAGMA) === true) {
      this.outer = false
      this.enter('v2-header', V2_HEADER_BYTES)
      this.kept = []
      return
    }
    if (this.phase === 'v2-header') {
      const dataOffset = Number((kept as Buffer).readBigUInt64LE(16))
      const dataSize = Number((kept as Buffer).readBigUInt64LE(24))
      if (!Number.isSafeInteger(dataOffset) || !Number.isSafeInteger(dataSize) || dataOffset < V2_PRAGMA_BYTES + V2_HEADER_BYTES) {
        throw this.error(`CAR v2 header${this.from()} is malformed (payload at byte ${dataOffset}, ${dataSize} bytes)`, {})
      }
      this.payloadLeft = dataSize
      this.enter('padding', dataOffset - V2_PRAGMA_BYTES - V2_HEADER_BYTES)
      if (this.remaining > 0) return
    }
    this.outer = false
    // a header is followed by sections; a CAR v2's padding, by the header of its payload
    this.header = this.phase === 'padding'
    this.phase = 'length'
  }

  private enter (phase: Phase, bytes: number): void {
    this.phase = phase
    this.remaining = bytes
  }

  private from (): string {
    return this.source === undefined ? '' : ` from ${this.source}`
  }

  private error (message: string, context: Record<string, unknown>): ContentVerificationError {
    return new ContentVerificationError(message, { context: { ...(this.source === undefined ? {} : { source: this.source }), ...context } })
  }
}
