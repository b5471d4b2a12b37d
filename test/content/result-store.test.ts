import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { CID } from 'multiformats/cid'
import { HeliaStore } from '../../src/content/helia-store.js'
import { ResultStore, RESULT_INDEX_FILE } from '../../src/content/result-store.js'
import type { Logger } from '../../src/logging/logger.js'

/** A logger that keeps the messages of warnings. */
function recordingLogger (): { logger: Logger, warnings: string[] } {
  const warnings: string[] = []
  const logger = {
    child: () => logger,
    warn: (_obj: unknown, message?: string) => { warnings.push(message ?? '') },
    debug: () => {},
    info: () => {}
  }
  return { logger: logger as unknown as Logger, warnings }
}

describe('ResultStore (results kept in IPFS)', () => {
  let dir: string
  let store: HeliaStore
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'ipfs-accelerate-results-'))
    store = new HeliaStore({ repo: path.join(dir, 'repo') })
  })
  after(async () => {
    await store.stop()
    await rm(dir, { recursive: true, force: true })
  })

  async function indexOnDisk (): Promise<Record<string, string>> {
    return JSON.parse(await readFile(path.join(store.repo, RESULT_INDEX_FILE), 'utf8')) as Record<string, string>
  }

  it('a stored result whose content was unpinned and collected is a miss, dropped from the index, stored again', async () => {
    const { logger, warnings } = recordingLogger()
    const results = new ResultStore(store, store.repo, { logger })
    const cid = await results.set('k1', { embedding: [1, 2] })
    await results.set('k2', { embedding: [3] })
    assert.deepEqual((await results.get('k1'))?.value, { embedding: [1, 2] })
    await store.unpin(CID.parse(cid))
    await store.gc()
    assert.equal(await results.get('k1'), undefined, 'a miss, not an error')
    assert.match(warnings.join('\n'), /cannot be read back/)
    assert.deepEqual(Object.keys(await indexOnDisk()), ['k2'], 'dropped from the index on disk')
    // a fresh instance (a restart) does not see it either, and the result is stored again
    const again = new ResultStore(store, store.repo)
    assert.equal(await again.get('k1'), undefined)
    assert.equal(await again.set('k1', { embedding: [1, 2] }), cid)
    assert.deepEqual((await again.get('k1'))?.value, { embedding: [1, 2] })
    assert.deepEqual(Object.keys(await indexOnDisk()).sort(), ['k1', 'k2'])
  })

  it('an entry that is not a CID or not a JSON result is a miss too', async () => {
    await writeFile(path.join(store.repo, RESULT_INDEX_FILE), JSON.stringify({ bad: 'not-a-cid', text: (await store.put(new TextEncoder().encode('plain text'))).toString() }))
    const results = new ResultStore(store, store.repo)
    assert.equal(await results.get('bad'), undefined)
    assert.equal(await results.get('text'), undefined)
    assert.deepEqual(await indexOnDisk(), {})
  })

  it('an index that is not valid JSON is set aside and a fresh one started', async () => {
    const file = path.join(store.repo, RESULT_INDEX_FILE)
    for (const corrupt of ['{not json', '[1, 2]']) {
      await writeFile(file, corrupt)
      const { logger, warnings } = recordingLogger()
      const results = new ResultStore(store, store.repo, { logger })
      assert.equal(await results.get('k1'), undefined)
      assert.match(warnings.join('\n'), /not valid JSON: set aside/)
      const cid = await results.set('k3', { text: 'ok' })
      assert.deepEqual(await indexOnDisk(), { k3: cid })
      const aside = (await readdir(store.repo)).filter(n => n.startsWith(`${RESULT_INDEX_FILE}.corrupt-`))
      assert.ok(aside.length > 0)
      assert.ok((await Promise.all(aside.map(async n => await readFile(path.join(store.repo, n), 'utf8')))).includes(corrupt), 'the corrupt file is kept aside')
      for (const n of aside) await rm(path.join(store.repo, n))
    }
  })
})
