/**
 * What a gateway request asks for, read by the rules of the trustless gateway spec: the response type
 * (`?format` first, else `Accept` negotiated by q-value), the CAR parameters (`dag-scope`,
 * `entity-bytes`, `car-version`, `car-order`), and the caching headers (ETag per variant,
 * `If-None-Match`, `Vary: Accept`). Everything here is checked before any block is read.
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { CID } from 'multiformats/cid'
import { createHash } from 'node:crypto'
import { ValidationError } from '../errors.js'

export type Query = Record<string, string | undefined>

/** An `Accept` that lists only response types this gateway cannot produce (406). */
export class NotAcceptable extends Error {
  readonly statusCode = 406
  constructor (accept: string) {
    super(`none of the types in Accept: ${JSON.stringify(accept)} can be served (application/vnd.ipld.raw, application/vnd.ipld.car; version=1, or a file's bytes)`)
    this.name = 'NotAcceptable'
  }
}

/** The path gateway's other response types: asked for alone they get a 406, never a file's bytes under another type. */
const OTHER_FORMATS = new Set(['application/x-tar', 'application/vnd.ipld.dag-json', 'application/vnd.ipld.dag-cbor',
  'application/json', 'application/cbor', 'application/vnd.ipfs.ipns-record'])

/** CAR variants we produce: version 1, depth-first (`unk` lets us choose). Any `dups` is answered with `dups=y`. */
export function carVariantServed (version: string | undefined, order: string | undefined): boolean {
  return (version === undefined || version === '1') && (order === undefined || order === 'dfs' || order === 'unk')
}

/**
 * The response type asked for: `format` first (as the spec says), else the best type in `Accept`
 * (RFC 9110 12.5.1: highest q, the first of equals; q=0 means "not this"). `undefined` is a file's
 * bytes, which any type we do not know (a browser's text/html, *\/*) gets.
 */
export function wantsFormat (request: FastifyRequest): 'raw' | 'car' | undefined {
  const query = request.query as Query
  const format = query.format
  if (format === 'raw' || format === 'car') return format
  if (format !== undefined && format !== '') throw ValidationError.field('format', `unsupported format ${JSON.stringify(format)} (raw or car)`)
  const accept = request.headers.accept ?? ''
  let best: { format: 'raw' | 'car' | undefined, q: number } | undefined
  let refused = false
  for (const range of accept.split(',')) {
    const [type, ...rest] = range.split(';').map(part => part.trim())
    if (type === '') continue
    const params = new Map(rest.map(p => {
      const eq = p.indexOf('=')
      return [p.slice(0, eq).trim().toLowerCase(), p.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1')]
    }))
    const q = params.has('q') ? Number(params.get('q')) : 1
    if (!(q > 0)) continue
    const mediaType = type.toLowerCase()
    let candidate: 'raw' | 'car' | undefined
    if (mediaType === 'application/vnd.ipld.raw') candidate = 'raw'
    else if (mediaType === 'application/vnd.ipld.car' && carVariantServed(params.get('version'), params.get('order'))) candidate = 'car'
    else if (mediaType === 'application/vnd.ipld.car' || OTHER_FORMATS.has(mediaType)) {
      refused = true
      continue
    }
    if (best === undefined || q > best.q) best = { format: candidate, q }
  }
  if (best === undefined && refused) throw new NotAcceptable(accept)
  return best?.format
}

/** `entity-bytes=from:to`: byte offsets, inclusive; negative ones count from the end, `to` may be `*`. */
export interface EntityBytes { from: number, to: number | '*' }

export interface CarRequest {
  scope: 'all' | 'entity' | 'block'
  entityBytes?: EntityBytes
}

/** The CAR parameters of a request, checked before any block is read. */
export function carRequest (query: Query): CarRequest {
  const version = query['car-version']
  const order = query['car-order']
  if (!carVariantServed(version === '' ? undefined : version, order === '' ? undefined : order)) {
    throw ValidationError.field(version !== undefined && version !== '' && version !== '1' ? 'car-version' : 'car-order',
      'only CAR version 1 in order dfs (or unk) is served')
  }
  const scope = query['dag-scope'] ?? 'all'
  if (scope !== 'all' && scope !== 'entity' && scope !== 'block') throw ValidationError.field('dag-scope', 'must be all, entity or block')
  const bytes = query['entity-bytes']
  if (bytes === undefined || bytes === '') return { scope }
  const match = /^(-?\d+):(-?\d+|\*)$/.exec(bytes)
  const from = Number(match?.[1])
  const to = match?.[2] === '*' ? '*' : Number(match?.[2])
  if (match === null || !Number.isSafeInteger(from) || (to !== '*' && !Number.isSafeInteger(to)) ||
      (from >= 0 && to !== '*' && to >= 0 && to < from)) {
    throw ValidationError.field('entity-bytes', `expected from:to (integers, to >= from, negative from the end, to may be *), got ${JSON.stringify(bytes)}`)
  }
  // the spec: entity-bytes implies dag-scope=entity
  return { scope: 'entity', entityBytes: { from, to } }
}

/**
 * A CAR's Etag: its blocks depend on the path (the path's blocks come first), the scope and the range,
 * so the Etag does too (the spec asks for one per scope and per entity-bytes).
 */
export function carEtag (root: CID, xIpfsPath: string, car: CarRequest): string {
  const range = car.entityBytes === undefined ? '' : `${car.entityBytes.from}:${car.entityBytes.to}`
  const variant = createHash('sha256').update(`${xIpfsPath}\n${car.scope}\n${range}`).digest('hex').slice(0, 16)
  return `"${root.toString()}.car.${variant}"`
}

/** `If-None-Match` lists `etag` (weak comparison, as RFC 9110 13.1.2 asks). */
export function notModified (request: FastifyRequest, etag: string): boolean {
  const header = request.headers['if-none-match']
  if (header === undefined) return false
  const opaque = (tag: string): string => tag.trim().replace(/^W\//, '')
  // `*` matches any current representation (RFC 9110 13.1.2): content that resolved has one.
  return header.split(',').some(tag => tag.trim() === '*' || opaque(tag) === opaque(etag))
}

/** Adds `Accept` to the `Vary` the host server may already have set (CORS sets `Origin`). */
export function varyOnAccept (reply: FastifyReply): void {
  const current = reply.getHeader('vary')
  const values = (Array.isArray(current) ? current.join(',') : String(current ?? '')).split(',').map(v => v.trim()).filter(v => v !== '')
  if (!values.some(v => v.toLowerCase() === 'accept' || v === '*')) reply.header('vary', [...values, 'Accept'].join(', '))
}

/** A `Range` that starts past the end of the file (416, with `Content-Range: bytes *\/size`). */
export class RangeNotSatisfiable extends Error {
  readonly statusCode = 416
  constructor (readonly range: string, readonly size: number) {
    super(`range ${JSON.stringify(range)} is outside the ${size}-byte file`)
    this.name = 'RangeNotSatisfiable'
  }
}

/**
 * The byte range a file request asks for (`Range: bytes=a-b`, `bytes=a-`, `bytes=-n`), clipped to
 * `size`, or undefined for the whole file: no Range, a syntax or unit we do not read, several ranges
 * (RFC 9110 14.2 lets a server ignore Range and answer 200), or an `If-Range` that is not this ETag.
 * A range that starts past the end throws RangeNotSatisfiable.
 */
export function byteRange (request: FastifyRequest, size: number, etag: string): { start: number, end: number } | undefined {
  const header = request.headers.range
  if (header === undefined) return undefined
  const ifRange = request.headers['if-range']
  if (ifRange !== undefined && String(ifRange).trim() !== etag) return undefined
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim())
  if (match === null || (match[1] === '' && match[2] === '')) return undefined
  let start: number
  let end: number
  if (match[1] === '') {
    // the last n bytes
    const n = Number(match[2])
    if (n === 0) throw new RangeNotSatisfiable(header, size)
    start = Math.max(0, size - n)
    end = size - 1
  } else {
    start = Number(match[1])
    end = match[2] === '' ? size - 1 : Math.min(size - 1, Number(match[2]))
    if (end < start && match[2] !== '') return undefined // invalid (last < first): ignored, as the RFC says
  }
  if (!Number.isSafeInteger(start) || start >= size) throw new RangeNotSatisfiable(header, size)
  return { start, end }
}
