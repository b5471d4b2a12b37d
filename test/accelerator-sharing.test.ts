import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { IpfsAccelerate, IpfsConnectionError } from '../src/index.js'
import { createIpfsServer, type IpfsServer } from '../src/server/create-ipfs-server.js'
import { tinyModels, type TinyModels } from './helpers/tiny-models.js'
import { buildTinyModel } from '../src/models/tiny/index.js'
import { CID } from 'multiformats/cid'

/**
 * Two instances with separate repositories: the publisher serves its store as a trustless gateway on
 * 127.0.0.1 (and as a Kubo RPC API); the user reaches it only through `ipfs.gateway` or
 * `ipfs.local_node`, pulls a model by CID (every block verified) and runs it.
 */
describe('sharing models and data between two instances over HTTP', () => {
  let models: TinyModels
  let home: string
  let publisher: IpfsAccelerate
  let server: IpfsServer
  let modelCid: string
  let dataCid: string

  const user = (ipfs: Record<string, unknown>, name: string): IpfsAccelerate => new IpfsAccelerate({
    logging: { level: 'SILENT' },
    ipfs: { repo: join(home, name, 'repo'), enable_local_gateway: false, timeout: 10, retry_count: 1, ...ipfs },
    hub: { cache_dir: join(home, name, 'models') }
  }, {}, { env: {} })

  before(async () => {
    models = await tinyModels(['bert'])
    home = mkdtempSync(join(tmpdir(), 'ia-share-'))
    publisher = new IpfsAccelerate({
      logging: { level: 'SILENT' },
      ipfs: { repo: join(home, 'publisher'), enable_local_gateway: false }
    }, {}, { env: {} })
    modelCid = (await publisher.publishModel(models.dir('bert'))).cid
    dataCid = await publisher.storeToIpfs(new TextEncoder().encode('shared result bytes'))
    server = await createIpfsServer({ store: (await publisher.content()).helia })
  })
  after(async () => {
    await server?.close()
    await publisher?.stop()
    models.cleanup()
    rmSync(home, { recursive: true, force: true })
  })

  for (const [name, ipfs] of [
    ['trustless gateway', (url: string) => ({ gateway: `${url}/ipfs/` })],
    ['Kubo RPC API', (url: string) => ({ local_node: url })]
  ] as const) {
    it(`pulls a model by CID through the ${name} and runs it`, async () => {
      const acc = user(ipfs(server.url), name.replace(/\W/g, '-'))
      try {
        assert.equal(new TextDecoder().decode(await acc.queryIpfs(dataCid)), 'shared result bytes')
        const remote = await acc.processAsync(`ipfs://${modelCid}`, { input_ids: [101, 2054, 2003, 102] })
        const local = await publisher.processAsync(models.dir('bert'), { input_ids: [101, 2054, 2003, 102] })
        assert.deepEqual(remote.embedding, local.embedding)
        // Now local: the synchronous path finds the pulled pack.
        assert.equal((acc.process(`ipfs://${modelCid}`, { input_ids: [101, 102] }).embedding as number[]).length, 32)
      } finally {
        await acc.stop()
      }
    })
  }

  it('with local_node, what an instance publishes and stores is also on that Kubo node, pinned', async () => {
    const acc = user({ local_node: server.url }, 'writes-to-kubo')
    const other = user({}, 'publishes-locally')
    try {
      const served = (await publisher.content()).helia
      const dataCid = await acc.storeToIpfs(new TextEncoder().encode('stored through local_node'))
      assert.equal(await served.isPinned(CID.parse(dataCid)), true)
      // a pack the serving node does not have yet (another seed than the publisher's)
      const folder = join(home, 'kubo-pack')
      await buildTinyModel('bert', folder, { seed: 77 })
      const { cid } = await acc.publishModel(folder)
      assert.equal(await served.isPinned(CID.parse(cid)), true)
      assert.equal((await other.publishModel(folder)).cid, cid, 'the same CID as a plain publish')
    } finally {
      await acc.stop()
      await other.stop()
    }
  })

  it('says which stores were tried when none can provide the content', async () => {
    const acc = user({ gateway: 'http://127.0.0.1:9/ipfs/' }, 'unreachable')
    try {
      await assert.rejects(acc.queryIpfs(dataCid), (err: unknown) => {
        assert.ok(err instanceof IpfsConnectionError, String(err))
        const attempts = err.context.attempts as Array<{ store: string }>
        assert.deepEqual(attempts.map(a => a.store), ['helia', 'gateway'])
        return true
      })
    } finally {
      await acc.stop()
    }
  })
})
