/**
 * A standalone HTTP server exposing an embedded store as a trustless gateway (`/ipfs/…`) and the Kubo
 * RPC subset (`/api/v0/…`), listening on 127.0.0.1 by default. The main server can register the same
 * routes on its own Fastify instance instead (`registerGatewayRoutes`, `registerKuboRpcRoutes`).
 */
import Fastify, { type FastifyInstance } from 'fastify'
import type { Logger } from '../logging/logger.js'
import type { HeliaStore } from '../content/helia-store.js'
import { NotFoundError } from '../errors.js'
import { registerGatewayRoutes, registerKuboRpcRoutes, sendErrorBody } from './ipfs-routes.js'

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

async function ephemeralPeerId (): Promise<string> {
  const [{ generateKeyPair }, { peerIdFromPrivateKey }] = await Promise.all([import('@libp2p/crypto/keys'), import('@libp2p/peer-id')])
  return peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
}

export async function createIpfsServer (init: IpfsServerInit): Promise<IpfsServer> {
  const host = init.host ?? '127.0.0.1'
  const idleTimeoutMs = init.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS
  const app: FastifyInstance = init.logger === undefined
    ? Fastify({ logger: false, forceCloseConnections: true, connectionTimeout: idleTimeoutMs })
    : Fastify({ loggerInstance: init.logger, forceCloseConnections: true, connectionTimeout: idleTimeoutMs }) as unknown as FastifyInstance
  // whatever fails outside the routes' own handlers (an unknown URL included) answers `{ error: { name, message } }`
  app.setErrorHandler(async (err, _request, reply) => { await sendErrorBody(reply, err) })
  app.setNotFoundHandler(async (request, reply) => {
    await sendErrorBody(reply, new NotFoundError(`no route for ${request.method} ${request.url.split('?')[0]}`))
  })
  const deps = { blockstore: init.store.blockstore, store: init.store, peerId: init.peerId ?? await ephemeralPeerId(), agentVersion: 'ipfs-accelerate/0.1.0' }
  if (init.gateway !== false) registerGatewayRoutes(app, deps)
  if (init.rpc !== false) registerKuboRpcRoutes(app, deps)
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
