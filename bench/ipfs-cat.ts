/**
 * Reading content back from the embedded store (HeliaStore.cat: every block read from disk and verified
 * against its CID) against plain sha-256 of the same bytes in memory, in the same run. The ratio is
 * sha-256 time / cat time. Each cell is the median over runs, cases interleaved.
 *
 *   npx tsx bench/ipfs-cat.ts [--sizes 64,256] [--runs 3] [--dir <folder>] [--no-reference]
 *   npx tsx bench/ipfs-cat.ts --memory [--size-mib 1024]   # peak RSS/heap of catting a 1 GiB file, fresh process
 *
 * The content is added once per size and version, then read from the page cache (a store that was just
 * written, as a server or a model load after a pull would). Reference row: Helia's stock path,
 * @helia/unixfs `cat` over blockstore-fs.
 */
import { createHash } from 'node:crypto'
import { mkdirSync, rmSync, openSync, writeSync, closeSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import type { CID } from 'multiformats/cid'
import { HeliaStore, defaultRepoPath } from '../src/content/helia-store.js'
import { installPromiseWithResolvers } from '../src/content/polyfills.js'
import { seededBytes, seededChunks } from '../test/content/seeded-bytes.js'
import { median, fmt, shuffle } from './lib/stats.js'
import { markdownTable } from './lib/table.js'
import { printHeader, argNumber, argValue, argList } from './lib/env.js'

const MiB = 1024 * 1024
const THIS = fileURLToPath(import.meta.url)
const baseDir = argValue('dir') ?? path.join(path.dirname(defaultRepoPath()), `bench-${process.pid}`)

function now (): number {
  return performance.now()
}

function sha256Bytes (bytes: Uint8Array): number {
  const t = now()
  createHash('sha256').update(bytes).digest()
  return now() - t
}

async function drain (source: AsyncIterable<Uint8Array>): Promise<number> {
  let n = 0
  for await (const chunk of source) n += chunk.byteLength
  return n
}

/** Helia's stock path: @helia/unixfs over blockstore-fs, content added with Kubo's layout. */
async function referenceCat (bytes: Uint8Array, runs: number): Promise<number[]> {
  installPromiseWithResolvers()
  const [{ createHeliaLight }, { unixfs }, { FsBlockstore }, { fixedSize }, { balanced }] = await Promise.all([
    import('helia'), import('@helia/unixfs'), import('blockstore-fs'),
    import('ipfs-unixfs-importer/chunker'), import('ipfs-unixfs-importer/layout')
  ])
  const repo = path.join(baseDir, 'reference')
  const blockstore = new FsBlockstore(path.join(repo, 'blocks'))
  await blockstore.open()
  const helia = createHeliaLight({ blockstore })
  await helia.start()
  const fs = unixfs(helia)
  const cid = await fs.addBytes(bytes, { cidVersion: 0, rawLeaves: false, chunker: fixedSize({ chunkSize: 262_144 }), layout: balanced({ maxChildrenPerNode: 174 }) })
  const times: number[] = []
  for (let r = 0; r < runs; r++) {
    const t = now()
    const n = await drain(fs.cat(cid))
    times.push(now() - t)
    if (n !== bytes.byteLength) throw new Error('reference cat returned the wrong size')
  }
  await helia.stop()
  rmSync(repo, { recursive: true, force: true })
  return times
}

async function main (): Promise<void> {
  if (process.argv.includes('--memory-child')) return await memoryChild()
  if (process.argv.includes('--memory')) return memory()
  const sizes = argList('sizes', [64, 256])
  const runs = argNumber('runs', 3)
  const reference = !process.argv.includes('--no-reference')
  mkdirSync(baseDir, { recursive: true })
  printHeader('ipfs cat: HeliaStore (verified reads) vs sha-256 of the same bytes', import.meta.url, [
    `runs: ${runs} (median), repository in ${baseDir}`,
    'cat = walk the DAG, read each block from disk (page cache), verify it against its CID, stream the file bytes'
  ])
  const rows: Array<Array<string | number>> = []
  const store = new HeliaStore({ repo: path.join(baseDir, 'repo') })
  try {
    for (const size of sizes) {
      const bytes = seededBytes(size * MiB, size)
      const cids = new Map<string, CID>()
      for (const v of [0, 1] as const) cids.set(`CIDv${v}`, await store.put(bytes, { cidVersion: v, pin: false }))
      const samples = new Map([...cids.keys()].map(k => [k, [] as number[]]))
      const sha: number[] = []
      for (const cid of cids.values()) await drain(store.cat(cid)) // warm-up: JIT, open packs
      for (let r = 0; r < runs; r++) {
        for (const [name, cid] of shuffle([...cids], r + 1)) {
          const t = now()
          const n = await drain(store.cat(cid))
          samples.get(name)?.push(now() - t)
          if (n !== bytes.byteLength) throw new Error(`cat returned ${n} bytes, expected ${bytes.byteLength}`)
        }
        sha.push(sha256Bytes(bytes))
      }
      const mb = size * MiB / 1e6
      const shaMs = median(sha)
      for (const [name, times] of samples) {
        rows.push([`HeliaStore.cat, ${name}`, `${size} MiB`, fmt(mb / (median(times) / 1000)), fmt(mb / (shaMs / 1000)), `${fmt(shaMs / median(times), 2)}x`])
      }
      if (reference) {
        const times = await referenceCat(bytes, runs)
        rows.push(['reference: @helia/unixfs cat over blockstore-fs, CIDv0', `${size} MiB`, fmt(mb / (median(times) / 1000)), fmt(mb / (shaMs / 1000)), `${fmt(shaMs / median(times), 2)}x`])
      }
      await store.gc()
    }
  } finally {
    await store.stop()
    rmSync(baseDir, { recursive: true, force: true })
  }
  console.log(markdownTable(['case', 'size', 'cat MB/s', 'sha-256 MB/s', 'cat / sha-256 rate'], rows))
}

/** Adds a large file, then cats it in a fresh process and reports that process's peak memory. */
function memory (): void {
  const sizeMiB = argNumber('size-mib', 1024)
  mkdirSync(baseDir, { recursive: true })
  const file = path.join(baseDir, 'memory-input.bin')
  const repo = path.join(baseDir, 'repo')
  try {
    const fd = openSync(file, 'w')
    for (const chunk of seededChunks(sizeMiB * MiB, 11, 4 * MiB)) writeSync(fd, chunk)
    closeSync(fd)
    printHeader(`ipfs cat: memory of catting a ${sizeMiB} MiB file (fresh process)`, import.meta.url)
    const rows: Array<Array<string | number>> = []
    for (const v of [0, 1]) {
      const add = spawnSync(process.execPath, ['--import', 'tsx', THIS, '--memory-child', 'add', '--file', file, '--repo', repo, '--cid-version', String(v)], { encoding: 'utf8' })
      if (add.status !== 0) throw new Error(`add failed: ${add.stderr}`)
      const cid = (JSON.parse(add.stdout.trim().split('\n').at(-1) as string) as { cid: string }).cid
      const cat = spawnSync(process.execPath, ['--import', 'tsx', THIS, '--memory-child', 'cat', '--cid', cid, '--repo', repo], { encoding: 'utf8' })
      if (cat.status !== 0) throw new Error(`cat failed: ${cat.stderr}`)
      const r = JSON.parse(cat.stdout.trim().split('\n').at(-1) as string) as { ms: number, bytes: number, peakRssMiB: number, peakHeapMiB: number, baseRssMiB: number }
      if (r.bytes !== sizeMiB * MiB) throw new Error(`cat returned ${r.bytes} bytes`)
      rows.push([`cat, CIDv${v}`, `${sizeMiB} MiB`, fmt(sizeMiB * MiB / 1e6 / (r.ms / 1000)), fmt(r.baseRssMiB), fmt(r.peakRssMiB), fmt(r.peakHeapMiB)])
    }
    console.log(markdownTable(['case', 'size', 'MB/s', 'RSS before (MiB)', 'peak RSS (MiB)', 'peak heap used (MiB)'], rows))
  } finally {
    rmSync(baseDir, { recursive: true, force: true })
  }
}

async function memoryChild (): Promise<void> {
  const mode = process.argv[process.argv.indexOf('--memory-child') + 1]
  const store = new HeliaStore({ repo: argValue('repo') as string })
  await store.start()
  if (mode === 'add') {
    const cid = await store.addFile(argValue('file') as string, { cidVersion: Number(argValue('cid-version') ?? '0') as 0 | 1, pin: false })
    await store.stop()
    process.stdout.write(JSON.stringify({ cid: cid.toString() }) + '\n')
    return
  }
  const { CID } = await import('multiformats/cid')
  const cid = CID.parse(argValue('cid') as string)
  const baseRss = process.memoryUsage().rss
  let peakHeap = 0
  const timer = setInterval(() => { peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed) }, 20)
  const t = now()
  const hash = createHash('sha256')
  let bytes = 0
  for await (const chunk of store.cat(cid)) { hash.update(chunk); bytes += chunk.byteLength }
  const ms = now() - t
  clearInterval(timer)
  peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed)
  await store.stop()
  const peakRss = process.resourceUsage().maxRSS * 1024
  process.stdout.write(JSON.stringify({ ms, bytes, peakRssMiB: peakRss / MiB, peakHeapMiB: peakHeap / MiB, baseRssMiB: baseRss / MiB }) + '\n')
}

await main()
