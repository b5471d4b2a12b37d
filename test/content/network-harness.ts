/**
 * Real servers on 127.0.0.1 for the network stores' tests: the project's IPFS server backed by a fresh
 * HeliaStore, a server that serves wrong bytes for one CID (a real server misbehaving), one that
 * accepts requests and never answers, and a closed port.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import net from 'node:net'
import { Readable } from 'node:stream'
import Fastify from 'fastify'
import type { CID } from 'multiformats/cid'
import { HeliaStore } from '../../src/content/helia-store.js'
import { createIpfsServer, type IpfsServer } from '../../src/server/create-ipfs-server.js'
import { walkDag } from '../../src/content/unixfs-reader.js'
import { parseIpfsPath } from '../../src/content/cid.js'

export interface Backend {
  dir: string
  store: HeliaStore
  /** A second store used as the network stores' block cache. */
  cache: HeliaStore
  server: IpfsServer
  close: () => Promise<void>
}

export async function startBackend (): Promise<Backend> {
  const dir = await mkdtemp(path.join(tmpdir(), 'ipfs-accelerate-net-'))
  const store = new HeliaStore({ repo: path.join(dir, 'backend') })
  const cache = new HeliaStore({ repo: path.join(dir, 'cache') })
  const server = await createIpfsServer({ store })
  return {
    dir,
    store,
    cache,
    server,
    close: async () => {
      await server.close()
      await store.stop()
      await cache.stop()
      await rm(dir, { recursive: true, force: true })
    }
  }
}

function flip (bytes: Uint8Array): Buffer {
  const out = Buffer.from(bytes)
  out[out.length >> 1] ^= 0xff
  return out
}

/**
 * A gateway and Kubo RPC server that answers from `store` but flips a byte of `bad`'s block in every
 * response (raw blocks, CARs, block/get).
 */
export async function startCorruptingServer (store: HeliaStore, bad: CID): Promise<{ url: string, close: () => Promise<void> }> {
  const app = Fastify({ logger: false, forceCloseConnections: true })
  const blockFor = async (cid: CID): Promise<Buffer> => {
    const bytes = await store.getBlock(cid)
    return cid.equals(bad) ? flip(bytes) : Buffer.from(bytes)
  }
  app.get('/ipfs/*', async (request, reply) => {
    const { cid } = parseIpfsPath((request.params as { '*': string })['*'])
    const format = (request.query as { format?: string }).format
    if (format === 'car') {
      const { CarWriter } = await import('@ipld/car/writer')
      const { writer, out } = CarWriter.create([cid])
      void (async () => {
        for await (const block of walkDag(cid, async c => await store.getBlock(c))) {
          await writer.put({ cid: block.cid, bytes: block.cid.equals(bad) ? flip(block.bytes) : block.bytes })
        }
        await writer.close()
      })()
      return await reply.header('content-type', 'application/vnd.ipld.car').send(Readable.from(out))
    }
    return await reply.header('content-type', 'application/vnd.ipld.raw').send(await blockFor(cid))
  })
  app.post('/api/v0/block/get', async (request, reply) => {
    const { cid } = parseIpfsPath((request.query as { arg: string }).arg)
    return await reply.header('content-type', 'text/plain').send(await blockFor(cid))
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const port = (app.server.address() as net.AddressInfo).port
  return { url: `http://127.0.0.1:${port}`, close: async () => { await app.close() } }
}

/** A server that accepts connections and requests and never answers. */
export async function startSilentServer (): Promise<{ url: string, close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>()
  const server = net.createServer(socket => { sockets.add(socket); socket.on('close', () => sockets.delete(socket)); socket.on('error', () => {}) })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as net.AddressInfo).port
  return {
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise<void>(resolve => server.close(() => resolve()))
    }
  }
}

/** A URL on 127.0.0.1 where nothing listens (a port that was just closed). */
export async function closedPortUrl (): Promise<string> {
  const server = net.createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as net.AddressInfo).port
  await new Promise<void>(resolve => server.close(() => resolve()))
  return `http://127.0.0.1:${port}`
}
