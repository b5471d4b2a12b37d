import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync, lstatSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { CID } from 'multiformats/cid'
import { base16 } from 'multiformats/bases/base16'
import { buildTinyModel } from '../../src/models/tiny/index.js'
import { HeliaStore } from '../../src/content/helia-store.js'
import { publishModel } from '../../src/content/model-pack.js'
import * as dagPb from '@ipld/dag-pb'
import { seededBytes } from '../content/seeded-bytes.js'
import { damageBlock } from '../content/damage-block.js'
import { createIpfsServer, type IpfsServer } from '../../src/server/create-ipfs-server.js'
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

/**
 * Runs the real CLI in a child process (asynchronously: the hub server answers from this process);
 * `killAfterMs`: SIGKILL it then (code null), for a command that might never end.
 */
async function cli (home: string, args: string[], stdin?: string, killAfterMs?: number): Promise<RunResult> {
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
  const timer = killAfterMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), killAfterMs)
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject)
    child.once('close', resolve)
  }).finally(() => clearTimeout(timer))
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
    const hashed = ok(await cli(home, ['ipfs', 'add', '--only-hash', folder]), 'add -n dir')
    assert.equal((await cli(home, ['ipfs', 'cat', `${hashed}/a.txt`])).code, 1, 'only-hash stored nothing')
    const cid = ok(await cli(home, ['ipfs', 'add', folder]), 'add dir')
    assert.match(cid, /^Qm/)
    assert.equal(cid, hashed, 'only-hash gives the CID of the real add')
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

  it('gc names a damaged pinned block, removes nothing and exits 1; a re-add repairs it', async () => {
    const damagedHome = path.join(root, 'damaged-home')
    const file = path.join(root, 'big.bin')
    await writeFile(file, seededBytes(700_000, 5)) // CIDv0: dag-pb leaves, which gc reads
    const rootCid = ok(await cli(damagedHome, ['ipfs', 'add', file]), 'add')
    const store = new HeliaStore({ repo: path.join(damagedHome, 'ipfs') })
    let leaf: CID
    try {
      leaf = dagPb.decode(await store.getBlock(CID.parse(rootCid))).Links[1].Hash
      await damageBlock(store.blockstore, leaf)
    } finally {
      await store.stop()
    }
    assert.equal((await cli(damagedHome, ['ipfs', 'cat', rootCid])).code, 1, 'the damage is found on read')
    const gc = await cli(damagedHome, ['ipfs', 'gc'])
    assert.equal(gc.code, 1, gc.stderr)
    assert.match(gc.stdout, /^removed 0 blocks/)
    assert.match(gc.stderr, new RegExp(`cannot read block ${leaf.toString()} under pin ${rootCid}`))
    ok(await cli(damagedHome, ['ipfs', 'add', file]), 're-add')
    ok(await cli(damagedHome, ['ipfs', 'gc']), 'gc after the repair')
    const back = path.join(root, 'big-back.bin')
    ok(await cli(damagedHome, ['ipfs', 'get', rootCid, '-o', back]), 'get after the repair')
    assert.deepEqual(await readFile(back), await readFile(file))
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

  describe('paths after a CID, pins, outputs', () => {
    let dirCid: string
    let subCid: string
    before(async () => {
      const folder = path.join(root, 'paths')
      await mkdir(path.join(folder, 'sub'), { recursive: true })
      await writeFile(path.join(folder, 'a'), 'alpha\n')
      await writeFile(path.join(folder, 'empty'), '')
      await writeFile(path.join(folder, 'sub', 'b'), 'beta\n')
      dirCid = ok(await cli(home, ['ipfs', 'add', '--no-pin', folder]), 'add')
      const listed = ok(await cli(home, ['ipfs', 'pin', 'ls']), 'pin ls').split('\n')
      assert.ok(!listed.includes(dirCid))
      subCid = ok(await cli(home, ['ipfs', 'pin', `${dirCid}/sub`]), 'pin a path').replace(/^pinned /, '')
    })

    it('a segment below a file is NotFoundError for cat and get, never the file\'s content', async () => {
      for (const args of [['ipfs', 'cat', `${dirCid}/a/b`], ['ipfs', 'cat', `/ipfs/${dirCid}/empty/x`], ['ipfs', 'get', `${dirCid}/a/b`, '-o', path.join(root, 'never')]]) {
        const result = await cli(home, args)
        assert.equal(result.code, 1, `${args.join(' ')}: ${result.stderr}`)
        assert.match(result.stderr, /^NotFoundError: .*no link named "[bx]"/, args.join(' '))
        assert.equal(result.stdout, '')
      }
      assert.equal(existsSync(path.join(root, 'never')), false)
      assert.equal((await cli(home, ['ipfs', 'cat', `${dirCid}/a`])).stdout, 'alpha\n')
    })

    it('pin <cid>/<path> pins what the path names; pin rm unpins roots only and says when nothing was pinned', async () => {
      const pins = ok(await cli(home, ['ipfs', 'pin', 'ls']), 'pin ls').split('\n')
      assert.ok(pins.includes(subCid), 'the target of the path is pinned')
      assert.ok(!pins.includes(dirCid), 'not the root before the path')
      const inner = await cli(home, ['ipfs', 'pin', 'rm', `${dirCid}/a`])
      assert.equal(inner.code, 2, inner.stderr)
      assert.match(inner.stderr, /^ValidationError: cid: .* not pinned itself: pin rm takes a pinned root CID/)
      // a path naming a pinned root is that root
      assert.equal(ok(await cli(home, ['ipfs', 'pin', 'rm', `${dirCid}/sub`]), 'pin rm path of a root'), `unpinned ${subCid}`)
      const again = await cli(home, ['ipfs', 'pin', 'rm', subCid])
      assert.equal(again.code, 1)
      assert.match(again.stderr, /^NotFoundError: .* is not pinned or pinned indirectly/)
      assert.equal(again.stdout, '')
    })

    it('accepts a CIDv1 in base16 (or any multibase)', async () => {
      assert.equal((await cli(home, ['ipfs', 'cat', CID.parse(HELLO_V1).toString(base16)])).stdout, 'hello world\n')
    })

    it('an output that exists (even as a dangling link) or cannot be created is a ValidationError, nothing written', async () => {
      const file = path.join(root, 'a-file')
      await writeFile(file, 'x')
      const dangling = path.join(root, 'dangling')
      await symlink(path.join(root, 'nowhere'), dangling)
      const cases: Array<[string, RegExp]> = [
        [path.join(file, 'child'), /cannot be created: .*a-file is not a folder/],
        [dangling, /already exists \(as a symbolic link\)/]
      ]
      if (existsSync('/proc/self')) cases.push(['/proc/nope', /cannot write \/proc\/nope/])
      for (const [output, message] of cases) {
        const result = await cli(home, ['ipfs', 'get', dirCid, '-o', output])
        assert.equal(result.code, 2, `${output}: ${result.stderr}`)
        assert.match(result.stderr, new RegExp(`^ValidationError: output: .*${message.source}`), output)
      }
      assert.ok(lstatSync(dangling).isSymbolicLink(), 'the link is left alone')
      assert.deepEqual((await readdir(root)).filter(n => n.startsWith('.partial')), [])
    })

    it('models pull refuses a path and a cache folder that cannot be created', async () => {
      const withPath = await cli(home, ['models', 'pull', `${dirCid}/sub`])
      assert.equal(withPath.code, 2)
      assert.match(withPath.stderr, /^ValidationError: cid: a model pack is named by its root CID/)
      const file = path.join(root, 'a-file')
      await writeFile(file, 'x')
      const cacheDir = await cli(home, ['models', 'pull', dirCid, '--cache-dir', file])
      assert.equal(cacheDir.code, 2)
      assert.match(cacheDir.stderr, /^ValidationError: cache-dir: .*a-file is not a folder/)
    })
  })

  it('paths under /proc (repository, output, cache folder) are a ValidationError naming the input, exit 2, not a hang', { skip: process.platform !== 'linux' }, async () => {
    // A recursive mkdir spun for ever there on Node 20: each command is killed after a minute (code null).
    const fileCid = ok(await cli(home, ['ipfs', 'add', '--no-pin', path.join(root, 'hello.txt')]), 'add')
    const cases: Array<[string[], RegExp]> = [
      [['ipfs', 'pin', 'ls', '--repo', '/proc/ia-no-repo'], /^ValidationError: ipfs\.repo: cannot use \/proc\/ia-no-repo as the IPFS repository: ENOENT/],
      [['ipfs', 'add', path.join(root, 'hello.txt'), '--repo', '/proc/ia-no-repo/deeper'], /^ValidationError: ipfs\.repo: cannot use \/proc\/ia-no-repo\/deeper as the IPFS repository: ENOENT/],
      [['ipfs', 'get', fileCid, '-o', '/proc/ia-no-output/file'], /^ValidationError: output: cannot write \/proc\/ia-no-output\/file: no such file or directory \(ENOENT\)/]
    ]
    for (const [args, message] of cases) {
      const result = await cli(home, args, undefined, 60_000)
      assert.equal(result.code, 2, `${args.join(' ')}: ${result.code ?? 'killed'} ${result.stderr}`)
      assert.match(result.stderr, message, args.join(' '))
      assert.equal(result.stdout, '')
    }
    const folder = path.join(root, 'proc-pack')
    await buildTinyModel('bert', folder, { numLayers: 1 })
    const pack = ok(await cli(home, ['models', 'publish', folder]), 'publish')
    const pull = await cli(home, ['models', 'pull', pack, '--cache-dir', '/proc/ia-no-cache'], undefined, 60_000)
    assert.equal(pull.code, 2, `models pull: ${pull.code ?? 'killed'} ${pull.stderr}`)
    assert.match(pull.stderr, /^ValidationError: cache-dir: cannot write \/proc\/ia-no-cache\/ipfs\/\w+: no such file or directory \(ENOENT\)/)
  })

  describe('through a configured gateway or Kubo node (ipfs.gateway, ipfs.local_node)', () => {
    let store: HeliaStore
    let server: IpfsServer
    let modelCid: string
    let modelDir: string
    let dirCid: string
    before(async () => {
      store = new HeliaStore({ repo: path.join(root, 'server-repo') })
      modelDir = path.join(root, 'remote-bert')
      await buildTinyModel('bert', modelDir)
      modelCid = (await publishModel(store, modelDir)).cid
      const folder = path.join(root, 'remote-files')
      await mkdir(folder, { recursive: true })
      await writeFile(path.join(folder, 'note.txt'), 'remote note\n')
      dirCid = (await store.addDirectory(folder)).toString()
      server = await createIpfsServer({ store })
    })
    after(async () => {
      await server.close()
      await store.stop()
    })

    async function configFor (name: string, ipfs: Record<string, unknown>): Promise<{ home: string, config: string }> {
      const fresh = path.join(root, `home-${name}`)
      await mkdir(fresh, { recursive: true })
      const config = path.join(root, `${name}.json`)
      await writeFile(config, JSON.stringify({ ipfs: { enable_local_gateway: false, timeout: 10, retry_count: 0, ...ipfs } }))
      return { home: fresh, config }
    }

    it('models pull fetches a pack the local store lacks from the gateway', async () => {
      const { home: fresh, config } = await configFor('gateway', { gateway: server.url })
      const pulled = ok(await cli(fresh, ['--config', config, 'models', 'pull', modelCid]), 'pull over the gateway')
      assert.equal(pulled, path.join(fresh, 'models', 'ipfs', CID.parse(modelCid).toV1().toString()))
      for (const f of await filesUnder(modelDir)) {
        assert.ok((await readFile(path.join(modelDir, f))).equals(await readFile(path.join(pulled, f))), f)
      }
      assert.ok(ok(await cli(fresh, ['ipfs', 'pin', 'ls']), 'pin ls').split('\n').includes(modelCid), 'pinned locally')
      const out = path.join(root, 'gw-get')
      ok(await cli(fresh, ['--config', config, 'ipfs', 'get', dirCid, '-o', out]), 'get over the gateway')
      assert.equal(await readFile(path.join(out, 'note.txt'), 'utf8'), 'remote note\n')
    })

    it('ipfs add and models publish with local_node also put the content on the Kubo node, pinned', async () => {
      const { home: fresh, config } = await configFor('kubo-add', { local_node: server.url })
      const file = path.join(root, 'to-kubo.txt')
      await writeFile(file, 'added here, copied to kubo\n')
      const cid = CID.parse(ok(await cli(fresh, ['--config', config, 'ipfs', 'add', file]), 'add with local_node'))
      assert.equal(await store.isPinned(cid), true)
      assert.equal(Buffer.from(await store.get(cid)).toString(), 'added here, copied to kubo\n')
      const folder = path.join(root, 'to-kubo-model')
      await buildTinyModel('bert', folder, { seed: 5 })
      const pack = CID.parse(ok(await cli(fresh, ['--config', config, 'models', 'publish', folder]), 'publish with local_node'))
      assert.equal(await store.isPinned(pack), true)
    })

    it('ipfs cat, get and pin read through a Kubo node', async () => {
      const { home: fresh, config } = await configFor('kubo', { local_node: server.url })
      const cat = await cli(fresh, ['--config', config, 'ipfs', 'cat', `${dirCid}/note.txt`])
      assert.equal(cat.code, 0, cat.stderr)
      assert.equal(cat.stdout, 'remote note\n')
      const out = path.join(root, 'kubo-get.txt')
      ok(await cli(fresh, ['--config', config, 'ipfs', 'get', `${dirCid}/note.txt`, '-o', out]), 'get over Kubo')
      assert.equal(await readFile(out, 'utf8'), 'remote note\n')
      assert.equal(ok(await cli(fresh, ['--config', config, 'ipfs', 'pin', dirCid]), 'pin over Kubo'), `pinned ${dirCid}`)
      // without the config, only the local store: what was pinned is there, a path below a file is still not found
      assert.equal((await cli(fresh, ['ipfs', 'cat', `${dirCid}/note.txt`])).stdout, 'remote note\n')
      const below = await cli(fresh, ['--config', config, 'ipfs', 'cat', `${dirCid}/note.txt/x`])
      assert.equal(below.code, 1)
      assert.match(below.stderr, /^NotFoundError/)
    })
  })
})
