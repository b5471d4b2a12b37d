import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { CID } from 'multiformats/cid'
import { buildTinyModel } from '../../src/models/tiny/index.js'
import { startHubServer, type HubServer } from '../helpers/hub-server.js'

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
const MAIN = path.join(REPO_ROOT, 'src', 'cli', 'main.ts')

/** `ipfs add` of 'hello world\n' with Kubo (CIDv0 and --cid-version 1). */
const HELLO_V0 = 'QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o'
const HELLO_V1 = 'bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4'

interface RunResult {
  code: number | null
  stdout: string
  stderr: string
}

/** Runs the real CLI in a child process (asynchronously: the hub server answers from this process). */
async function cli (home: string, args: string[], stdin?: string): Promise<RunResult> {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, IPFS_ACCELERATE_HOME: home },
    stdio: ['pipe', 'pipe', 'pipe']
  })
  const out: Buffer[] = []
  const err: Buffer[] = []
  child.stdout.on('data', (c: Buffer) => out.push(c))
  child.stderr.on('data', (c: Buffer) => err.push(c))
  child.stdin.end(stdin)
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject)
    child.once('close', resolve)
  })
  return { code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }
}

function ok (result: RunResult, what: string): string {
  assert.equal(result.code, 0, `${what} exited ${result.code}: ${result.stderr}`)
  return result.stdout.trim()
}

async function filesUnder (dir: string): Promise<string[]> {
  const out: string[] = []
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) out.push(path.relative(dir, path.join(entry.parentPath, entry.name)).split(path.sep).join('/'))
  }
  return out.sort()
}

describe('ipfs-accelerate ipfs / models publish|pull|ls (real CLI)', () => {
  let root: string
  let home: string

  before(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'ipfs-accelerate-cli-ipfs-'))
    home = path.join(root, 'home')
    await mkdir(home)
    await writeFile(path.join(root, 'hello.txt'), 'hello world\n')
  })
  after(async () => {
    await rm(root, { recursive: true, force: true })
  })

  it('adds a file with Kubo\'s CID and cats it back', async () => {
    assert.equal(ok(await cli(home, ['ipfs', 'add', path.join(root, 'hello.txt')]), 'add'), HELLO_V0)
    assert.equal(ok(await cli(home, ['ipfs', 'add', '--cid-version', '1', path.join(root, 'hello.txt')]), 'add v1'), HELLO_V1)
    assert.equal(ok(await cli(home, ['ipfs', 'add', '-'], 'hello world\n'), 'add stdin'), HELLO_V0)
    const cat = await cli(home, ['ipfs', 'cat', HELLO_V0])
    assert.equal(cat.code, 0, cat.stderr)
    assert.equal(cat.stdout, 'hello world\n')
    assert.equal((await cli(home, ['ipfs', 'cat', `ipfs://${HELLO_V1}`])).stdout, 'hello world\n')
    assert.ok(existsSync(path.join(home, 'ipfs', 'datastore')), 'the default repository is $IPFS_ACCELERATE_HOME/ipfs')
  })

  it('adds a folder and gets it back as a folder (and one file of it), refusing to overwrite', async () => {
    const folder = path.join(root, 'tree')
    await mkdir(path.join(folder, 'sub'), { recursive: true })
    await writeFile(path.join(folder, 'a.txt'), 'alpha\n')
    await writeFile(path.join(folder, 'sub', 'b.bin'), Buffer.alloc(300_000, 7))
    const cid = ok(await cli(home, ['ipfs', 'add', folder]), 'add dir')
    assert.match(cid, /^Qm/)
    const out = path.join(root, 'got')
    const get = await cli(home, ['ipfs', 'get', cid, '-o', out])
    assert.equal(ok(get, 'get'), out)
    assert.match(get.stderr, /downloaded .*sub\/b\.bin/, 'progress lines when stderr is not a terminal')
    assert.deepEqual(await filesUnder(out), ['a.txt', 'sub/b.bin'])
    assert.ok((await readFile(path.join(out, 'sub', 'b.bin'))).equals(Buffer.alloc(300_000, 7)))
    const one = path.join(root, 'one.txt')
    ok(await cli(home, ['ipfs', 'get', `${cid}/a.txt`, '-o', one]), 'get file')
    assert.equal(await readFile(one, 'utf8'), 'alpha\n')
    const again = await cli(home, ['ipfs', 'get', cid, '-o', out])
    assert.equal(again.code, 2)
    assert.match(again.stderr, /ValidationError: output: .* already exists/)
    assert.deepEqual((await readdir(root)).filter(n => n.startsWith('.partial')), [])
  })

  it('pins, lists pins, unpins and garbage-collects', async () => {
    await writeFile(path.join(root, 'loose.txt'), 'loose bytes\n')
    const loose = ok(await cli(home, ['ipfs', 'add', '--no-pin', path.join(root, 'loose.txt')]), 'add --no-pin')
    const pins = ok(await cli(home, ['ipfs', 'pin', 'ls']), 'pin ls').split('\n')
    // roots as they were pinned (Kubo's spelling)
    assert.ok(pins.includes(HELLO_V0), pins.join(','))
    assert.ok(!pins.includes(loose))
    assert.equal(ok(await cli(home, ['ipfs', 'pin', loose]), 'pin'), `pinned ${loose}`)
    assert.match(ok(await cli(home, ['ipfs', 'gc']), 'gc'), /^removed \d+ blocks?(, reclaimed .+)?$/)
    assert.equal((await cli(home, ['ipfs', 'cat', loose])).stdout, 'loose bytes\n', 'pinned content survives gc')
    assert.equal(ok(await cli(home, ['ipfs', 'pin', 'rm', loose]), 'pin rm'), `unpinned ${loose}`)
    assert.match(ok(await cli(home, ['ipfs', 'gc']), 'gc'), /^removed [1-9]\d* blocks?(, reclaimed .+)?$/)
    const gone = await cli(home, ['ipfs', 'cat', loose])
    assert.equal(gone.code, 1)
    assert.match(gone.stderr, /NotFoundError/)
    assert.equal((await cli(home, ['ipfs', 'cat', HELLO_V0])).stdout, 'hello world\n')
  })

  it('an invalid CID exits 2 with a clear message and touches nothing', async () => {
    const fresh = path.join(root, 'untouched-home')
    for (const args of [['ipfs', 'cat', 'not-a-cid'], ['ipfs', 'get', 'Qm123', '-o', path.join(root, 'x')], ['ipfs', 'pin', 'rm', 'zzz'], ['models', 'pull', 'bafy-nope']]) {
      const result = await cli(fresh, args)
      assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`)
      assert.match(result.stderr, /^ValidationError: cid: .* is not a valid CID/, args.join(' '))
      assert.equal(result.stdout, '')
    }
    const version = await cli(fresh, ['ipfs', 'add', '--cid-version', '2', path.join(root, 'hello.txt')])
    assert.equal(version.code, 2)
    assert.match(version.stderr, /ValidationError: cid-version: expected 0 or 1/)
    assert.equal(existsSync(fresh), false, 'no repository was created')
  })

  it('models publish, pull and ls on a tiny model folder', async () => {
    const model = path.join(root, 'tiny-bert')
    await buildTinyModel('bert', model)
    const cid = ok(await cli(home, ['models', 'publish', model]), 'publish')
    assert.match(cid, /^Qm/)
    assert.equal(ok(await cli(home, ['models', 'publish', model]), 'publish again'), cid)
    const pulled = ok(await cli(home, ['models', 'pull', cid]), 'pull')
    assert.equal(pulled, path.join(home, 'models', 'ipfs', CID.parse(cid).toV1().toString()))
    for (const f of await filesUnder(model)) {
      assert.ok((await readFile(path.join(model, f))).equals(await readFile(path.join(pulled, f))), f)
    }
    const cacheDir = path.join(root, 'elsewhere')
    assert.equal(ok(await cli(home, ['models', 'pull', `ipfs://${cid}`, '--cache-dir', cacheDir]), 'pull --cache-dir'),
      path.join(cacheDir, 'ipfs', CID.parse(cid).toV1().toString()))
    const listed = JSON.parse(ok(await cli(home, ['models', 'ls', '--json']), 'ls')) as Array<{ cid: string, pinned: boolean, dir?: string, manifest: { task: string, files: Array<{ path: string }> } }>
    const entry = listed.find(e => e.cid === cid)
    assert.ok(entry !== undefined, JSON.stringify(listed))
    assert.equal(entry.pinned, true)
    assert.equal(entry.dir, pulled)
    assert.equal(entry.manifest.task, 'text_embedding')
    const table = ok(await cli(home, ['models', 'ls']), 'ls table')
    assert.match(table, new RegExp(`^${cid}\\tBertModel\\ttext_embedding\\tfp32\\t.*\\tpinned\\+pulled\\t`, 'm'))
  })

  describe('models publish <hub id>', () => {
    let hubRoot: string
    let server: HubServer
    before(async () => {
      hubRoot = path.join(root, 'hub')
      await buildTinyModel('bert', path.join(hubRoot, 'Org', 'tiny-bert'))
      server = await startHubServer(hubRoot)
    })
    after(async () => {
      await server.close()
    })

    it('downloads the model first, then publishes exactly the downloaded files', async () => {
      const config = path.join(root, 'config.json')
      await writeFile(config, JSON.stringify({ hub: { remote_host: server.url, cache_dir: path.join(root, 'hub-cache') } }))
      const cid = ok(await cli(home, ['--config', config, 'models', 'publish', 'Org/tiny-bert']), 'publish hub id')
      assert.ok(server.requests.some(r => r.includes('/Org/tiny-bert/resolve/main/onnx/model.onnx')))
      const listed = JSON.parse(ok(await cli(home, ['models', 'ls', '--json']), 'ls')) as Array<{ cid: string, manifest: { source?: string } }>
      const entry = listed.find(e => e.cid === CID.parse(cid).toV1().toString() || e.cid === cid)
      assert.equal(entry?.manifest.source, 'Org/tiny-bert@main')
    })
  })
})
