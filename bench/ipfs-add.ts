/**
 * Adding content to the embedded store (HeliaStore: Kubo-compatible CIDs, pinned, on disk) against plain
 * sha-256 of the same bytes in the same run, from memory and streamed from a file, for CIDv0 and CIDv1.
 * The ratio is sha-256 time / add time: 1.0 means adding runs at the hashing rate. Each cell is the median
 * over runs; runs of the cases are interleaved so drift on a shared machine hits them alike.
 *
 *   npx tsx bench/ipfs-add.ts [--sizes 64,256] [--runs 3] [--dir <folder>] [--no-reference]
 *   npx tsx bench/ipfs-add.ts --memory [--size-mib 1024]   # peak RSS/heap of a streamed 1 GiB add, in a fresh process
 *
 * `--dir` is where repositories and input files go (default: a folder next to the default repository;
 * on the machine these numbers were taken, creating files under /tmp was ~6x slower than elsewhere on the
 * same disk). The reference row is Helia's stock path: @helia/unixfs `addBytes` with Kubo's layout into
 * blockstore-fs (no pin).
 */
import { createHash } from 'node:crypto'
import { mkdirSync, rmSync, writeFileSync, openSync, writeSync, closeSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { HeliaStore, defaultRepoPath } from '../src/content/helia-store.js'
import { installPromiseWithResolvers } from '../src/content/polyfills.js'
import { seededBytes, seededChunks } from '../test/content/seeded-bytes.js'
import { median, fmt, shuffle } from './lib/stats.js'
import { sha256File } from './lib/sha256-file.js'
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

/** Milliseconds to sha-256 a file (see bench/lib/sha256-file.ts). */
async function timeSha256File (file: string): Promise<number> {
  const t = now()
  await sha256File(file)
  return now() - t
}

let repoCounter = 0
async function freshStore (): Promise<{ store: HeliaStore, close: () => Promise<void> }> {
  const repo = path.join(baseDir, `repo-${repoCounter++}`)
  const store = new HeliaStore({ repo })
  await store.start()
  return { store, close: async () => { await store.stop(); rmSync(repo, { recursive: true, force: true }) } }
}

/** Helia's stock path: @helia/unixfs addBytes (Kubo layout) into blockstore-fs + datastore-fs. */
async function referenceAdd (bytes: Uint8Array): Promise<number> {
  installPromiseWithResolvers()
  const [{ createHeliaLight }, { unixfs }, { FsBlockstore }, { FsDatastore }, { fixedSize }, { balanced }] = await Promise.all([
    import('helia'), import('@helia/unixfs'), import('blockstore-fs'), import('datastore-fs'),
    import('ipfs-unixfs-importer/chunker'), import('ipfs-unixfs-importer/layout')
  ])
  const repo = path.join(baseDir, `reference-${repoCounter++}`)
  const blockstore = new FsBlockstore(path.join(repo, 'blocks'))
  const datastore = new FsDatastore(path.join(repo, 'datastore'))
  await blockstore.open()
  await datastore.open()
  const helia = createHeliaLight({ blockstore, datastore })
  await helia.start()
  const fs = unixfs(helia)
  const t = now()
  await fs.addBytes(bytes, { cidVersion: 0, rawLeaves: false, chunker: fixedSize({ chunkSize: 262_144 }), layout: balanced({ maxChildrenPerNode: 174 }) })
  const ms = now() - t
  await helia.stop()
  rmSync(repo, { recursive: true, force: true })
  return ms
}

interface Case {
  name: string
  /** Returns [add ms, sha-256 ms of the same bytes]. */
  run: () => Promise<[number, number]>
}

async function main (): Promise<void> {
  if (process.argv.includes('--memory-child')) return await memoryChild()
  if (process.argv.includes('--memory')) return memory()
  const sizes = argList('sizes', [64, 256])
  const runs = argNumber('runs', 3)
  const reference = !process.argv.includes('--no-reference')
  mkdirSync(baseDir, { recursive: true })
  printHeader('ipfs add: HeliaStore vs sha-256 of the same bytes', import.meta.url, [
    `runs: ${runs} (median), repositories in ${baseDir}`,
    'add = import with Kubo\'s layout + write blocks + pin; "file" rows stream from a file in the page cache and compare with sha-256 of that file read in 1 MiB pieces'
  ])
  const rows: Array<Array<string | number>> = []
  try {
    for (const size of sizes) {
      const bytes = seededBytes(size * MiB, size)
      const file = path.join(baseDir, `input-${size}.bin`)
      writeFileSync(file, bytes)
      const cases: Case[] = []
      for (const v of [0, 1] as const) {
        cases.push({
          name: `bytes, CIDv${v}`,
          run: async () => {
            const { store, close } = await freshStore()
            const t = now()
            await store.put(bytes, { cidVersion: v })
            const ms = now() - t
            await close()
            return [ms, sha256Bytes(bytes)]
          }
        })
        cases.push({
          name: `file (streamed), CIDv${v}`,
          run: async () => {
            const { store, close } = await freshStore()
            const t = now()
            await store.addFile(file, { cidVersion: v })
            const ms = now() - t
            await close()
            return [ms, await timeSha256File(file)]
          }
        })
      }
      // what the disk path alone allows: the same bytes written to a new file, nothing hashed
      cases.push({
        name: 'reference: the same bytes written to a new file (no hashing)',
        run: async () => {
          const out = path.join(baseDir, `write-${repoCounter++}.bin`)
          const t = now()
          await writeFile(out, bytes)
          const ms = now() - t
          rmSync(out, { force: true })
          return [ms, sha256Bytes(bytes)]
        }
      })
      if (reference) cases.push({ name: 'reference: @helia/unixfs addBytes into blockstore-fs, CIDv0, no pin', run: async () => [await referenceAdd(bytes), sha256Bytes(bytes)] })
      const samples = new Map(cases.map(c => [c.name, { add: [] as number[], sha: [] as number[], ratio: [] as number[] }]))
      for (let r = 0; r < runs; r++) {
        for (const c of shuffle([...cases], r + 1)) {
          const [add, sha] = await c.run()
          const s = samples.get(c.name) as { add: number[], sha: number[], ratio: number[] }
          s.add.push(add)
          s.sha.push(sha)
          s.ratio.push(sha / add)
        }
      }
      for (const c of cases) {
        const s = samples.get(c.name) as { add: number[], sha: number[], ratio: number[] }
        const mb = size * MiB / 1e6
        rows.push([c.name, `${size} MiB`, fmt(mb / (median(s.add) / 1000)), fmt(mb / (median(s.sha) / 1000)), `${fmt(median(s.ratio), 2)}x`])
      }
      rmSync(file, { force: true })
    }
  } finally {
    rmSync(baseDir, { recursive: true, force: true })
  }
  console.log(markdownTable(['case', 'size', 'add MB/s', 'sha-256 MB/s', 'add / sha-256 rate'], rows))
}

/** Spawns a fresh process that adds a large file streamed and reports its peak memory. */
function memory (): void {
  const sizeMiB = argNumber('size-mib', 1024)
  mkdirSync(baseDir, { recursive: true })
  const file = path.join(baseDir, 'memory-input.bin')
  try {
    const fd = openSync(file, 'w')
    for (const chunk of seededChunks(sizeMiB * MiB, 7, 4 * MiB)) writeSync(fd, chunk)
    closeSync(fd)
    printHeader(`ipfs add: memory of a streamed ${sizeMiB} MiB add (fresh process)`, import.meta.url)
    const rows: Array<Array<string | number>> = []
    for (const v of [0, 1]) {
      const child = spawnSync(process.execPath, ['--import', 'tsx', THIS, '--memory-child', '--file', file, '--cid-version', String(v), '--dir', baseDir], { encoding: 'utf8' })
      if (child.status !== 0) throw new Error(`memory child failed: ${child.stderr}`)
      const result = JSON.parse(child.stdout.trim().split('\n').at(-1) as string) as { ms: number, peakRssMiB: number, peakHeapMiB: number, baseRssMiB: number }
      rows.push([`addFile, CIDv${v}`, `${sizeMiB} MiB`, fmt(sizeMiB * MiB / 1e6 / (result.ms / 1000)), fmt(result.baseRssMiB), fmt(result.peakRssMiB), fmt(result.peakHeapMiB)])
    }
    console.log(markdownTable(['case', 'size', 'MB/s', 'RSS before (MiB)', 'peak RSS (MiB)', 'peak heap used (MiB)'], rows))
  } finally {
    rmSync(baseDir, { recursive: true, force: true })
  }
}

async function memoryChild (): Promise<void> {
  const file = argValue('file') as string
  const version = Number(argValue('cid-version') ?? '0') as 0 | 1
  const { store, close } = await freshStore()
  const baseRss = process.memoryUsage().rss
  let peakHeap = 0
  const timer = setInterval(() => { peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed) }, 20)
  const t = now()
  await store.addFile(file, { cidVersion: version })
  const ms = now() - t
  clearInterval(timer)
  peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed)
  await close()
  const peakRss = process.resourceUsage().maxRSS * 1024
  process.stdout.write(JSON.stringify({ ms, peakRssMiB: peakRss / MiB, peakHeapMiB: peakHeap / MiB, baseRssMiB: baseRss / MiB }) + '\n')
}

await main()
