/**
 * Publishing and pulling a ~50 MB model pack (a tiny random-weight BERT built for the run), between two
 * local processes, against a plain copy of the folder (fs.cp) and sha-256 of all its bytes, in the same
 * run. Each cell is the median over runs; within a run the pull, copy and hashing cases are interleaved.
 *
 *   npx tsx bench/model-pack.ts [--runs 7] [--dir <folder>]
 *
 * publish: `publishModel(storeA, folder)` in process A (bench/lib/gateway-server-child.ts), into a fresh
 *   repository each run (staging as hard links, manifest, import, pin), timed inside A.
 * pull: in this process, a fresh IpfsAccelerate each run, configured with
 *   `ipfs: { repo: <fresh B>, gateway: <A's url>, enable_local_gateway: false }` and a fresh
 *   `hub.cache_dir`, timing `acc.pullModel(cid)`: start the embedded store, fetch the DAG as one CAR
 *   through the gateway (every block verified, stored in B), pin, then export the files from B into the
 *   cache (verified again).
 * pull, by phase: the same steps called one by one (what `acc.pullModel` does), in separate runs.
 * block by block: for comparison, the pull as it was before the CAR: the DAG walked through the router's
 *   getBlock (one raw-block request each, 8 ahead, verified, stored in B), pin with the links, export.
 * walk, raw / CAR: for comparison, the pack's DAG through A's gateway with a bare GatewayStore, verified,
 *   stored nowhere: raw blocks 8 ahead, or one CAR (`fetchDag`): the network part of a pull alone.
 * sha-256: every file read from the page cache in 1 MiB pieces and hashed (what any verifying reader pays).
 */
import { mkdirSync, rmSync } from 'node:fs'
import fs from 'node:fs/promises'
import path from 'node:path'
import { CID } from 'multiformats/cid'
import { IpfsAccelerate } from '../src/accelerator.js'
import { defaultRepoPath } from '../src/content/helia-store.js'
import { GatewayStore } from '../src/content/gateway-store.js'
import { pullModel } from '../src/content/model-pack.js'
import { installPromiseWithResolvers } from '../src/content/polyfills.js'
import { blockLinks, walkDag } from '../src/content/unixfs-reader.js'
import { buildTinyModel } from '../src/models/tiny/index.js'
import { median, fmt, shuffle } from './lib/stats.js'
import { sha256File } from './lib/sha256-file.js'
import { markdownTable } from './lib/table.js'
import { printHeader, argNumber, argValue } from './lib/env.js'
import { onInterrupt, startServerProcess, type ServerProcess } from './lib/server-process.js'

const MiB = 1024 * 1024
const baseDir = argValue('dir') ?? path.join(path.dirname(defaultRepoPath()), `bench-model-pack-${process.pid}`)
/** A tiny BERT of ~51.8 MB (49.4 MiB): 384 wide, 4 layers, 14336 tokens. */
const MODEL = { hiddenSize: 384, numLayers: 4, numHeads: 8, vocabSize: 14336, maxPositions: 512, seed: 42 }

function now (): number {
  return performance.now()
}

async function listFiles (dir: string, prefix = ''): Promise<Array<{ rel: string, size: number }>> {
  const out: Array<{ rel: string, size: number }> = []
  for (const entry of await fs.readdir(path.join(dir, prefix), { withFileTypes: true })) {
    const rel = prefix === '' ? entry.name : `${prefix}/${entry.name}`
    if (entry.isDirectory()) out.push(...await listFiles(dir, rel))
    else out.push({ rel, size: (await fs.stat(path.join(dir, rel))).size })
  }
  return out.sort((a, b) => a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0)
}

/** sha-256 of every file (read from the page cache), one digest per file. */
async function hashFolder (dir: string, files: Array<{ rel: string }>): Promise<Map<string, string>> {
  const out = new Map<string, string>()
  for (const f of files) out.set(f.rel, await sha256File(path.join(dir, f.rel)))
  return out
}

let counter = 0
const fresh = (what: string): string => path.join(baseDir, `${what}-${counter++}`)

function accelerator (gateway: string, repo: string, cacheDir: string): IpfsAccelerate {
  return new IpfsAccelerate({
    ipfs: { repo, gateway, enable_local_gateway: false, timeout: 120, retry_count: 0 },
    hub: { cache_dir: cacheDir },
    logging: { level: 'SILENT' }
  }, null, { env: {} })
}

/** `acc.pullModel(cid)` into a fresh repository and cache; returns ms and the pulled folder (deleted by the caller). */
async function pullOnce (gateway: string, cid: string): Promise<{ ms: number, dir: string, cleanup: () => void }> {
  const repo = fresh('repo-b')
  const cache = fresh('cache-b')
  const acc = accelerator(gateway, repo, cache)
  try {
    const t = now()
    const pulled = await acc.pullModel(cid)
    const ms = now() - t
    if (pulled.cached) throw new Error('the pull was answered from the cache: not a fresh pull')
    return { ms, dir: pulled.dir, cleanup: () => { rmSync(repo, { recursive: true, force: true }); rmSync(cache, { recursive: true, force: true }) } }
  } finally {
    await acc.stop()
  }
}

const PHASES = ['start the embedded store B and its Helia node (acc.content())', 'router.pin: fetch the DAG as one CAR, verify + store every block, pin in B', 'export from B into the cache (pullModel: reads and verifies every block, writes the files, checks the manifest)'] as const

/** Runs `fn` with a fresh IpfsAccelerate (fresh repository B and cache) reading through `gateway`; cleans up. */
async function withFreshPuller<T> (gateway: string, fn: (acc: IpfsAccelerate, cache: string) => Promise<T>): Promise<T> {
  const repo = fresh('repo-b')
  const cache = fresh('cache-b')
  const acc = accelerator(gateway, repo, cache)
  try {
    return await fn(acc, cache)
  } finally {
    await acc.stop()
    rmSync(repo, { recursive: true, force: true })
    rmSync(cache, { recursive: true, force: true })
  }
}

/** The steps of `acc.pullModel`, one by one. */
async function pullPhases (gateway: string, cid: string): Promise<number[]> {
  return await withFreshPuller(gateway, async (acc, cache) => {
    const root = CID.parse(cid)
    const t0 = now()
    const router = await acc.content()
    const t1 = now()
    await router.pin(root)
    const t2 = now()
    const pulled = await pullModel(router.helia, root, { cacheDir: cache })
    const t3 = now()
    if (pulled.cached) throw new Error('the pull was answered from the cache: not a fresh pull')
    return [t1 - t0, t2 - t1, t3 - t2]
  })
}

/** A pull as it was before the CAR: the walk through the router's getBlock (raw blocks), pin with links, export. */
async function pullBlockByBlock (gateway: string, cid: string): Promise<number> {
  return await withFreshPuller(gateway, async (acc, cache) => {
    const root = CID.parse(cid)
    const t = now()
    const router = await acc.content()
    const links = new Map<string, CID[]>()
    for await (const block of walkDag(root, async (c, o) => await router.getBlock(c, o))) {
      links.set(block.cid.toString(), blockLinks(block.cid, block.bytes))
    }
    await router.helia.pin(root, { links })
    const pulled = await pullModel(router.helia, root, { cacheDir: cache })
    if (pulled.cached) throw new Error('the pull was answered from the cache: not a fresh pull')
    return now() - t
  })
}

async function main (): Promise<void> {
  installPromiseWithResolvers()
  const runs = argNumber('runs', 7)
  mkdirSync(baseDir, { recursive: true })
  onInterrupt(() => rmSync(baseDir, { recursive: true, force: true }))
  let server: ServerProcess | undefined
  const rows: Array<Array<string | number>> = []
  const phaseRows: Array<Array<string | number>> = []
  try {
    const folder = path.join(baseDir, 'model')
    await buildTinyModel('bert', folder, MODEL)
    const files = await listFiles(folder)
    const total = files.reduce((n, f) => n + f.size, 0)
    const expected = await hashFolder(folder, files)
    printHeader('model pack: publish and pull of a ~50 MB model between two local processes', import.meta.url, [
      `runs: ${runs} (median), all folders in ${baseDir}`,
      `model: tiny BERT ${JSON.stringify(MODEL)}, ${files.length} files, ${fmt(total / 1e6)} MB (${fmt(total / MiB)} MiB); the pack adds a manifest`,
      'publish: publishModel into a fresh store A (process A, CIDv0); pull: acc.pullModel(cid) in a fresh IpfsAccelerate with a fresh repo B and cache, reading through A\'s gateway (one CAR, each block verified)'
    ])
    server = await startServerProcess()
    const publish = async (): Promise<{ url: string, cid: string, ms: number }> => {
      const { url } = await (server as ServerProcess).request<{ url: string }>('open', { repo: fresh('repo-a') })
      const { cid, ms } = await (server as ServerProcess).request<{ cid: string, ms: number }>('publish', { folder })
      return { url, cid, ms }
    }

    // warm-up (imports, JIT), checking the pulled folder holds exactly the source's bytes
    const first = await publish()
    const warm = await pullOnce(first.url, first.cid)
    const got = await hashFolder(warm.dir, files)
    for (const [rel, digest] of expected) if (got.get(rel) !== digest) throw new Error(`pulled ${rel} differs from the source`)
    warm.cleanup()
    await pullPhases(first.url, first.cid)
    await pullBlockByBlock(first.url, first.cid)

    const samples = { publish: [] as number[], pull: [] as number[], blocks: [] as number[], cp: [] as number[], sha: [] as number[], walk: [] as number[], car: [] as number[] }
    const phases: number[][] = PHASES.map(() => [])
    for (let r = 0; r < runs; r++) {
      const p = await publish()
      if (p.cid !== first.cid) throw new Error(`publish gave ${p.cid}, earlier ${first.cid}: not deterministic`)
      samples.publish.push(p.ms)
      for (const name of shuffle(['pull', 'blocks', 'phases', 'cp', 'sha', 'walk', 'car'] as const, r + 1)) {
        if (name === 'walk') {
          const gateway = new GatewayStore({ url: p.url, mode: 'raw', timeoutMs: 120_000, retries: 0 })
          const t = now()
          let n = 0
          for await (const block of walkDag(CID.parse(p.cid), async (c, o) => await gateway.getBlock(c, o))) n += block.bytes.byteLength
          samples.walk.push(now() - t)
          if (n < total) throw new Error(`the walk saw ${n} bytes, fewer than the ${total} of the files`)
        } else if (name === 'car') {
          const gateway = new GatewayStore({ url: p.url, timeoutMs: 120_000, retries: 0 })
          const t = now()
          let n = 0
          for await (const block of gateway.fetchDag(CID.parse(p.cid))) n += block.bytes.byteLength
          samples.car.push(now() - t)
          if (n < total) throw new Error(`the CAR held ${n} bytes, fewer than the ${total} of the files`)
        } else if (name === 'blocks') {
          samples.blocks.push(await pullBlockByBlock(p.url, p.cid))
        } else if (name === 'pull') {
          const pulled = await pullOnce(p.url, p.cid)
          samples.pull.push(pulled.ms)
          pulled.cleanup()
        } else if (name === 'phases') {
          const ms = await pullPhases(p.url, p.cid)
          ms.forEach((v, i) => phases[i].push(v))
        } else if (name === 'cp') {
          const dest = fresh('copy')
          const t = now()
          await fs.cp(folder, dest, { recursive: true })
          samples.cp.push(now() - t)
          rmSync(dest, { recursive: true, force: true })
        } else {
          const t = now()
          await hashFolder(folder, files)
          samples.sha.push(now() - t)
        }
      }
    }
    const mb = total / 1e6
    const shaMs = median(samples.sha)
    const cpMs = median(samples.cp)
    const row = (name: string, times: number[]): Array<string | number> => {
      const ms = median(times)
      return [name, fmt(ms / 1000, 3), fmt(mb / (ms / 1000)), `${(cpMs / ms).toFixed(2)}x`, `${(shaMs / ms).toFixed(2)}x`]
    }
    rows.push(row('publishModel into a fresh store A', samples.publish))
    rows.push(row('acc.pullModel(cid) into a fresh store B, through A\'s gateway', samples.pull))
    rows.push(row('for comparison: the same pull block by block (walk through the router, raw blocks 8 ahead; the path before the CAR)', samples.blocks))
    rows.push(row('plain copy of the folder (fs.cp)', samples.cp))
    rows.push(row('sha-256 of all its bytes (read in 1 MiB pieces + hash)', samples.sha))
    rows.push(row('for comparison: walk the pack through A\'s gateway, GatewayStore raw, verified, not stored', samples.walk))
    rows.push(row('for comparison: the pack as one CAR from A\'s gateway, GatewayStore.fetchDag, verified, not stored', samples.car))
    const phaseTotal = phases.reduce((n, p) => n + median(p), 0)
    for (let i = 0; i < PHASES.length; i++) {
      const ms = median(phases[i])
      phaseRows.push([PHASES[i], fmt(ms / 1000, 3), `${((ms / phaseTotal) * 100).toFixed(0)}%`])
    }
    phaseRows.push(['sum of the phase medians', fmt(phaseTotal / 1000, 3), '100%'])
  } finally {
    await server?.close()
    rmSync(baseDir, { recursive: true, force: true })
  }
  console.log(markdownTable(['case', 'seconds', 'MB/s', 'rate / fs.cp', 'rate / sha-256'], rows))
  console.log('')
  console.log('Where a pull\'s time goes (the steps of acc.pullModel called one by one, separate runs):\n')
  console.log(markdownTable(['phase of the pull', 'seconds', 'share'], phaseRows))
}

await main()
