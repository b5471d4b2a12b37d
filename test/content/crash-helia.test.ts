/**
 * The embedded store when its process is killed (SIGKILL) in the middle of an add, gc (pack compaction)
 * a model publish or pull, and when it holds the repository: the repository reopens, what was pinned
 * before stays readable and verified, `has` tells the truth, the operation can be redone, and the model
 * cache holds no partial folder. The operations run in a child process (crash-child.ts) that reports
 * its progress, so it is killed at chosen points, over a few seeds.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { CID } from 'multiformats/cid'
import { HeliaStore } from '../../src/content/helia-store.js'
import { isPulled, publishModel, pullModel } from '../../src/content/model-pack.js'
import { ValidationError } from '../../src/errors.js'
import { seededBytes } from './seeded-bytes.js'
import { faultsUnsupported } from './fault-fs.js'

const CHILD = path.join(import.meta.dirname, 'crash-child.ts')

interface ChildRun { lines: string[], killed: boolean, code: number | null, stderr: string }

/**
 * Runs crash-child.ts with `args`; `killAt` sees each line of output and returns a delay in ms after
 * which the child is SIGKILLed (0: now), or undefined to let it go on.
 */
async function runChild (args: string[], killAt: (line: string) => number | undefined = () => undefined): Promise<ChildRun> {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, ...args], { stdio: ['pipe', 'pipe', 'pipe'] })
  const run: ChildRun = { lines: [], killed: false, code: null, stderr: '' }
  let buffered = ''
  let scheduled = false
  child.stderr.on('data', (d: Buffer) => { run.stderr += d.toString() })
  child.stdout.on('data', (d: Buffer) => {
    buffered += d.toString()
    const parts = buffered.split('\n')
    buffered = parts.pop() as string
    for (const line of parts) {
      run.lines.push(line)
      const delay = scheduled ? undefined : killAt(line)
      if (delay === undefined) continue
      scheduled = true
      const kill = (): void => { run.killed = child.kill('SIGKILL') }
      if (delay === 0) kill()
      else setTimeout(kill, delay)
    }
  })
  // 'close', not 'exit': every line it wrote has been seen (and its kill point acted on) by then
  run.code = await new Promise(resolve => child.once('close', resolve))
  if (!run.killed) assert.equal(run.code, 0, `child ${args.join(' ')} failed: ${run.stderr}`)
  return run
}

/** A small deterministic PRNG for kill points. */
function random (seed: number): () => number {
  let s = seed
  return () => { s = (s * 1103515245 + 12345) & 0x7fffffff; return s / 0x7fffffff }
}

/** Reads every block the store's index holds (each read is verified against its CID). */
async function readAllBlocks (store: HeliaStore): Promise<number> {
  let n = 0
  for await (const { bytes } of store.blockstore.getAll()) {
    for await (const _ of bytes) n++
  }
  return n
}

async function getBytes (store: HeliaStore, cid: CID): Promise<Buffer> {
  return Buffer.from(await store.get(cid))
}

describe('crash consistency of the embedded store (SIGKILL)', () => {
  let dir: string
  before(async () => { dir = await mkdtemp(path.join(tmpdir(), 'ipfs-accelerate-crash-')) })
  after(async () => { await rm(dir, { recursive: true, force: true }) })

  it('an add killed part-way leaves earlier pins readable, and can be redone (stale lock taken over)', async () => {
    const repo = path.join(dir, 'add')
    const kept = seededBytes(3 << 20, 7)
    const size = 24 << 20
    let store = new HeliaStore({ repo })
    const keptCid = await store.put(kept)
    await store.stop()
    for (const seed of [1, 2, 3]) {
      let events = 2 + seed * 5 // progress comes per MiB: killed with >= 7 MiB left, so a slow parent still catches it
      const run = await runChild(['add', repo, String(size), String(seed)], line => line.startsWith('progress') && --events <= 0 ? 0 : undefined)
      assert.equal(run.killed, true)
      store = new HeliaStore({ repo }) // the killed child's lock is stale
      assert.deepEqual(await getBytes(store, keptCid), Buffer.from(kept))
      assert.equal(await store.isPinned(keptCid), true)
      await readAllBlocks(store)
      const bytes = seededBytes(size, seed)
      const cid = await store.put(bytes)
      assert.ok((await getBytes(store, cid)).equals(Buffer.from(bytes)))
      assert.deepEqual((await store.gc()).unreadable, [])
      assert.deepEqual(await getBytes(store, keptCid), Buffer.from(kept))
      await store.stop()
    }
  })

  it('an add returns its CID only once its blocks are found after a kill', { skip: faultsUnsupported }, async () => {
    const repo = path.join(dir, 'hold')
    const bytes = seededBytes(6 << 20, 11)
    // index writes are slowed down in the child: the pin record (datastore) is written before them
    const run = await runChild(['add-hold', repo, String(bytes.byteLength), '11'], line => line.startsWith('done') ? 0 : undefined)
    assert.equal(run.killed, true)
    const cid = CID.parse((run.lines.find(l => l.startsWith('done')) as string).slice(5))
    const store = new HeliaStore({ repo })
    const pins: string[] = []
    for await (const pin of store.pins()) pins.push(pin.toString())
    assert.deepEqual(pins, [cid.toString()])
    assert.equal(await store.has(cid), true)
    assert.ok((await getBytes(store, cid)).equals(Buffer.from(bytes)))
    assert.deepEqual((await store.gc()).unreadable, [])
    await store.stop()
  })

  it('a second process cannot open a repository in use; a killed holder\'s lock is taken over', async () => {
    const repo = path.join(dir, 'lock')
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, 'lock', repo], { stdio: ['pipe', 'pipe', 'inherit'] })
    const first = await new Promise<string>(resolve => { let out = ''; child.stdout.on('data', (d: Buffer) => { out += d.toString(); if (out.includes('\n')) resolve(out.trim()) }) })
    assert.equal(first, 'locked')
    const store = new HeliaStore({ repo })
    await assert.rejects(store.open(), (err: unknown) => err instanceof ValidationError && /in use by process/.test(err.message))
    child.kill('SIGKILL')
    await new Promise(resolve => child.once('exit', resolve))
    const again = new HeliaStore({ repo })
    await again.open()
    await again.stop()
  })

  it('gc killed at random points (deleting, compacting packs) loses no pinned block and can be redone', async () => {
    const repo = path.join(dir, 'gc')
    const kept = seededBytes(8 << 20, 21)
    let store = new HeliaStore({ repo })
    const keptCid = await store.put(kept)
    await store.stop()
    const rand = random(5)
    for (const seed of [1, 2, 3, 4]) {
      // garbage that makes gc delete records and rewrite the pack (the pinned blocks are copied out)
      store = new HeliaStore({ repo })
      const garbage = await store.put(seededBytes(24 << 20, 100 + seed), { pin: false })
      await store.stop()
      const delay = 1 + Math.floor(rand() * 120)
      await runChild(['gc', repo], line => line === 'ready' ? delay : undefined)
      store = new HeliaStore({ repo })
      assert.deepEqual(await getBytes(store, keptCid), Buffer.from(kept))
      await readAllBlocks(store) // every block the index holds is there and verifies
      if (await store.has(garbage)) await store.getBlock(garbage) // told present: readable (gc may have deleted blocks below it)
      assert.deepEqual((await store.gc()).unreadable, [])
      assert.equal(await store.has(garbage), false)
      assert.deepEqual(await getBytes(store, keptCid), Buffer.from(kept))
      await store.stop()
    }
    store = new HeliaStore({ repo })
    assert.deepEqual(await getBytes(store, keptCid), Buffer.from(kept))
    const packs = (await readdir(path.join(repo, 'packs'))).filter(n => n.endsWith('.pack'))
    assert.ok(packs.length <= 2, `packs left: ${packs.join(', ')}`)
    await store.stop()
  })

  it('a publish or a pull killed part-way leaves no partial folder once redone, and the cache as it was', async () => {
    const folder = path.join(dir, 'model')
    await mkdir(path.join(folder, 'onnx'), { recursive: true })
    await writeFile(path.join(folder, 'config.json'), JSON.stringify({ model_type: 'bert', architectures: ['BertModel'] }))
    await writeFile(path.join(folder, 'onnx', 'model.onnx'), seededBytes(1 << 20, 31))
    await writeFile(path.join(folder, 'weights.bin'), seededBytes(20 << 20, 32))
    const repo = path.join(dir, 'publish')
    const cache = path.join(dir, 'cache')

    let events = 6
    const published = await runChild(['publish', repo, folder], line => line.startsWith('progress') && --events <= 0 ? 0 : undefined)
    assert.equal(published.killed, true)
    let store = new HeliaStore({ repo })
    const { cid } = await publishModel(store, folder)
    assert.deepEqual(await readdir(path.join(repo, 'staging')), [])
    await store.stop()

    for (const seed of [1, 2]) {
      let chunks = 5 + seed * 30 // progress comes per 256 KiB
      const pulled = await runChild(['pull', repo, cid, cache], line => line.startsWith('progress') && --chunks <= 0 ? 0 : undefined)
      assert.equal(pulled.killed, true)
      assert.equal(isPulled(cid, cache), undefined)
    }
    // a pull of another pack cleans up too: the killed pack may never be pulled again
    const other = path.join(dir, 'other-model')
    await mkdir(other)
    await writeFile(path.join(other, 'config.json'), JSON.stringify({ model_type: 'gpt2' }))
    store = new HeliaStore({ repo })
    const { dir: otherDir } = await pullModel(store, (await publishModel(store, other)).cid, { cacheDir: cache })
    assert.deepEqual(await readdir(path.join(cache, 'ipfs')), [path.basename(otherDir)])
    const { dir: pulledDir } = await pullModel(store, cid, { cacheDir: cache })
    assert.equal(isPulled(cid, cache), pulledDir)
    assert.deepEqual((await readdir(path.join(cache, 'ipfs'))).sort(), [path.basename(otherDir), path.basename(pulledDir)].sort())
    await readAllBlocks(store)
    await store.stop()
  })
})
