/**
 * A standalone HTTP server exposing an embedded store as a trustless gateway (`/ipfs/…`) and the Kubo
 * RPC subset (`/api/v0/…`), listening on 127.0.0.1 by default. The main server can register the same
 * routes on its own Fastify instance instead (`registerGatewayRoutes`, `registerKuboRpcRoutes`).
 * What is refused before any route runs (a path fastify cannot decode, a request Node's HTTP parser
 * refuses) is answered here in the routes' error shapes too; a host server answers those itself.
 */
import { STATUS_CODES, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import Fastify, { type ConnectionError, type FastifyInstance } from 'fastify'
import type { Logger } from '../logging/logger.js'
import type { HeliaStore } from '../content/helia-store.js'
import { NotFoundError, ValidationError } from '../errors.js'
import { errorBody, isRpcCommand, registerGatewayRoutes, registerKuboRpcRoutes, rpcError, sendErrorBody, sendRpcError } from './ipfs-routes.js'

export interface IpfsServerInit {
  store: HeliaStore
  /** Default 127.0.0.1. */
  host?: string
  /** Default 0 (any free port). */
  port?: number
  logger?: Logger
  /** Serve the gateway routes (default true). */
  gateway?: boolean
  /** Serve the Kubo RPC routes (default true). */
  rpc?: boolean
  /** Peer ID for `/api/v0/id`. Default: a fresh Ed25519 identity for this server's lifetime. */
  peerId?: string
  /**
   * A connection with no traffic either way for this long is closed (default 60 s): a client that
   * stalls in the middle of an upload must not hold the store (its import holds the store's lock).
   */
  idleTimeoutMs?: number
}

export interface IpfsServer {
  app: FastifyInstance
  /** `http://host:port`, without a trailing slash. */
  url: string
  close: () => Promise<void>
}

const DEFAULT_IDLE_TIMEOUT_MS = 60_000

/** A request Node's HTTP parser refused, before fastify saw it: a 4xx with Node's reason. */
class BadHttpRequest extends Error {
  constructor (message: string, readonly statusCode: number) {
    super(message)
    this.name = 'BadHttpRequest'
  }
}

/** The status Node itself would answer (431, 413, 408, else 400), with what it says. */
function badHttpRequest (err: ConnectionError & { reason?: string }): BadHttpRequest {
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW': return new BadHttpRequest('the request\'s headers are too large', 431)
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW': return new BadHttpRequest('the request\'s chunk extensions are too large', 413)
    case 'ERR_HTTP_REQUEST_TIMEOUT': return new BadHttpRequest('the request took too long to arrive', 408)
    default: return new BadHttpRequest(`malformed HTTP request: ${err.reason ?? err.message}`, 400)
  }
}

/** The target of the request line at the start of what the parser was reading, if it is there. */
function requestTarget (err: ConnectionError): string | undefined {
  const packet: unknown = err.rawPacket
  if (!Buffer.isBuffer(packet)) return undefined
  return /^[A-Z]+ (\S+) HTTP\//.exec(packet.toString('latin1', 0, 8192))?.[1]
}

/**
 * Answers what Node's HTTP parser refused (a bad header byte, headers too large, Content-Length with
 * Transfer-Encoding, a body cut short) in our error shapes, on the raw socket (there is no request to
 * reply to), then closes the connection: what follows on it cannot be parsed. `inFlight` is the
 * request the connection was carrying, if any: its URL picks the shape when the bad bytes are its
 * body, and a response of its already under way is not cut into.
 */
function answerClientError (err: ConnectionError, socket: Socket, inFlight: { url: string, res: ServerResponse } | undefined, rpc: boolean): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return // the client is gone
  const pending = inFlight !== undefined && !inFlight.res.writableEnded ? inFlight : undefined
  if (pending?.res.headersSent === true || !socket.writable) { socket.destroy(); return }
  const bad = badHttpRequest(err)
  const url = requestTarget(err) ?? pending?.url
  const body = JSON.stringify(rpc && url !== undefined && isRpcCommand(url) ? rpcError(bad).body : errorBody(bad))
  socket.end(`HTTP/1.1 ${bad.statusCode} ${STATUS_CODES[bad.statusCode] ?? ''}\r\nContent-Type: application/json; charset=utf-8\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n${body}`, () => { socket.destroy() })
}

async function ephemeralPeerId (): Promise<string> {
  const [{ generateKeyPair }, { peerIdFromPrivateKey }] = await Promise.all([import('@libp2p/crypto/keys'), import('@libp2p/peer-id')])
  return peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
}

export async function createIpfsServer (init: IpfsServerInit): Promise<IpfsServer> {
  if (init === null || typeof init !== 'object') throw ValidationError.field('init', `expected an object with a store, got ${init === null ? 'null' : typeof init}`)
  // an embedded store (HeliaStore): what the routes read blocks from and write to
  if (typeof init.store?.blockstore !== 'object' || typeof init.store?.putBlock !== 'function') throw ValidationError.field('init.store', 'expected the embedded store (a HeliaStore)')
  const host = init.host ?? '127.0.0.1'
  const idleTimeoutMs = init.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS
  const rpc = init.rpc !== false
  // the request each connection carries, for answerClientError
  const inFlight = new WeakMap<Socket, { url: string, res: ServerResponse }>()
  const options = {
    forceCloseConnections: true,
    connectionTimeout: idleTimeoutMs,
    // what fastify refuses before routing (a path it cannot decode), in the shape of the routes
    frameworkErrors: (err: Error, request: { url: string }, reply: unknown) => {
      void (rpc && isRpcCommand(request.url) ? sendRpcError : sendErrorBody)(reply as Parameters<typeof sendErrorBody>[0], err)
    },
    clientErrorHandler: (err: ConnectionError, socket: Socket) => { answerClientError(err, socket, inFlight.get(socket), rpc) }
  }
  const app: FastifyInstance = init.logger === undefined
    ? Fastify({ logger: false, ...options })
    : Fastify({ loggerInstance: init.logger, ...options }) as unknown as FastifyInstance
  app.server.on('request', (req, res) => { inFlight.set(req.socket, { url: req.url ?? '', res }) })
  // whatever fails outside the routes' own handlers (an unknown URL included) answers `{ error: { name, message } }`
  app.setErrorHandler(async (err, _request, reply) => { await sendErrorBody(reply, err) })
  app.setNotFoundHandler(async (request, reply) => {
    await sendErrorBody(reply, new NotFoundError(`no route for ${request.method} ${request.url.split('?')[0]}`))
  })
  const deps = { blockstore: init.store.blockstore, store: init.store, peerId: init.peerId ?? await ephemeralPeerId(), agentVersion: 'ipfs-accelerate/0.1.0' }
  if (init.gateway !== false) registerGatewayRoutes(app, deps)
  if (rpc) registerKuboRpcRoutes(app, deps)
  await app.listen({ host, port: init.port ?? 0 })
  const address = app.server.address()
  const port = typeof address === 'object' && address !== null ? address.port : init.port ?? 0
  const shownHost = host.includes(':') ? `[${host}]` : host
  return {
    app,
    url: `http://${shownHost}:${port}`,
    close: async () => { await app.close() }
  }
}
