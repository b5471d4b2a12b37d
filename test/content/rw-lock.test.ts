import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { RwLock } from '../../src/content/rw-lock.js'

describe('RwLock', () => {
  it('lets readers share and a writer wait for them, then blocks later readers until it is done', async () => {
    const lock = new RwLock()
    const events: string[] = []
    const r1 = await lock.read()
    const r2 = await lock.read()
    const writer = lock.write().then(release => { events.push('write'); return release })
    const reader3 = lock.read().then(release => { events.push('read3'); return release })
    await new Promise(resolve => setImmediate(resolve))
    assert.deepEqual(events, [])
    r1(); r2()
    const releaseWrite = await writer
    await new Promise(resolve => setImmediate(resolve))
    assert.deepEqual(events, ['write'])
    releaseWrite()
    ;(await reader3)()
    assert.deepEqual(events, ['write', 'read3'])
  })
})
