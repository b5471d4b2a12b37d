/**
 * HTTP routes that expose the embedded store the way IPFS clients expect:
 *
 * - a trustless gateway (`GET|HEAD /ipfs/{cid}[/path]`): `?format=raw` / `Accept: application/vnd.ipld.raw`
 *   gives one block, `?format=car` / `Accept: application/vnd.ipld.car` a CAR v1 of the DAG (order=dfs,
 *   dups=y, `dag-scope=all|entity|block`, `entity-bytes`), and without a format the file's bytes
 *   (directories: 501); `If-None-Match` with the ETag is a 304;
 * - the Kubo RPC subset kubo-rpc-client needs (`POST /api/v0/…`): add, cat, block/get, block/stat,
 *   block/put, dag/import, pin/add, pin/ls, pin/rm, id, version. Errors use Kubo's shape `{ Message, Code, Type: 'error' }`.
 *
 * Every error, those fastify raises itself included (a body it cannot parse, a header it cannot send),
 * goes out in the shape of its routes: `{ error: { name, message } }` for the gateway (and anything else),
 * Kubo's for `/api/v0`. A method a route does not serve is a 405 with an `Allow` header. Clients get our
 * error messages (or fastify's for a malformed request), never a stack or a foreign library's message.
 */
import { Readable } from 'node:stream'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Blockstore } from 'interface-blockstore'
import * as dagPb from '@ipld/dag-pb'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { createHash } from 'node:crypto'
import { AccelerateError, ContentVerificationError, ValidationError, toStorageError, type StorageError } from '../errors.js'
import type { HeliaStore } from '../content/helia-store.js'
import { DAG_PB_CODE, RAW_CODE, SHA2_256_CODE, assertSupportedCid, identityBytes, parseIpfsPath, verifyBlock } from '../content/cid.js'
import { blockLinks, resolveIpfsPath, walkDag, type BlockGetter } from '../content/unixfs-reader.js'
import { NotAcceptable, RangeNotSatisfiable, byteRange, carEtag, carRequest, notModified, varyOnAccept, wantsFormat, type Query } from './gateway-request.js'
import { entityBytesBlocks } from './entity-bytes.js'
import { indirectPins, isPinnedRoot, pinTypeOf } from '../content/pin-listing.js'
import { MAX_BIG_CAR_SECTION_BYTES, MAX_CAR_SECTION_BYTES, limitCarSections } from '../content/car-limits.js'
import { MAX_BLOCK_BYTES } from '../content/bounded-body.js'
import { carBytes } from '../content/car-stream.js'
import { KUBO_CHUNK_SIZE, emptyDirectory } from '../content/unixfs-layout.js'
import { AddPaths } from './add-paths.js'

export interface IpfsRouteDeps {
  /** Where blocks are read from (the embedded store's blockstore). */
  blockstore: Pick<Blockstore, 'get'>
  store: HeliaStore
  /** Peer ID reported by `/api/v0/id` (the networking layer sets it). Default: none, 'ID' is ''. */
  peerId?: string
  /** Reported by `/api/v0/id` and `/api/v0/version`. */
  agentVersion?: string
}

/** Blocks bigger than this are refused by block/put unless `allow-big-block` (Kubo's limit is 1 MiB). */
export const MAX_BLOCK_PUT_BYTES = MAX_BLOCK_BYTES

const IMMUTABLE = 'public, max-age=29030400, immutable'

/** Multipart limits of `/api/v0/add` and `block/put`. */
const MAX_MULTIPART_PARTS = 20_000
const MAX_MULTIPART_FILES = 10_000

/** A request with a method the route does not serve (405). */
class MethodNotAllowed extends Error {
  readonly statusCode = 405
  constructor (method: string, url: string, readonly allow: string[]) {
    super(`method ${method} is not allowed on ${url.split('?')[0]} (allowed: ${allow.join(', ')})`)
    this.name = 'MethodNotAllowed'
  }
}

/** An RPC request from a web page of another origin (403, as Kubo). */
class ForeignOrigin extends Error {
  readonly statusCode = 403
  constructor (origin: string) {
    super(`requests from origin ${JSON.stringify(origin)} are not allowed`)
    this.name = 'ForeignOrigin'
  }
}

/** The 4xx status of an error about the request itself that fastify, a plugin or a route raised, if any. */
function requestErrorStatus (err: unknown): number | undefined {
  if (err instanceof AccelerateError) return undefined
  const status = (err as { statusCode?: unknown })?.statusCode
  return typeof status === 'number' && status >= 400 && status < 500 ? status : undefined
}

function statusOf (err: unknown): number {
  const requestStatus = requestErrorStatus(err)
  if (requestStatus !== undefined) return requestStatus
  switch ((err as Error)?.name) {
    case 'ValidationError': return 400
    case 'NotFoundError': return 404
    case 'TimeoutError': return 504
    case 'ContentVerificationError': return 502
    case 'AbortError': return 503
    // RFC 4918's 507: the server's disk is full; other disk failures are the server's (500)
    case 'StorageError': return ['ENOSPC', 'EDQUOT'].includes(String((err as StorageError).context.code)) ? 507 : 500
    default: return 500
  }
}

/** A message safe to send: ours, fastify's about a malformed request, or a generic one for anything else. */
function publicMessage (err: unknown): string {
  return err instanceof AccelerateError || requestErrorStatus(err) !== undefined ? (err as Error).message : 'internal error'
}

/** The name clients see: ours, `MethodNotAllowed`, `NotAcceptable`, `RangeNotSatisfiable`, `ValidationError` for another malformed request, else `InternalError`. */
function publicName (err: unknown): string {
  if (err instanceof AccelerateError || err instanceof MethodNotAllowed || err instanceof NotAcceptable || err instanceof RangeNotSatisfiable) return err.name
  return requestErrorStatus(err) !== undefined ? 'ValidationError' : 'InternalError'
}

/** `{ error: { name, message } }`: the gateway's (and the standalone server's) error body. */
export function errorBody (err: unknown): { error: { name: string, message: string } } {
  return { error: { name: publicName(err), message: publicMessage(err) } }
}

/**
 * Headers these routes set for a success: dropped before an error is sent (one may be what failed to
 * send). Headers the host server set (CORS from `@fastify/cors`, say) stay, so browsers can still read
 * the error.
 */
const SUCCESS_HEADERS = ['accept-ranges', 'cache-control', 'content-disposition', 'content-length', 'content-range', 'content-type', 'etag',
  'x-chunked-output', 'x-content-length', 'x-content-type-options', 'x-ipfs-path', 'x-ipfs-roots', 'x-stream-output']

function clearHeaders (reply: FastifyReply): void {
  for (const name of SUCCESS_HEADERS) reply.removeHeader(name)
}

/** Sends `err` as `{ error: { name, message } }` (what the gateway and the standalone server answer). */
export async function sendErrorBody (reply: FastifyReply, err: unknown): Promise<void> {
  if (reply.sent) { reply.raw.destroy(); return }
  err = toStorageError(err, `${reply.request.method} ${reply.request.url.split('?')[0]}`) ?? err
  clearHeaders(reply)
  closeIfBodyUnread(reply)
  // RFC 9110 15.5.17: a 416 says how long the file is
  if (err instanceof RangeNotSatisfiable) reply.header('content-range', `bytes */${err.size}`)
  await reply.code(statusOf(err)).header('cache-control', 'no-store').header('content-type', 'application/json; charset=utf-8')
    .send(errorBody(err))
}

function blockGetter (blockstore: Pick<Blockstore, 'get'>): BlockGetter {
  return async (cid, options) => {
    const inline = identityBytes(cid)
    if (inline !== undefined) return inline
    const chunks: Uint8Array[] = []
    for await (const chunk of blockstore.get(cid, options)) chunks.push(chunk)
    return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)
  }
}

/** `/ipfs/{cid}[/path]` as an `X-Ipfs-Path` header value: each segment percent-encoded (headers are ASCII). */
function ipfsPathHeader (cid: CID, path: string): string {
  return `/ipfs/${cid.toString()}${path === '' ? '' : `/${path.split('/').map(encodeURIComponent).join('/')}`}`
}

/** `GET|HEAD /ipfs/{cid}[/path]`: a trustless gateway over the embedded store. */
export function registerGatewayRoutes (app: FastifyInstance, deps: IpfsRouteDeps): void {
  // in their own context, so their error handler is theirs and not the host server's
  void app.register(async (gateway) => { gatewayRoutes(gateway, deps) })
}

function gatewayRoutes (app: FastifyInstance, deps: IpfsRouteDeps): void {
  const getBlock = blockGetter(deps.blockstore)
  app.setErrorHandler(async (err, _request, reply) => { await sendErrorBody(reply, err) })
  // Bodies are never read here: a POST with one (any Content-Type) must reach the 405 below, not a 415.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', (_request, _payload, done) => { done(null) })

  app.route({
    method: ['POST', 'PUT', 'DELETE', 'PATCH'],
    url: '/ipfs/*',
    handler: async (request, reply) => {
      await sendErrorBody(reply.header('allow', 'GET, HEAD'), new MethodNotAllowed(request.method, request.url, ['GET', 'HEAD']))
    }
  })

  app.route({
    method: ['GET', 'HEAD'],
    url: '/ipfs/*',
    exposeHeadRoute: false,
    handler: async (request, reply) => {
      try {
        // the answer depends on Accept: a shared cache must not give a raw block to a request for the file
        varyOnAccept(reply)
        const ref = parseIpfsPath(`/ipfs/${(request.params as { '*': string })['*']}`)
        const format = wantsFormat(request)
        const car = format === 'car' ? carRequest(request.query as Query) : undefined
        const head = request.method === 'HEAD'
        const signal = abortOnClose(reply)
        // blocks read while resolving the path: a CAR response carries them so the client can verify the path
        const pathBlocks: Array<{ cid: CID, bytes: Uint8Array }> = []
        const recording: BlockGetter = async (cid, options) => {
          const bytes = await getBlock(cid, options)
          pathBlocks.push({ cid, bytes })
          return bytes
        }
        const target = await resolveIpfsPath(ref.cid, ref.path, ref.path === '' ? getBlock : recording, { signal })
        const xIpfsPath = ipfsPathHeader(ref.cid, ref.path)
        reply.header('x-ipfs-path', xIpfsPath)
        reply.header('x-content-type-options', 'nosniff')

        const etag = format === 'raw' ? `"${target.toString()}.raw"` : car !== undefined ? carEtag(ref.cid, xIpfsPath, car) : `"${target.toString()}"`
        reply.header('etag', etag).header('cache-control', IMMUTABLE)
        if (notModified(request, etag)) return await reply.code(304).send()

        if (format === 'raw') {
          const bytes = await getBlock(target, { signal })
          reply.header('content-type', 'application/vnd.ipld.raw').header('content-length', bytes.byteLength)
            .header('content-disposition', `attachment; filename="${target.toString()}.bin"`)
          return await reply.send(head ? undefined : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength))
        }

        if (car !== undefined) {
          reply.header('content-type', 'application/vnd.ipld.car; version=1; order=dfs; dups=y')
            .header('content-disposition', `attachment; filename="${ref.cid.toString()}.car"`)
          // read the first block before answering, so a missing root is a 404 and not a cut CAR
          const blocks = (car.entityBytes === undefined
            ? walkDag(target, getBlock, { scope: car.scope, signal })
            : entityBytesBlocks(target, car.entityBytes, getBlock, signal))[Symbol.asyncIterator]()
          const first = await blocks.next()
          if (head) {
            await blocks.return(undefined)
            return await reply.send()
          }
          const body = Readable.from(carBytes(ref.cid, async function * () {
            try {
              // the spec: identity CIDs' blocks are never sent (their bytes are in the CID)
              for (const block of pathBlocks) if (identityBytes(block.cid) === undefined) yield block
              if (first.done !== true && identityBytes(first.value.cid) === undefined) yield first.value
              while (true) {
                const next = await blocks.next()
                if (next.done === true) return
                if (identityBytes(next.value.cid) === undefined) yield next.value
              }
            } finally {
              await blocks.return(undefined).catch(() => {})
            }
          }))
          body.once('error', (err) => {
            request.log.debug({ err }, 'car stream stopped')
            reply.raw.destroy() // the client sees a truncated CAR, never a wrong one
          })
          return await reply.send(body)
        }

        // deserialized: the file's bytes
        const stat = await deps.store.stat(target, { signal })
        if (stat.type !== 'file' && stat.type !== 'raw') {
          reply.removeHeader('etag').removeHeader('cache-control')
          return await reply.code(501).send({ error: { name: 'NotImplemented', message: `${target.toString()} is a ${stat.type}: ask for ?format=car or ?format=raw` } })
        }
        reply.header('content-type', 'application/octet-stream').header('accept-ranges', 'bytes')
        const range = byteRange(request, stat.size, etag)
        if (range === undefined) {
          reply.header('content-length', stat.size)
          if (head) return await reply.send()
          return await reply.send(Readable.from(deps.store.cat(target, { signal })))
        }
        // One range (a player seeking, a resumed download): only the blocks holding it are read.
        const length = range.end - range.start + 1
        reply.code(206).header('content-range', `bytes ${range.start}-${range.end}/${stat.size}`).header('content-length', length)
        if (head) return await reply.send()
        return await reply.send(Readable.from(deps.store.cat(target, { signal, offset: range.start, length })))
      } catch (err) {
        await sendErrorBody(reply, err)
      }
    }
  })
}

/** A signal that fires when the response closes before it was fully sent (the client went away). */
function abortOnClose (reply: FastifyReply): AbortSignal {
  const controller = new AbortController()
  reply.raw.once('close', () => { if (!reply.raw.writableFinished) controller.abort() })
  return controller.signal
}

function flag (query: Query, name: string, fallback: boolean): boolean {
  const v = query[name]
  if (v === undefined || v === '') return fallback
  if (v === 'true' || v === '1') return true
  if (v === 'false' || v === '0') return false
  throw ValidationError.field(name, `expected true or false, got ${JSON.stringify(v)}`)
}

/**
 * An answer sent before the request's body was read to its end (an upload refused part-way): the rest
 * of that body would be read as the next request on a kept-alive connection, so this one closes.
 */
function closeIfBodyUnread (reply: FastifyReply): void {
  if (!reply.request.raw.complete) reply.header('connection', 'close')
}

/** Kubo's error body and status: 400 for a bad request, 403 for a foreign Origin, 405 for a wrong method, 500 for anything else. */
export function rpcError (err: unknown): { status: number, body: { Message: string, Code: number, Type: 'error' } } {
  const status = statusOf(err)
  let message = err instanceof RpcFailure ? err.message : publicMessage(err)
  // Kubo's wording, which clients (and our KuboStore) recognise
  if ((err as Error)?.name === 'NotFoundError') message = `block was not found locally (offline): ipld: could not find node (${message})`
  const sent = status === 405 || status === 403 ? status : status >= 400 && status < 500 && (err as Error)?.name !== 'NotFoundError' ? 400 : 500
  return { status: sent, body: { Message: message, Code: sent === 400 ? 1 : 0, Type: 'error' } }
}

/** Sends `err` in Kubo's shape (what the `/api/v0` commands answer). */
export async function sendRpcError (reply: FastifyReply, err: unknown): Promise<void> {
  if (reply.sent) { reply.raw.destroy(); return }
  // a failing disk says so (as a StorageError), rather than "internal error"
  err = toStorageError(err, reply.request.url.split('?')[0]) ?? err
  closeIfBodyUnread(reply)
  clearHeaders(reply)
  const { status, body } = rpcError(err)
  await reply.code(status).header('content-type', 'application/json; charset=utf-8').send(body)
}

/**
 * A ValidationError for a multipart body busboy or @fastify/multipart could not read (no or a bad
 * boundary, a body cut before its closing boundary, too many parts or files); our own errors as they are.
 */
function badBody (err: unknown): unknown {
  if (err instanceof AccelerateError) return err
  const code = (err as { code?: unknown })?.code
  const limits: Record<string, string> = {
    FST_PARTS_LIMIT: `more than ${MAX_MULTIPART_PARTS} parts`,
    FST_FILES_LIMIT: `more than ${MAX_MULTIPART_FILES} files`,
    FST_FIELDS_LIMIT: 'too many fields'
  }
  const why = typeof code === 'string' && limits[code] !== undefined ? limits[code] : (err as Error)?.message ?? String(err)
  return new ValidationError(`file: malformed multipart/form-data body: ${why}`, [{ path: 'file', message: 'malformed multipart body' }],
    { cause: err, context: { field: 'file' } })
}

/** What `open` gives, with the errors of reading it (the request body) turned into ValidationErrors. */
async function * fromBody<T> (open: () => AsyncIterable<T>): AsyncGenerator<T> {
  let iterator: AsyncIterator<T>
  try {
    iterator = open()[Symbol.asyncIterator]()
  } catch (err) {
    throw badBody(err)
  }
  let finished = false
  try {
    while (true) {
      let next: IteratorResult<T>
      try {
        next = await iterator.next()
      } catch (err) {
        finished = true
        throw badBody(err)
      }
      if (next.done === true) {
        finished = true
        return
      }
      yield next.value
    }
  } finally {
    if (!finished) await iterator.return?.()
  }
}

/**
 * The request's multipart parts. @fastify/multipart learns that the connection closed from the
 * request's 'close' event, listened to from this call on: a request cut before it (a client that ends
 * its side mid-body, which Node answers by destroying the request) would otherwise leave the caller
 * waiting for parts forever, holding the store's lock.
 */
function multipartParts (request: FastifyRequest): ReturnType<FastifyRequest['parts']> {
  if (request.raw.destroyed) throw new Error('the connection closed before the body was read')
  return request.parts()
}

/** A part's file name as sent (kubo-rpc-client percent-encodes it). */
function partName (filename: string | undefined): string {
  try {
    return decodeURIComponent(filename ?? '')
  } catch {
    throw ValidationError.field('file', `file name ${JSON.stringify(filename)} is not valid percent-encoding`)
  }
}

/** A line of add's answer; `path` for an entry's own line (not a progress line). */
interface AnswerLine { text: string, path?: string }

/**
 * add's answer: `lines` in order, and the folders the importer did not report (it stores an empty folder
 * without reporting it; Kubo lists it) each just before its parent's line, or last when its parent is not
 * listed. Built in one pass: an answer can have ~100,000 lines.
 */
function addAnswer (lines: AnswerLine[], unreported: Array<Required<AnswerLine>>, wrap: boolean): string {
  const listed = new Set([...lines.map(l => l.path), ...unreported.map(l => l.path)])
  const before = new Map<string, Array<Required<AnswerLine>>>()
  const last: Array<Required<AnswerLine>> = []
  for (const line of unreported) {
    const parent = line.path.includes('/') ? line.path.slice(0, line.path.lastIndexOf('/')) : wrap ? '' : undefined
    if (parent === undefined || !listed.has(parent)) last.push(line)
    else if (before.has(parent)) before.get(parent)?.push(line)
    else before.set(parent, [line])
  }
  const out: string[] = []
  const put = (line: AnswerLine): void => {
    if (line.path !== undefined) {
      for (const child of before.get(line.path) ?? []) put(child)
      before.delete(line.path)
    }
    out.push(line.text)
  }
  for (const line of [...lines, ...last]) put(line)
  return out.join('\n') + '\n'
}

/** The path a nameless file is imported at (reported with its CID as name, as Kubo does). */
const UNNAMED = 'file'

/** Where the Kubo RPC commands are served. */
const RPC_PREFIX = '/api/v0'
/** The Kubo RPC commands served here (POST only). */
const RPC_COMMANDS = ['add', 'cat', 'block/get', 'block/stat', 'block/put', 'dag/import', 'pin/add', 'pin/ls', 'pin/rm', 'id', 'version']

/** Whether a request's URL names one of the RPC commands, whose errors are in Kubo's shape. */
export function isRpcCommand (url: string): boolean {
  const path = url.split('?')[0]
  return path.startsWith(`${RPC_PREFIX}/`) && RPC_COMMANDS.includes(path.slice(RPC_PREFIX.length + 1))
}

/** Kubo's `pin ls --type` values; this store has no direct pins, so `direct` lists nothing. */
const PIN_TYPES = ['all', 'recursive', 'indirect', 'direct']

/** A refusal Kubo sends as a 500 with this very message (`path '…' is not pinned`), which clients show as is. */
class RpcFailure extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'RpcFailure'
  }
}

/** A body that is not a CAR v1 or v2 (no or a bad header, a section over the limit) as a ValidationError. */
function notACar (err: unknown): unknown {
  if (err instanceof ContentVerificationError) return ValidationError.field('file', err.message)
  if (err instanceof AccelerateError) return err
  return ValidationError.field('file', `not a CAR: ${(err as Error)?.message ?? String(err)}`)
}

/** The blocks of a CAR, a malformed section being a ValidationError. */
async function * carBlocks (car: AsyncIterable<{ cid: CID, bytes: Uint8Array }>): AsyncGenerator<{ cid: CID, bytes: Uint8Array }> {
  const blocks = car[Symbol.asyncIterator]()
  while (true) {
    let next: IteratorResult<{ cid: CID, bytes: Uint8Array }>
    try {
      next = await blocks.next()
    } catch (err) {
      throw notACar(err)
    }
    if (next.done === true) return
    yield next.value
  }
}

/** Every `arg` of the query (a repeated parameter arrives as an array). */
function argList (query: Query): string[] {
  const arg = (query as Record<string, string | string[] | undefined>).arg
  const args = arg === undefined ? [] : Array.isArray(arg) ? arg : [arg]
  return args.filter(a => a !== '')
}

/** Kubo's block formats we can store, from its legacy `format` option; any other is refused, never stored as raw. */
const BLOCK_FORMATS = ['raw', 'v0', 'protobuf', 'dag-pb']

/**
 * The CID block/put makes, from Kubo's options: `cid-codec` (raw, dag-pb), `mhtype` (sha2-256), `mhlen`
 * (32, or -1 for the hash's own), or the legacy `format` (`v0` is a CIDv0). Kubo ignores options a command
 * does not have, so `version` (which kubo-rpc-client can send) changes nothing here either.
 */
function blockPutCid (query: Query): { code: number, version: 0 | 1 } {
  const format = single(query, 'format')
  if (format !== undefined && !BLOCK_FORMATS.includes(format)) {
    throw ValidationError.field('format', `unsupported block format ${JSON.stringify(format)} (raw, dag-pb, protobuf or v0)`)
  }
  const codecName = single(query, 'cid-codec') ?? (format === undefined || format === 'raw' ? 'raw' : 'dag-pb')
  const code = codecName === 'dag-pb' ? DAG_PB_CODE : codecName === 'raw' ? RAW_CODE : undefined
  if (code === undefined) throw ValidationError.field('cid-codec', 'only raw and dag-pb are supported')
  const mhtype = single(query, 'mhtype')
  if (mhtype !== undefined && mhtype !== 'sha2-256') throw ValidationError.field('mhtype', 'only sha2-256 is supported')
  const mhlen = single(query, 'mhlen')
  if (mhlen !== undefined && mhlen !== '-1' && mhlen !== '32') throw ValidationError.field('mhlen', 'only 32 is supported')
  const version = format === 'v0' ? 0 : 1
  if (version === 0 && code !== DAG_PB_CODE) throw ValidationError.field('format', 'CIDv0 blocks must be dag-pb')
  return { code, version }
}

/** The one `arg` of a command that takes one ipfs-path. */
function argCid (query: Query): ReturnType<typeof parseIpfsPath> {
  const arg = single(query, 'arg')
  if (arg === undefined) throw ValidationError.field('arg', 'argument "ipfs-path" is required')
  return parseIpfsPath(arg)
}

/**
 * An option given at most once (a repeated parameter arrives as an array), empty meaning absent (as
 * `flag` takes it): `undefined` when absent.
 */
function single (query: Query, name: string): string | undefined {
  const value: unknown = query[name]
  if (Array.isArray(value)) throw ValidationError.field(name, `given ${value.length} times, expected once`)
  return value === undefined || value === '' ? undefined : String(value)
}

/** A non-negative decimal integer option (`offset`, `length`), `undefined` when absent. */
function nonNegativeInteger (query: Query, name: string): number | undefined {
  const value = single(query, name)
  if (value === undefined) return undefined
  const n = /^[0-9]+$/.test(value) ? Number(value) : NaN
  if (!Number.isSafeInteger(n)) throw ValidationError.field(name, `expected a non-negative decimal integer, got ${JSON.stringify(value)}`)
  return n
}

/** `POST /api/v0/…`: the Kubo RPC subset (add, cat, block/get, block/stat, block/put, dag/import, pin/add, pin/ls, pin/rm, id, version). */
export function registerKuboRpcRoutes (app: FastifyInstance, deps: IpfsRouteDeps): void {
  const getBlock = blockGetter(deps.blockstore)
  const agentVersion = deps.agentVersion ?? 'ipfs-accelerate'

  void app.register(async (api) => {
    if (!api.hasRequestDecorator('parts')) {
      const { default: multipart } = await import('@fastify/multipart')
      await api.register(multipart, { limits: { fileSize: Number.MAX_SAFE_INTEGER, files: MAX_MULTIPART_FILES, parts: MAX_MULTIPART_PARTS } })
    }
    api.setErrorHandler(async (err, _request, reply) => { await sendRpcError(reply, err) })
    // As Kubo: a request a web page sends (it carries that page's Origin) is refused. A multipart POST
    // needs no CORS preflight, so without this any page the user opens could add and pin content here.
    api.addHook('onRequest', async (request, reply) => {
      const origin = request.headers.origin
      if (origin === undefined || origin === `http://${request.headers.host ?? ''}`) return
      await sendRpcError(reply, new ForeignOrigin(origin))
      return reply
    })
    // Kubo answers 405 to any other method on its commands. OPTIONS too: nothing here answers a CORS
    // preflight (a page of another origin is refused anyway, see above), and a host server's CORS
    // plugin answers a preflight in its own hook, before this route.
    for (const command of RPC_COMMANDS) {
      api.route({
        method: ['GET', 'HEAD', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'],
        url: `/${command}`,
        exposeHeadRoute: false,
        handler: async (request, reply) => {
          await sendRpcError(reply.header('allow', 'POST'), new MethodNotAllowed(request.method, request.url, ['POST']))
        }
      })
    }

    api.post('/add', async (request, reply) => {
      let sawFile = false
      try {
        const query = request.query as Query
        const cidVersion = nonNegativeInteger(query, 'cid-version') ?? 0
        if (cidVersion !== 0 && cidVersion !== 1) throw ValidationError.field('cid-version', 'must be 0 or 1')
        if (flag(query, 'raw-leaves', cidVersion === 1) !== (cidVersion === 1)) throw ValidationError.field('raw-leaves', 'only Kubo\'s default for the CID version is supported (v0: false, v1: true)')
        if (query.chunker !== undefined && query.chunker !== '' && query.chunker !== 'size-262144') throw ValidationError.field('chunker', 'only size-262144 is supported')
        if (query.hash !== undefined && query.hash !== '' && query.hash !== 'sha2-256') throw ValidationError.field('hash', 'only sha2-256 is supported')
        for (const unsupported of ['trickle', 'inline', 'nocopy']) {
          if (flag(query, unsupported, false)) throw ValidationError.field(unsupported, 'is not supported')
        }
        const onlyHash = flag(query, 'only-hash', false)
        const wrap = flag(query, 'wrap-with-directory', false)
        const pin = flag(query, 'pin', true)
        const progress = flag(query, 'progress', false)
        if (!request.isMultipart()) throw ValidationError.field('file', 'expected a multipart/form-data body with a file')
        const lines: AnswerLine[] = []
        const directories = new Set<string>()
        const reported = new Set<string>()
        // whether a part came without a name (imported as UNNAMED): only then is UNNAMED reported by its CID,
        // never a file that is really called `file`
        let nameless = false
        // every path is checked as its part arrives, before the importer takes it: nothing is pinned
        // before the last part is in, so a refused path pins nothing
        const paths = new AddPaths()
        // Parts become entries one at a time (a part's body is read to its end before the next part
        // arrives): files with their content, directories (application/x-directory) as paths. A lone
        // file without a name is named by its CID, as Kubo does.
        const entries = (async function * () {
          for await (const part of fromBody(() => multipartParts(request))) {
            if (part.type !== 'file') continue
            sawFile = true
            const name = partName(part.filename)
            const folder = part.mimetype === 'application/x-directory'
            // unwrapped, a nameless file is a root of its own; wrapped, it is UNNAMED in the wrapper
            if (name === '' && !wrap && !folder) paths.addNameless()
            else paths.add(name === '' ? UNNAMED : name, folder)
            if (folder) {
              part.file.resume()
              directories.add(name)
              yield { path: name }
              continue
            }
            let bytes = 0
            let shown = 0
            const content = (async function * () {
              for await (const chunk of fromBody<Uint8Array>(() => part.file)) {
                bytes += chunk.byteLength
                // as Kubo, once per chunk of the layout (not per network read, whose count the client sets)
                while (progress && bytes - shown >= KUBO_CHUNK_SIZE) {
                  shown += KUBO_CHUNK_SIZE
                  lines.push({ text: JSON.stringify({ Name: name, Bytes: shown }) })
                }
                yield chunk
              }
              if (progress && bytes > shown) lines.push({ text: JSON.stringify({ Name: name, Bytes: bytes }) })
            })()
            if (name === '') nameless = true
            yield { path: name === '' ? UNNAMED : name, content }
          }
        })()
        await deps.store.addEntries(entries, {
          cidVersion,
          pin,
          onlyHash,
          wrapWithDirectory: wrap,
          onEntry: ({ path, cid, size }) => {
            reported.add(path)
            lines.push({ path, text: JSON.stringify({ Name: nameless && path === UNNAMED ? cid.toString() : path, Hash: cid.toString(), Size: size.toString() }) })
          }
        })
        const empty = emptyDirectory(cidVersion)
        const unreported = [...directories].filter(d => !reported.has(d)).map(dir => ({
          path: dir,
          text: JSON.stringify({ Name: dir, Hash: empty.cid.toString(), Size: String(empty.size) })
        }))
        return await reply.header('content-type', 'application/json').header('x-chunked-output', '1').send(addAnswer(lines, unreported, wrap))
      } catch (err) {
        // an upload without a file part: the store found nothing to import
        const empty = err instanceof ValidationError && err.context.field === 'content' && !sawFile
        await sendRpcError(reply, empty ? ValidationError.field('file', 'no file in the request') : err)
      }
    })

    api.post('/cat', async (request, reply) => {
      try {
        const query = request.query as Query
        const ref = argCid(query)
        const offset = nonNegativeInteger(query, 'offset')
        const length = nonNegativeInteger(query, 'length')
        const signal = abortOnClose(reply)
        const target = await deps.store.resolve(ref.cid, ref.path, { signal })
        const stat = await deps.store.stat(target, { signal })
        if (stat.type !== 'file' && stat.type !== 'raw') throw ValidationError.field('arg', 'this dag node is a directory')
        // read the first piece before answering, so a missing or corrupt block is still an error status
        const source = deps.store.cat(target, { signal, offset, length })[Symbol.asyncIterator]()
        const first = await source.next()
        const body = Readable.from((async function * () {
          if (first.done !== true) yield first.value
          while (true) {
            const next = await source.next()
            if (next.done === true) return
            yield next.value
          }
        })())
        // what is sent, as Kubo: the bytes from `offset`, at most `length`
        const sent = Math.max(0, Math.min(stat.size - (offset ?? 0), length ?? Number.MAX_SAFE_INTEGER))
        return await reply.header('content-type', 'text/plain').header('x-stream-output', '1')
          .header('x-content-length', String(sent)).send(body)
      } catch (err) {
        await sendRpcError(reply, err)
      }
    })

    api.post('/block/get', async (request, reply) => {
      try {
        const ref = argCid(request.query as Query)
        const target = await deps.store.resolve(ref.cid, ref.path)
        const bytes = await getBlock(target)
        return await reply.header('content-type', 'text/plain').send(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength))
      } catch (err) {
        await sendRpcError(reply, err)
      }
    })

    api.post('/block/stat', async (request, reply) => {
      try {
        const ref = argCid(request.query as Query)
        const target = await deps.store.resolve(ref.cid, ref.path)
        const bytes = await getBlock(target)
        return await reply.send({ Key: target.toString(), Size: bytes.byteLength })
      } catch (err) {
        await sendRpcError(reply, err)
      }
    })

    api.post('/block/put', async (request, reply) => {
      try {
        const query = request.query as Query
        const { code, version } = blockPutCid(query)
        const pin = flag(query, 'pin', false)
        const allowBig = flag(query, 'allow-big-block', false)
        // a block is held whole in memory to be hashed: even a big one is bounded (as dag/import's sections)
        const limit = allowBig ? MAX_BIG_CAR_SECTION_BYTES : MAX_BLOCK_PUT_BYTES
        const tooBig = allowBig ? 'the most a block can be, even with allow-big-block' : 'allow-big-block to force'
        if (!request.isMultipart()) throw ValidationError.field('file', 'expected a multipart/form-data body with a file')
        // As Kubo, every file part is a block. Each is stored as it arrives (one block in memory at a time)
        // and pinned only once the body has reached its closing boundary: a cut upload pins nothing (its
        // blocks stay unpinned, for gc, as dag/import's).
        const stored: Array<{ cid: CID, size: number, links: CID[] }> = []
        for await (const part of fromBody(() => multipartParts(request))) {
          if (part.type !== 'file') continue
          const chunks: Buffer[] = []
          let size = 0
          for await (const chunk of fromBody<Buffer>(() => part.file)) {
            size += chunk.byteLength
            if (size > limit) throw ValidationError.field('file', `block is over ${limit} bytes (${tooBig})`)
            chunks.push(chunk)
          }
          const bytes = Buffer.concat(chunks)
          if (code === DAG_PB_CODE) {
            try { dagPb.decode(bytes) } catch { throw ValidationError.field('file', 'not a valid dag-pb block') }
          }
          const digest = Digest.create(SHA2_256_CODE, createHash('sha256').update(bytes).digest())
          const cid = version === 0 ? CID.createV0(digest) : CID.createV1(code, digest)
          await deps.store.putBlock(cid, bytes)
          stored.push({ cid, size: bytes.byteLength, links: blockLinks(cid, bytes) })
        }
        if (stored.length === 0) throw ValidationError.field('file', 'no file in the request')
        if (pin) for (const { cid, links } of stored) await deps.store.pin(cid, { links: new Map([[cid.toString(), links]]) })
        // Kubo's answer: one JSON object per block, each on its own line
        return await reply.header('content-type', 'application/json')
          .send(stored.map(({ cid, size }) => JSON.stringify({ Key: cid.toString(), Size: size }) + '\n').join(''))
      } catch (err) {
        await sendRpcError(reply, err)
      }
    })

    api.post('/dag/import', async (request, reply) => {
      try {
        const query = request.query as Query
        const pinRoots = flag(query, 'pin-roots', true)
        const allowBig = flag(query, 'allow-big-block', false)
        const limit = allowBig ? Number.MAX_SAFE_INTEGER : MAX_BLOCK_PUT_BYTES
        // a big block is still bounded by the section limit (go-car's), so no length is buffered unchecked
        const maxSection = allowBig ? MAX_BIG_CAR_SECTION_BYTES : MAX_CAR_SECTION_BYTES
        if (!request.isMultipart()) throw ValidationError.field('file', 'expected a multipart/form-data body with a CAR file')
        const { CarBlockIterator } = await import('@ipld/car/iterator')
        const roots: CID[] = []
        let files = 0
        for await (const part of fromBody(() => multipartParts(request))) {
          if (part.type !== 'file') continue
          files++
          // blocks are verified and stored as they arrive (a bad one fails the request; those before it
          // stay unpinned, for gc), so a CAR of any size streams through
          // a section over the block limit is refused before it is buffered
          const bounded = limitCarSections(fromBody<Uint8Array>(() => part.file), { maxSection, source: 'the upload' })
          const car = await CarBlockIterator.fromIterable(bounded).catch((err: unknown) => { throw notACar(err) })
          for (const root of await car.getRoots()) if (!roots.some(r => r.equals(root))) roots.push(root)
          for await (const block of carBlocks(car)) {
            assertSupportedCid(block.cid, 'file')
            if (block.bytes.byteLength > limit) throw ValidationError.field('file', `block ${block.cid.toString()} is over ${limit} bytes (allow-big-block to force)`)
            if (block.cid.code === DAG_PB_CODE) {
              try { dagPb.decode(block.bytes) } catch { throw ValidationError.field('file', `block ${block.cid.toString()} is not valid dag-pb`) }
            }
            try {
              // putBlock verifies the block against its CID (hashing it once); an inline one is only checked
              if (identityBytes(block.cid) === undefined) await deps.store.putBlock(block.cid, block.bytes, { source: 'the CAR' })
              else verifyBlock(block.cid, block.bytes, 'the CAR')
            } catch (err) {
              throw err instanceof ContentVerificationError ? ValidationError.field('file', err.message) : err
            }
          }
          // what follows a CAR v2's payload (its index) is read to the end of the part, unused
          for await (const _ of bounded) { /* skipped */ }
        }
        if (files === 0) throw ValidationError.field('file', 'no CAR file in the request')
        // as Kubo: a root whose DAG is not all here is reported with the pin's error, not failed
        const lines: string[] = []
        for (const root of pinRoots ? roots : []) {
          let pinError = ''
          try {
            await deps.store.pin(root)
          } catch (err) {
            pinError = (err as Error).message
          }
          lines.push(JSON.stringify({ Root: { Cid: { '/': root.toString() }, PinErrorMsg: pinError } }))
        }
        return await reply.header('content-type', 'application/json').header('x-chunked-output', '1').send(lines.map(l => l + '\n').join(''))
      } catch (err) {
        await sendRpcError(reply, err)
      }
    })

    api.post('/pin/add', async (request, reply) => {
      try {
        const query = request.query as Query
        if (!flag(query, 'recursive', true)) throw ValidationError.field('recursive', 'only recursive pins are supported')
        const ref = argCid(query)
        const target = await deps.store.resolve(ref.cid, ref.path)
        await deps.store.pin(target)
        return await reply.header('content-type', 'application/json').send(JSON.stringify({ Pins: [target.toString()] }) + '\n')
      } catch (err) {
        await sendRpcError(reply, err)
      }
    })

    api.post('/pin/ls', async (request, reply) => {
      try {
        const query = request.query as Query
        const type = query.type === undefined || query.type === '' ? 'all' : query.type
        if (!PIN_TYPES.includes(type)) throw ValidationError.field('type', `invalid type ${JSON.stringify(type)}, must be one of ${PIN_TYPES.join(', ')}`)
        const stream = flag(query, 'stream', false)
        const signal = abortOnClose(reply)
        const listed: Array<{ Cid: string, Type: string }> = []
        const args = argList(query)
        // as Kubo: every argument is checked before anything is answered, and one not pinned fails the call
        for (const arg of args) {
          const ref = parseIpfsPath(arg)
          const target = await deps.store.resolve(ref.cid, ref.path, { signal })
          const pin = await pinTypeOf(deps.store, target, signal)
          const shown = pin === undefined ? undefined : pin.type === 'recursive' ? 'recursive' : `indirect through ${pin.through.toString()}`
          if (pin === undefined || (type !== 'all' && type !== pin.type)) throw new RpcFailure(`path '${arg}' is not pinned${type === 'all' ? '' : ` as ${type}`}`)
          listed.push({ Cid: target.toString(), Type: shown as string })
        }
        if (args.length === 0) {
          if (type === 'all' || type === 'recursive') for await (const cid of deps.store.pins({ signal })) listed.push({ Cid: cid.toString(), Type: 'recursive' })
          if (type === 'all' || type === 'indirect') for await (const cid of indirectPins(deps.store, signal)) listed.push({ Cid: cid.toString(), Type: 'indirect' })
        }
        const body = stream
          ? listed.map(p => JSON.stringify(p) + '\n').join('')
          : JSON.stringify({ Keys: Object.fromEntries(listed.map(p => [p.Cid, { Type: p.Type }])) }) + '\n'
        return await reply.header('content-type', 'application/json').header('x-chunked-output', '1').send(body)
      } catch (err) {
        await sendRpcError(reply, err)
      }
    })

    api.post('/pin/rm', async (request, reply) => {
      try {
        const query = request.query as Query
        if (!flag(query, 'recursive', true)) throw ValidationError.field('recursive', 'only recursive pins exist here')
        const args = argList(query)
        if (args.length === 0) throw ValidationError.field('arg', 'argument "ipfs-path" is required')
        // every argument is checked before any pin is removed: a call that fails changes nothing
        const targets: CID[] = []
        for (const arg of args) {
          const ref = parseIpfsPath(arg)
          const target = await deps.store.resolve(ref.cid, ref.path)
          if (!(await isPinnedRoot(deps.store, target))) throw new RpcFailure(`${arg} is not pinned or pinned indirectly`)
          targets.push(target)
        }
        for (const target of targets) await deps.store.unpin(target)
        return await reply.header('content-type', 'application/json').send(JSON.stringify({ Pins: targets.map(t => t.toString()) }) + '\n')
      } catch (err) {
        await sendRpcError(reply, err)
      }
    })

    api.post('/id', async (_request, reply) => {
      return await reply.send({ ID: deps.peerId ?? '', PublicKey: '', Addresses: [], AgentVersion: agentVersion, Protocols: [] })
    })

    api.post('/version', async (_request, reply) => {
      return await reply.send({ Version: agentVersion, Commit: '', Repo: '', System: `${process.arch}/${process.platform}`, Golang: '' })
    })
  }, { prefix: RPC_PREFIX })
}
