/**
 * Downloads from a host that misbehaves on the ONNX weights: a body shorter than the size its `bytes=0-0`
 * probe announced, a connection dropped mid-file. Neither may leave a file in the cache, and a retry
 * against a good host must fetch again. Also: a cached file whose size changed since it was downloaded is
 * fetched again, cached files are reported as `cached` and not as downloads, and temporary files left by
 * a killed download are removed.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync, statSync, existsSync } from 'node:fs'
import { mkdir, mkdtemp, readdir, readFile, rm, truncate, utimes, writeFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startHubServer, type HubServer } from '../helpers/hub-server.js'
import { buildTinyModel } from '../../src/models/tiny/index.js'
import { downloadModel, type DownloadProgressEvent } from '../../src/models/hub-download.js'
import { ModelLoadError } from '../../src/errors.js'

type Mode = 'short' | 'drop'

/** Serves `root/{org}/{name}/{file}` like the hub, but breaks whole-file GETs of `.onnx` files as `mode` says. */
async function startBadHub (root: string, mode: Mode): Promise<{ url: string, close: () => Promise<void> }> {
  const server: Server = createServer((req, res) => {
    const parts = new URL(req.url ?? '/', 'http://hub').pathname.split('/').slice(1)
    const at = parts.indexOf('resolve')
    const path = join(root, ...parts.slice(0, at), ...parts.slice(at + 2))
    if (at < 1 || !existsSync(path) || !statSync(path).isFile()) {
      res.writeHead(404, { 'x-error-code': 'EntryNotFound' }).end('{}')
      return
    }
    const body = readFileSync(path)
    const range = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '')
    if (range !== null) {
      const start = Number(range[1])
      const end = Math.min(Number(range[2]), body.length - 1)
      res.writeHead(206, { 'content-range': `bytes ${start}-${end}/${body.length}`, 'content-length': end - start + 1 }).end(body.subarray(start, end + 1))
      return
    }
    const half = body.subarray(0, body.length >> 1)
    if (path.endsWith('.onnx') && mode === 'short') {
      // A self-consistent response (Content-Length matches the body), only shorter than the file.
      res.writeHead(200, { 'content-length': half.length }).end(half)
      return
    }
    if (path.endsWith('.onnx') && mode === 'drop') {
      res.writeHead(200, { 'content-length': body.length })
      res.write(half)
      setTimeout(() => res.destroy(), 50)
      return
    }
    res.writeHead(200, { 'content-length': body.length }).end(body)
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', () => resolve()))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>(resolve => server.close(() => resolve()))
    }
  }
}

/** Files under `dir`, relative, sorted (temporary files included). */
async function listFiles (dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => [])
  return entries.filter(e => e.isFile()).map(e => join(e.parentPath, e.name).slice(dir.length + 1)).sort()
}

function onnxGets (server: HubServer, from: number): string[] {
  return server.log.slice(from).filter(e => e.method === 'GET' && e.status === 200 && e.path.endsWith('.onnx')).map(e => e.path)
}

/** After a failed download: neither the weights nor a temporary file of them is in the cache. */
async function assertWeightsNotCached (cacheDir: string): Promise<void> {
  const left = await listFiles(join(cacheDir, 'Org', 'tiny-bert'))
  assert.ok(!left.includes('onnx/model.onnx'), left.join(', '))
  assert.ok(left.every(f => !f.includes('.tmp')), left.join(', '))
}

describe('hub download integrity', () => {
  let root: string
  let work: string
  let good: HubServer
  const bertDir = (): string => join(root, 'Org', 'tiny-bert')
  const options = { task: 'text_embedding' as const }

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'hub-integrity-root-'))
    work = await mkdtemp(join(tmpdir(), 'hub-integrity-cache-'))
    await buildTinyModel('bert', bertDir())
    good = await startHubServer(root)
  })

  after(async () => {
    await good.close()
    await rm(root, { recursive: true, force: true })
    await rm(work, { recursive: true, force: true })
  })

  it('refuses a body shorter than the announced size, caches nothing, and a retry fetches again', async () => {
    const cacheDir = join(work, 'short')
    const bad = await startBadHub(root, 'short')
    const size = statSync(join(bertDir(), 'onnx', 'model.onnx')).size
    try {
      await assert.rejects(downloadModel('Org/tiny-bert', { ...options, cacheDir, remoteHost: bad.url }), (err: unknown) => {
        assert.ok(err instanceof ModelLoadError, String(err))
        assert.equal(err.context.file, 'onnx/model.onnx')
        assert.equal(err.context.expected, size)
        assert.equal(err.context.received, size >> 1)
        assert.match(err.message, /onnx\/model\.onnx/)
        assert.match(err.message, /incomplete/)
        return true
      })
    } finally {
      await bad.close()
    }
    await assertWeightsNotCached(cacheDir)

    const from = good.log.length
    const result = await downloadModel('Org/tiny-bert', { ...options, cacheDir, remoteHost: good.url })
    assert.equal(result.cached, false)
    assert.deepEqual(onnxGets(good, from), ['/Org/tiny-bert/resolve/main/onnx/model.onnx'])
    assert.deepEqual(await readFile(join(result.dir, 'onnx', 'model.onnx')), await readFile(join(bertDir(), 'onnx', 'model.onnx')))
  })

  it('a cache folder that cannot be created (under /proc) is a ModelLoadError naming it, not a hang', { skip: process.platform !== 'linux' }, async () => {
    // transformers.js's recursive mkdir spins for ever there on Node 20, in the thread pool: run in a
    // child, killed after a minute, so a build without the fix fails instead of keeping this process alive
    const script = `
      import { downloadModel } from './src/models/hub-download.ts'
      const outcome = await downloadModel('Org/tiny-bert', { task: 'text_embedding', cacheDir: '/proc/ia-no-hub-cache', remoteHost: process.env.IA_HUB })
        .then(() => 'ok', (err) => ({ name: err.name, file: err.context?.file, message: err.message }))
      process.stdout.write(JSON.stringify(outcome))
    `
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { env: { ...process.env, IA_HUB: good.url }, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    const timer = setTimeout(() => { child.kill('SIGKILL') }, 60_000)
    const [code, signal] = await once(child, 'close') as [number | null, string | null]
    clearTimeout(timer)
    assert.equal(code, 0, `child ${signal ?? code}: ${stderr}`)
    const outcome = JSON.parse(stdout) as { name: string, file: string, message: string }
    assert.equal(outcome.name, 'ModelLoadError')
    assert.match(outcome.file, /^\/proc\/ia-no-hub-cache\//)
    assert.match(outcome.message, /cannot be created: ENOENT/)
  })

  it('reports a connection dropped mid-file with the network error as message and cause', async () => {
    const cacheDir = join(work, 'drop')
    const bad = await startBadHub(root, 'drop')
    try {
      await assert.rejects(downloadModel('Org/tiny-bert', { ...options, cacheDir, remoteHost: bad.url }), (err: unknown) => {
        assert.ok(err instanceof ModelLoadError, String(err))
        assert.equal(err.context.file, 'onnx/model.onnx')
        assert.match(err.message, /onnx\/model\.onnx/)
        assert.match(err.message, /terminated/)
        assert.ok(err.cause instanceof Error, String(err.cause))
        assert.match(err.cause.message, /terminated/)
        return true
      })
    } finally {
      await bad.close()
    }
    await assertWeightsNotCached(cacheDir)
  })

  it('fetches again a cached file whose size changed since it was downloaded', async () => {
    const cacheDir = join(work, 'damaged')
    const first = await downloadModel('Org/tiny-bert', { ...options, cacheDir, remoteHost: good.url })
    const weights = join(first.dir, 'onnx', 'model.onnx')
    await truncate(weights, 1000)
    // Offline, the damaged file is not served as a cache hit.
    await assert.rejects(downloadModel('Org/tiny-bert', { ...options, cacheDir, remoteHost: good.url, allowRemote: false }), ModelLoadError)
    const from = good.log.length
    const again = await downloadModel('Org/tiny-bert', { ...options, cacheDir, remoteHost: good.url })
    assert.equal(again.cached, false)
    assert.deepEqual(onnxGets(good, from), ['/Org/tiny-bert/resolve/main/onnx/model.onnx'])
    assert.deepEqual(await readFile(weights), await readFile(join(bertDir(), 'onnx', 'model.onnx')))
    assert.equal((await downloadModel('Org/tiny-bert', { ...options, cacheDir, remoteHost: good.url })).cached, true)
  })

  it('reports files found in the cache as cached, not as downloads', async () => {
    const cacheDir = join(work, 'variants')
    await writeFile(join(bertDir(), 'onnx', 'model_quantized.onnx'), await readFile(join(bertDir(), 'onnx', 'model.onnx')))
    await downloadModel('Org/tiny-bert', { ...options, cacheDir, remoteHost: good.url })
    const events: DownloadProgressEvent[] = []
    const q8 = await downloadModel('Org/tiny-bert', { ...options, cacheDir, remoteHost: good.url, dtype: 'q8', onProgress: e => events.push(e) })
    assert.equal(q8.cached, false)
    for (const file of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) {
      const mine = events.filter(e => e.file === file)
      assert.deepEqual(mine.map(e => e.status), ['cached'], file)
      const size = statSync(join(bertDir(), file)).size
      assert.equal(mine[0].loaded, size, file)
      assert.equal(mine[0].total, size, file)
    }
    const weights = events.filter(e => e.file === 'onnx/model_quantized.onnx')
    assert.deepEqual([...new Set(weights.map(e => e.status))], ['initiate', 'download', 'progress', 'done'])
    const last = events.at(-1)
    assert.ok(last !== undefined && last.modelTotal > 0)
    assert.equal(last.modelLoaded, last.modelTotal)
  })

  it('removes temporary files of a killed download, and keeps those of a live process', async () => {
    const cacheDir = join(work, 'killed')
    const folder = join(cacheDir, 'Org', 'tiny-bert', 'onnx')
    await mkdir(folder, { recursive: true })
    const exited = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' })
    const deadPid = Number(exited.stdout)
    assert.ok(deadPid > 0)
    const stale = join(folder, `model.onnx.tmp.${deadPid}.k3x9`)
    const live = join(folder, `model.onnx.tmp.${process.ppid}.a1b2`)
    const fresh = join(folder, `model.onnx.tmp.${deadPid}.f0f0`)
    for (const file of [stale, live, fresh]) await writeFile(file, 'partial')
    const old = new Date(Date.now() - 3600_000)
    await utimes(stale, old, old)
    await utimes(live, old, old)
    await downloadModel('Org/tiny-bert', { ...options, cacheDir, remoteHost: good.url })
    assert.equal(existsSync(stale), false, 'the dead process\'s old temporary is gone')
    assert.equal(existsSync(live), true, 'a live process\'s temporary is kept')
    assert.equal(existsSync(fresh), true, 'a temporary written to within the last minute is kept')
  })
})
