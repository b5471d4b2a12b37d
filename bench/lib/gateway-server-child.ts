/**
 * "Process A" of the gateway and model-pack benchmarks: a HeliaStore of its own, served over HTTP with
 * createIpfsServer on 127.0.0.1 (trustless gateway + Kubo RPC subset), driven by the benchmark over
 * stdin/stdout, one JSON object a line:
 *
 *   { id, op: 'open', repo }                   -> { id, ok: true, url }  closes what is open (deleting its repository),
 *                                                 starts a store at `repo` and serves it on a free port
 *   { id, op: 'add', size, seed, cidVersion }  -> { id, ok: true, cid, ms }  adds seededBytes(size, seed), pinned
 *   { id, op: 'publish', folder }              -> { id, ok: true, cid, ms }  publishModel(store, folder), timed here
 *   anything failing                           -> { id, ok: false, error }
 *
 * The store and server are stopped and the repository deleted when stdin closes (the benchmark exiting,
 * or dying), on SIGTERM/SIGINT, or on `{ op: 'exit' }`. Nothing but protocol lines goes to stdout.
 *
 *   node --import tsx bench/lib/gateway-server-child.ts
 */
import { rm } from 'node:fs/promises'
import { createInterface } from 'node:readline'
import { HeliaStore } from '../../src/content/helia-store.js'
import { publishModel } from '../../src/content/model-pack.js'
import { installPromiseWithResolvers } from '../../src/content/polyfills.js'
import { createIpfsServer, type IpfsServer } from '../../src/server/create-ipfs-server.js'
import { seededBytes } from '../../test/content/seeded-bytes.js'

installPromiseWithResolvers()

interface Request {
  id: number
  op: 'open' | 'add' | 'publish' | 'exit'
  repo?: string
  size?: number
  seed?: number
  cidVersion?: 0 | 1
  folder?: string
}

let store: HeliaStore | undefined
let server: IpfsServer | undefined

async function closeCurrent (): Promise<void> {
  const s = server
  const st = store
  server = undefined
  store = undefined
  await s?.close().catch(() => {})
  await st?.stop().catch(() => {})
  if (st !== undefined) await rm(st.repo, { recursive: true, force: true })
}

function running (): HeliaStore {
  if (store === undefined) throw new Error('no store is open: send { op: "open", repo } first')
  return store
}

async function handle (req: Request): Promise<Record<string, unknown>> {
  switch (req.op) {
    case 'open': {
      await closeCurrent()
      if (typeof req.repo !== 'string') throw new Error('open needs repo')
      store = new HeliaStore({ repo: req.repo })
      await store.start()
      server = await createIpfsServer({ store, host: '127.0.0.1', port: 0 })
      return { url: server.url }
    }
    case 'add': {
      const bytes = seededBytes(Number(req.size), req.seed ?? 42)
      const t = performance.now()
      const cid = await running().put(bytes, { cidVersion: req.cidVersion ?? 0, pin: true })
      return { cid: cid.toString(), ms: performance.now() - t }
    }
    case 'publish': {
      const s = running()
      const t = performance.now()
      const { cid } = await publishModel(s, String(req.folder))
      return { cid, ms: performance.now() - t }
    }
    case 'exit':
      return {}
  }
}

let exiting = false
async function shutdown (code: number): Promise<void> {
  if (exiting) return
  exiting = true
  await closeCurrent().catch(() => {})
  process.exit(code)
}

process.on('SIGTERM', () => { void shutdown(143) })
process.on('SIGINT', () => { void shutdown(130) })

const lines = createInterface({ input: process.stdin })
// one request at a time, in order
let queue: Promise<void> = Promise.resolve()
lines.on('line', line => {
  if (line.trim() === '') return
  queue = queue.then(async () => {
    let req: Request
    try {
      req = JSON.parse(line) as Request
    } catch {
      process.stdout.write(JSON.stringify({ id: -1, ok: false, error: `not JSON: ${line.slice(0, 80)}` }) + '\n')
      return
    }
    try {
      const answer = await handle(req)
      process.stdout.write(JSON.stringify({ id: req.id, ok: true, ...answer }) + '\n')
      if (req.op === 'exit') await shutdown(0)
    } catch (err) {
      process.stdout.write(JSON.stringify({ id: req.id, ok: false, error: (err as Error)?.stack ?? String(err) }) + '\n')
    }
  })
})
lines.on('close', () => { void queue.then(async () => await shutdown(0)) })
