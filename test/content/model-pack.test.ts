import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdtemp, mkdir, readFile, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { CarBlockIterator, CarWriter } from '@ipld/car'
import * as dagPb from '@ipld/dag-pb'
import { UnixFS } from 'ipfs-unixfs'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { AutoModel, Tensor, env } from '@huggingface/transformers'
import { HeliaStore } from '../../src/content/helia-store.js'
import { walkDag } from '../../src/content/unixfs-reader.js'
import { sha256 } from '../../src/content/cid.js'
import {
  PACK_FORMAT, PACK_MANIFEST_FILE, defaultPackCacheDir, isPulled, listModels, packDir, publishModel, pullModel,
  type PackProgressEvent
} from '../../src/content/model-pack.js'
import { AbortError, ContentVerificationError, ModelLoadError, NotFoundError, ValidationError } from '../../src/errors.js'
import { tinyModels, type TinyModels } from '../helpers/tiny-models.js'
import { damageBlock } from './damage-block.js'

env.allowRemoteModels = false

/** Every file under `dir`, relative and `/`-separated, sorted. */
async function filesUnder (dir: string): Promise<string[]> {
  const out: string[] = []
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) out.push(path.relative(dir, path.join(entry.parentPath, entry.name)).split(path.sep).join('/'))
  }
  return out.sort()
}

/**
 * Moves the DAG below `root` from one store to another as a CAR file, the way a pack travels between
 * machines until the stores talk to each other. `skip` leaves blocks out (a transfer that lost them).
 */
async function transfer (from: HeliaStore, to: HeliaStore, root: CID, skip: (cid: CID) => boolean = () => false): Promise<number> {
  const { writer, out } = CarWriter.create([root])
  const chunks: Uint8Array[] = []
  const collected = (async () => { for await (const c of out) chunks.push(c) })()
  for await (const block of walkDag(root, from.getBlock.bind(from))) await writer.put(block)
  await writer.close()
  await collected
  const car = Buffer.concat(chunks)
  let count = 0
  for await (const block of await CarBlockIterator.fromBytes(car)) {
    if (skip(block.cid)) continue
    await to.putBlock(block.cid, block.bytes)
    count++
  }
  return count
}

function pbBlock (node: dagPb.PBNode): { cid: CID, bytes: Uint8Array } {
  const bytes = dagPb.encode(dagPb.prepare(node))
  return { cid: CID.createV0(Digest.create(0x12, sha256(bytes))), bytes }
}

/** Puts a hand-made directory with the given entries (name -> block) into `store`; returns its CID. */
async function craftDirectory (store: HeliaStore, entries: Array<{ name: string, block: { cid: CID, bytes: Uint8Array } }>): Promise<CID> {
  for (const e of entries) await store.putBlock(e.block.cid, e.block.bytes)
  const dir = pbBlock({
    Data: new UnixFS({ type: 'directory' }).marshal(),
    Links: entries.map(e => ({ Name: e.name, Hash: e.block.cid, Tsize: e.block.bytes.byteLength }))
  })
  await store.putBlock(dir.cid, dir.bytes)
  return dir.cid
}

function fileBlock (text: string): { cid: CID, bytes: Uint8Array } {
  return pbBlock({ Data: new UnixFS({ type: 'file', data: new TextEncoder().encode(text) }).marshal(), Links: [] })
}


/** True when `cacheDir` holds no pack and no leftover temporary folder. */
async function cacheIsEmpty (cacheDir: string): Promise<boolean> {
  const names = await readdir(path.join(cacheDir, 'ipfs')).catch(() => [])
  return names.length === 0
}

describe('model packs', () => {
  let models: TinyModels
  let root: string
  let storeA: HeliaStore
  let storeB: HeliaStore
  let bertCid: string

  before(async () => {
    models = await tinyModels(['bert', 'whisper'])
    root = await mkdtemp(path.join(tmpdir(), 'ipfs-accelerate-pack-'))
    storeA = new HeliaStore({ repo: path.join(root, 'repo-a') })
    storeB = new HeliaStore({ repo: path.join(root, 'repo-b') })
  })
  after(async () => {
    await storeA.stop()
    await storeB.stop()
    await rm(root, { recursive: true, force: true })
    models.cleanup()
  })

  it('publishes a tiny BERT folder with a manifest inside the pack, leaving the folder untouched', async () => {
    const folder = models.dir('bert')
    const before = await filesUnder(folder)
    const events: PackProgressEvent[] = []
    const { cid, manifest } = await publishModel(storeA, folder, { onProgress: e => events.push(e) })
    bertCid = cid
    assert.match(cid, /^Qm/)
    assert.deepEqual(await filesUnder(folder), before, 'nothing written into the source folder')
    assert.equal(manifest.format, PACK_FORMAT)
    assert.equal(manifest.task, 'text_embedding')
    assert.equal(manifest.model_type, 'bert')
    assert.equal(manifest.architecture, JSON.parse(await readFile(path.join(folder, 'config.json'), 'utf8')).architectures?.[0] ?? 'bert')
    assert.ok(manifest.precisions.includes('fp32'))
    assert.deepEqual(manifest.weights.model, manifest.precisions)
    assert.deepEqual(manifest.files.map(f => f.path), before)
    for (const f of manifest.files) assert.equal(f.size, (await stat(path.join(folder, f.path))).size, f.path)
    assert.equal(manifest.source, undefined)
    // the manifest is a file of the pack itself
    const parsed = CID.parse(cid)
    const inPack = await storeA.get(await storeA.resolve(parsed, PACK_MANIFEST_FILE))
    assert.deepEqual(JSON.parse(new TextDecoder().decode(inPack)), manifest)
    assert.equal(await storeA.isPinned(parsed), true)
    const last = events.at(-1)
    assert.equal(last?.status, 'done')
    assert.equal(last?.modelLoaded, manifest.files.reduce((n, f) => n + f.size, 0) + inPack.byteLength)
    // staging removed
    assert.deepEqual(await readdir(path.join(storeA.repo, 'staging')), [])
  })

  it('gives the same CID when the same folder is published again (CIDv1 on request)', async () => {
    const again = await publishModel(storeA, models.dir('bert'))
    assert.equal(again.cid, bertCid)
    const v1 = await publishModel(storeA, models.dir('bert'), { cidVersion: 1 })
    assert.match(v1.cid, /^bafy/)
    assert.deepEqual(v1.manifest, again.manifest)
  })

  it('pulls into another store\'s cache byte for byte, and the folder loads and runs offline', async () => {
    const cacheDir = path.join(root, 'cache-b')
    const cid = CID.parse(bertCid)
    assert.ok(await transfer(storeA, storeB, cid) > 3)
    assert.equal(isPulled(bertCid, cacheDir), undefined)
    const events: PackProgressEvent[] = []
    const pulled = await pullModel(storeB, bertCid, { cacheDir, onProgress: e => events.push(e) })
    assert.equal(pulled.cached, false)
    assert.equal(pulled.dir, packDir(cacheDir, bertCid))
    assert.equal(pulled.dir, path.join(cacheDir, 'ipfs', cid.toV1().toString()))
    const source = models.dir('bert')
    const sourceFiles = await filesUnder(source)
    const pulledFiles = await filesUnder(pulled.dir)
    assert.deepEqual(pulledFiles.filter(f => f !== PACK_MANIFEST_FILE && !f.startsWith('.')), sourceFiles)
    for (const f of sourceFiles) {
      assert.ok((await readFile(path.join(source, f))).equals(await readFile(path.join(pulled.dir, f))), f)
    }
    assert.equal(pulled.manifest.task, 'text_embedding')
    assert.equal(isPulled(bertCid, cacheDir), pulled.dir)
    assert.equal(isPulled(cid.toV1(), cacheDir), pulled.dir, 'v0 and v1 spellings share the folder')
    assert.equal(await storeB.isPinned(cid), true)
    assert.ok(events.some(e => e.file === 'onnx/model.onnx' && e.status === 'done'))
    assert.equal(events.at(-1)?.modelLoaded, events.at(-1)?.modelTotal)
    assert.deepEqual((await readdir(path.join(cacheDir, 'ipfs'))).filter(n => n.startsWith('.')), [])

    const model = await AutoModel.from_pretrained(pulled.dir, { device: 'cpu', dtype: 'fp32' })
    try {
      const ids = [101, 2054, 2003, 102]
      const out = await model({
        input_ids: new Tensor('int64', BigInt64Array.from(ids.map(BigInt)), [1, ids.length]),
        attention_mask: new Tensor('int64', BigInt64Array.from(ids.map(() => 1n)), [1, ids.length])
      })
      assert.equal(out.last_hidden_state.dims[1], ids.length)
      assert.ok((out.last_hidden_state.data as Float32Array).every(Number.isFinite))
    } finally {
      await model.dispose()
    }
  })

  it('a second pull of a complete pack is a no-op', async () => {
    const cacheDir = path.join(root, 'cache-b')
    const marker = (await readdir(packDir(cacheDir, bertCid))).find(n => n.startsWith('.'))
    assert.ok(marker !== undefined)
    const before = (await stat(path.join(packDir(cacheDir, bertCid), marker))).mtimeMs
    // even a stopped store is not touched
    const stopped = new HeliaStore({ repo: path.join(root, 'repo-stopped') })
    await stopped.stop()
    const again = await pullModel(stopped, bertCid, { cacheDir })
    assert.equal(again.cached, true)
    assert.equal(again.cid, bertCid)
    assert.equal((await stat(path.join(again.dir, marker))).mtimeMs, before)
  })

  it('publishes and pulls a Whisper pack with nested onnx/ files', async () => {
    const folder = models.dir('whisper')
    const { cid, manifest } = await publishModel(storeA, folder, { cidVersion: 1 })
    assert.equal(manifest.task, 'audio_transcription')
    assert.ok(manifest.files.some(f => f.path.startsWith('onnx/encoder_model')))
    assert.ok(Object.keys(manifest.weights).includes('encoder_model'))
    await transfer(storeA, storeB, CID.parse(cid))
    const cacheDir = path.join(root, 'cache-whisper')
    const pulled = await pullModel(storeB, cid, { cacheDir })
    for (const f of await filesUnder(folder)) {
      assert.ok((await readFile(path.join(folder, f))).equals(await readFile(path.join(pulled.dir, f))), f)
    }
    assert.deepEqual(pulled.manifest, manifest)
  })

  it('pulls a plain `ipfs add -r` folder (no manifest) and makes its manifest from the files', async () => {
    const plain = await storeA.addDirectory(models.dir('bert'))
    const pulled = await pullModel(storeA, plain, { cacheDir: path.join(root, 'cache-plain') })
    assert.equal(pulled.manifest.task, 'text_embedding')
    assert.deepEqual(pulled.manifest.files.map(f => f.path), await filesUnder(models.dir('bert')))
    assert.equal(existsSync(path.join(pulled.dir, PACK_MANIFEST_FILE)), false, 'the folder mirrors the DAG')
  })

  it('refuses entries that would escape the folder, and leaves nothing behind', async () => {
    const cacheDir = path.join(root, 'cache-escape', 'models')
    const config = fileBlock('{"model_type":"bert"}')
    const cases: Array<{ name: string, block: { cid: CID, bytes: Uint8Array } }> = [
      { name: '../x', block: fileBlock('escaped') },
      { name: '..', block: fileBlock('escaped') },
      { name: 'a/b', block: fileBlock('escaped') },
      { name: 'link', block: pbBlock({ Data: new UnixFS({ type: 'symlink', data: new TextEncoder().encode('/etc/passwd') }).marshal(), Links: [] }) }
    ]
    for (const bad of cases) {
      const cid = await craftDirectory(storeB, [{ name: 'config.json', block: config }, bad])
      await assert.rejects(pullModel(storeB, cid, { cacheDir }), (err: Error) => {
        assert.ok(err instanceof ContentVerificationError, `${bad.name}: ${err.name} ${err.message}`)
        assert.equal(err.context.path, bad.name)
        return true
      })
      assert.equal(await cacheIsEmpty(cacheDir), true, bad.name)
    }
    assert.equal(existsSync(path.join(cacheDir, 'x')), false)
    assert.equal(existsSync(path.join(cacheDir, 'ipfs', 'x')), false)
    // duplicate names in one directory
    const dup = await craftDirectory(storeB, [{ name: 'config.json', block: config }, { name: 'config.json', block: fileBlock('{}') }])
    await assert.rejects(pullModel(storeB, dup, { cacheDir }), ContentVerificationError)
    assert.equal(await cacheIsEmpty(cacheDir), true)
  })

  it('an aborted pull leaves the cache as it was', async () => {
    const cacheDir = path.join(root, 'cache-abort')
    const controller = new AbortController()
    await assert.rejects(pullModel(storeA, bertCid, {
      cacheDir,
      signal: controller.signal,
      onProgress: () => controller.abort()
    }), AbortError)
    assert.equal(await cacheIsEmpty(cacheDir), true)
    assert.equal(isPulled(bertCid, cacheDir), undefined)
  })

  it('a missing or corrupt block fails the pull and leaves the cache as it was', async () => {
    const cid = CID.parse(bertCid)
    // the largest leaf: a block of onnx/model.onnx
    let victim: { cid: CID, size: number } | undefined
    for await (const block of walkDag(cid, storeA.getBlock.bind(storeA))) {
      if (victim === undefined || block.bytes.byteLength > victim.size) victim = { cid: block.cid, size: block.bytes.byteLength }
    }
    assert.ok(victim !== undefined)
    const storeC = new HeliaStore({ repo: path.join(root, 'repo-c') })
    try {
      await transfer(storeA, storeC, cid, c => c.equals(victim.cid))
      const cacheDir = path.join(root, 'cache-c')
      await assert.rejects(pullModel(storeC, cid, { cacheDir }), NotFoundError)
      assert.equal(await cacheIsEmpty(cacheDir), true)

      await transfer(storeA, storeC, cid)
      await damageBlock(storeC.blockstore, victim.cid)
      await assert.rejects(pullModel(storeC, cid, { cacheDir }), ContentVerificationError)
      assert.equal(await cacheIsEmpty(cacheDir), true)
    } finally {
      await storeC.stop()
    }
  })

  it('gc keeps pinned packs whole', async () => {
    const loose = await storeA.put(new TextEncoder().encode('not pinned'), { pin: false })
    await storeA.gc()
    assert.equal(await storeA.has(loose), false)
    for await (const block of walkDag(CID.parse(bertCid), storeA.getBlock.bind(storeA))) assert.ok(block.bytes.byteLength > 0)
    const pulled = await pullModel(storeA, bertCid, { cacheDir: path.join(root, 'cache-after-gc') })
    assert.equal(pulled.cached, false)
  })

  it('lists published and pulled packs with their manifests', async () => {
    const cacheDir = path.join(root, 'cache-b')
    const listed = await listModels(storeB, cacheDir)
    const bert = listed.find(e => e.cid === bertCid)
    assert.ok(bert !== undefined)
    assert.equal(bert.pinned, true)
    assert.equal(bert.dir, packDir(cacheDir, bertCid))
    assert.equal(bert.manifest.task, 'text_embedding')
    assert.ok(listed.some(e => e.manifest.task === 'audio_transcription' && e.dir === undefined), 'whisper pinned in B, pulled elsewhere')
    // crafted directories pinned nowhere, files pinned but not packs: not listed
    assert.ok(listed.every(e => e.manifest.format === PACK_FORMAT))

    // pinned only: listed with the CID as it was pinned
    const published = await listModels(storeA, path.join(root, 'no-cache-here'))
    assert.ok(published.some(e => e.cid === bertCid && e.pinned && e.dir === undefined))

    // a pack in the cache but not pinned in this store is listed from the cache alone
    const other = new HeliaStore({ repo: path.join(root, 'repo-empty') })
    try {
      const fromCache = await listModels(other, cacheDir)
      assert.deepEqual(fromCache.map(e => [e.cid, e.pinned, e.dir]), [[bertCid, false, packDir(cacheDir, bertCid)]])
    } finally {
      await other.stop()
    }
  })

  it('refuses bad input before any I/O', async () => {
    await assert.rejects(pullModel(storeA, 'not-a-cid', { cacheDir: path.join(root, 'never') }), ValidationError)
    assert.equal(existsSync(path.join(root, 'never')), false)
    assert.throws(() => isPulled('nope', root), ValidationError)
    const file = await storeA.put(new TextEncoder().encode('just a file\n'))
    await assert.rejects(pullModel(storeA, file, { cacheDir: path.join(root, 'never') }), (err: Error) => err instanceof ValidationError && /is a file, not a folder/.test(err.message))
    assert.equal(await cacheIsEmpty(path.join(root, 'never')), true)
    const notModel = await craftDirectory(storeA, [{ name: 'readme.txt', block: fileBlock('hello') }])
    await assert.rejects(pullModel(storeA, notModel, { cacheDir: path.join(root, 'never') }), ModelLoadError)
    assert.equal(await cacheIsEmpty(path.join(root, 'never')), true)
    const empty = path.join(root, 'no-config')
    await mkdir(empty)
    await writeFile(path.join(empty, 'weights.bin'), 'x')
    await assert.rejects(publishModel(storeA, empty), ModelLoadError)
    await writeFile(path.join(empty, 'config.json'), '{"model_type":"bert"}')
    await symlink('/etc/hostname', path.join(empty, 'link'))
    await assert.rejects(publishModel(storeA, empty), ValidationError)
    await assert.rejects(publishModel(storeA, path.join(empty, 'config.json')), ValidationError)
  })

  it('publishes names that start with dots (..hidden, ...), and names the user\'s folder in errors', async () => {
    const folder = path.join(root, 'dots')
    await mkdir(folder)
    await writeFile(path.join(folder, 'config.json'), '{"model_type":"bert"}')
    await writeFile(path.join(folder, '..hidden'), 'h')
    await writeFile(path.join(folder, '...'), 'd')
    const store = new HeliaStore({ repo: path.join(root, 'repo-dots') })
    try {
      const { cid, manifest } = await publishModel(store, folder)
      assert.deepEqual(manifest.files.map(f => f.path), ['...', '..hidden', 'config.json'])
      assert.equal((await store.get(await store.resolve(CID.parse(cid), '..hidden'))).byteLength, 1)
      // an import error about a staged file speaks of the file in the user's folder
      store.addDirectory = async (staged: string) => {
        throw ValidationError.field('folder', `${path.join(staged, 'config.json')} went wrong`, { file: path.join(staged, 'config.json') })
      }
      await assert.rejects(publishModel(store, folder), (err: ValidationError) => {
        assert.match(err.message, new RegExp(`${path.join(folder, 'config.json')} went wrong`))
        assert.doesNotMatch(err.message, /staging/)
        assert.equal(err.context.file, path.join(folder, 'config.json'))
        return true
      })
    } finally {
      await store.stop()
    }
  })

  it('removes staging folders left by a publish that was killed (next publish or gc)', async () => {
    const repo = path.join(root, 'repo-staging')
    const staging = path.join(repo, 'staging')
    const leftover = async (name: string): Promise<void> => {
      await mkdir(path.join(staging, name, 'onnx'), { recursive: true })
      await writeFile(path.join(staging, name, 'onnx', 'model.onnx'), 'half a model')
    }
    await leftover('publish-999999999-0123456789ab') // a pid that is gone
    await leftover(`publish-${process.pid}-0123456789ab`) // this pid, from an earlier process
    const store = new HeliaStore({ repo })
    try {
      await publishModel(store, models.dir('bert'))
      assert.deepEqual(await readdir(staging), [])
      await leftover('publish-1-0123456789ab')
      await store.gc()
      assert.deepEqual(await readdir(staging), [])
    } finally {
      await store.stop()
    }
  })

  it('defaults the cache under IPFS_ACCELERATE_HOME, else ~/.cache/ipfs-accelerate/models', () => {
    assert.equal(defaultPackCacheDir({ IPFS_ACCELERATE_HOME: '/data/ia' }, '/home/u'), path.join('/data/ia', 'models'))
    assert.equal(defaultPackCacheDir({}, '/home/u'), path.join('/home/u', '.cache', 'ipfs-accelerate', 'models'))
  })
})
