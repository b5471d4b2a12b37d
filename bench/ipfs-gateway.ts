/**
 * Trustless gateway fetches between two local processes. Process A (bench/lib/gateway-server-child.ts)
 * adds N MiB to its own HeliaStore and serves it with createIpfsServer on 127.0.0.1; this process (B)
 * reads it back with GatewayStore, every block verified against its CID, in raw mode (one
 * `?format=raw` request per block, 8 ahead) and in CAR mode (one `?format=car` response, blocks verified
 * as they stream), and, in the same run, without verification: a plain `GET /ipfs/{cid}` of the file
 * bytes (the server walks the DAG), drained, and the same with sha-256 of the stream. sha-256 of the
 * bytes in memory is the hashing reference. A last row drains the CAR response without parsing it (what
 * the server and the connection cost the CAR mode). Each cell is the median over runs, cases interleaved;
 * MB/s are file bytes (MB = 10^6 bytes) per second, also for the CAR rows.
 *
 *   npx tsx bench/ipfs-gateway.ts [--sizes 16,64,256] [--runs 7] [--cid-version 0] [--dir <folder>]
 *
 * "verified / plain" is the verified fetch's rate over the plain download's rate (1.0: verification is
 * free). Both sides verify what they read from disk (the server's store checks each block it reads), so
 * the plain download is not free of hashing on the server; the verified fetch hashes again in B.
 * All clients use Node's fetch (undici), as GatewayStore does.
 */
import { createHash } from 'node:crypto'
import { mkdirSync, rmSync } from 'node:fs'
import path from 'node:path'
import { CID } from 'multiformats/cid'
import { defaultRepoPath } from '../src/content/helia-store.js'
import { GatewayStore } from '../src/content/gateway-store.js'
import { installPromiseWithResolvers } from '../src/content/polyfills.js'
import { seededBytes } from '../test/content/seeded-bytes.js'
import { median, fmt, shuffle } from './lib/stats.js'
import { markdownTable } from './lib/table.js'
import { printHeader, argNumber, argValue, argList } from './lib/env.js'
import { onInterrupt, startServerProcess, type ServerProcess } from './lib/server-process.js'

const MiB = 1024 * 1024
const baseDir = argValue('dir') ?? path.join(path.dirname(defaultRepoPath()), `bench-gateway-${process.pid}`)

function now (): number {
  return performance.now()
}

interface Fetched {
  bytes: number
  /** sha-256 hex of the stream, when asked for. */
  digest?: string
}

async function drain (source: AsyncIterable<Uint8Array>, hash: boolean): Promise<Fetched> {
  const h = hash ? createHash('sha256') : undefined
  let bytes = 0
  for await (const chunk of source) {
    bytes += chunk.byteLength
    h?.update(chunk)
  }
  return { bytes, digest: h?.digest('hex') }
}

/** The file bytes from `GET {url}/ipfs/{cid}` (or the CAR with `?format=car`), unverified. */
async function plainGet (url: string, cid: string, hash: boolean, query = ''): Promise<Fetched> {
  const res = await fetch(`${url}/ipfs/${cid}${query}`)
  if (!res.ok || res.body === null) throw new Error(`GET /ipfs/${cid}: HTTP ${res.status}`)
  return await drain(res.body as unknown as AsyncIterable<Uint8Array>, hash)
}

type CaseName = 'GatewayStore raw (verified)' | 'GatewayStore CAR (verified)' | 'plain GET (unverified)' | 'plain GET + sha-256 of the stream' | 'GET ?format=car, drained unparsed'
const CASES: CaseName[] = ['GatewayStore raw (verified)', 'GatewayStore CAR (verified)', 'plain GET (unverified)', 'plain GET + sha-256 of the stream', 'GET ?format=car, drained unparsed']

async function main (): Promise<void> {
  installPromiseWithResolvers()
  const sizes = argList('sizes', [16, 64, 256])
  const runs = argNumber('runs', 7)
  const cidVersion = argNumber('cid-version', 0) === 1 ? 1 : 0
  mkdirSync(baseDir, { recursive: true })
  onInterrupt(() => rmSync(baseDir, { recursive: true, force: true }))
  printHeader('ipfs gateway: verified fetch between two local processes vs plain HTTP download', import.meta.url, [
    `runs: ${runs} (median), CIDv${cidVersion}, process A's repository in ${baseDir}`,
    'A: HeliaStore + createIpfsServer on 127.0.0.1 (child process); B (this process): GatewayStore (no cache) or plain fetch',
    'raw = one ?format=raw request per block, 8 ahead per DAG level; CAR = one ?format=car&dag-scope=entity response'
  ])
  const rows: Array<Array<string | number>> = []
  let server: ServerProcess | undefined
  try {
    server = await startServerProcess()
    const { url } = await server.request<{ url: string }>('open', { repo: path.join(baseDir, 'repo-a') })
    const stores = {
      raw: new GatewayStore({ url, mode: 'raw', timeoutMs: 120_000, retries: 0 }),
      car: new GatewayStore({ url, mode: 'car', timeoutMs: 120_000, retries: 0 })
    }
    for (const size of sizes) {
      const bytes = seededBytes(size * MiB, size)
      const expected = createHash('sha256').update(bytes).digest('hex')
      const { cid: cidText, ms: addMs } = await server.request<{ cid: string, ms: number }>('add', { size: size * MiB, seed: size, cidVersion })
      const cid = CID.parse(cidText)
      const run = async (name: CaseName, hash: boolean): Promise<Fetched> => {
        switch (name) {
          case 'GatewayStore raw (verified)': return await drain(stores.raw.cat(cid), hash)
          case 'GatewayStore CAR (verified)': return await drain(stores.car.cat(cid), hash)
          case 'plain GET (unverified)': return await plainGet(url, cidText, hash)
          case 'plain GET + sha-256 of the stream': return await plainGet(url, cidText, true)
          case 'GET ?format=car, drained unparsed': return await plainGet(url, cidText, hash, '?format=car&dag-scope=entity')
        }
      }
      // warm-up (JIT, connections, page cache), checking every path returns exactly the bytes added
      let carBytes = 0
      for (const name of CASES) {
        const got = await run(name, true)
        if (name === 'GET ?format=car, drained unparsed') {
          carBytes = got.bytes
          if (carBytes < bytes.byteLength) throw new Error(`the CAR has ${carBytes} bytes, fewer than the file`)
          continue
        }
        if (got.bytes !== bytes.byteLength || got.digest !== expected) throw new Error(`${name}: got ${got.bytes} bytes with sha-256 ${got.digest ?? '?'}, expected ${bytes.byteLength} / ${expected}`)
      }
      const samples = new Map(CASES.map(c => [c, [] as number[]]))
      const sha: number[] = []
      for (let r = 0; r < runs; r++) {
        for (const name of shuffle([...CASES, 'sha' as const], r + 1)) {
          const t = now()
          if (name === 'sha') {
            createHash('sha256').update(bytes).digest()
            sha.push(now() - t)
            continue
          }
          const got = await run(name, false)
          samples.get(name)?.push(now() - t)
          if (got.bytes !== (name === 'GET ?format=car, drained unparsed' ? carBytes : bytes.byteLength)) throw new Error(`${name} returned ${got.bytes} bytes, expected ${bytes.byteLength}`)
        }
      }
      const mb = size * MiB / 1e6
      const rate = (ms: number): number => mb / (ms / 1000)
      const plainMs = median(samples.get('plain GET (unverified)') as number[])
      const shaMs = median(sha)
      for (const [name, times] of samples) {
        const ms = median(times)
        rows.push([name, `${size} MiB`, fmt(rate(ms)), fmt(ms / 1000, 3), `${(plainMs / ms).toFixed(2)}x`, `${(shaMs / ms).toFixed(2)}x`])
      }
      rows.push(['sha-256 in memory (reference)', `${size} MiB`, fmt(rate(shaMs)), fmt(shaMs / 1000, 3), '–', '1.00x'])
      console.error(`${size} MiB: added in A in ${fmt(addMs / 1000)} s; done`)
    }
  } finally {
    await server?.close()
    rmSync(baseDir, { recursive: true, force: true })
  }
  console.log(markdownTable(['case', 'size', 'MB/s', 'seconds', 'rate / plain GET', 'rate / sha-256'], rows))
}

await main()
