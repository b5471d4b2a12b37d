/**
 * The journal (pack index, datastore) when a write fails: a full disk (ENOSPC) or a failing one (EIO)
 * mid-append, a failing compaction, and what a killed process leaves (a torn tail, a temporary file).
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { appendFile, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { Journal } from '../../src/content/journal.js'
import { ContentVerificationError } from '../../src/errors.js'
import { faultsUnsupported, injectFaults, type FaultAction } from './fault-fs.js'

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s)
const text = (b: Uint8Array | undefined): string | undefined => b === undefined ? undefined : new TextDecoder().decode(b)

async function reopened (file: string): Promise<Journal> {
  const j = new Journal(file)
  await j.open()
  return j
}

describe('journal crash consistency', { skip: faultsUnsupported }, () => {
  let dir: string
  before(async () => { dir = await mkdtemp(path.join(tmpdir(), 'ipfs-accelerate-crash-journal-')) })
  after(async () => { await rm(dir, { recursive: true, force: true }) })

  /** Runs `fn` with the journal's next write turned into `action` (once). */
  async function withOneFault (file: string, action: FaultAction, fn: () => Promise<void>): Promise<void> {
    let armed = true
    const restore = await injectFaults(({ op, file: f }) => {
      if (!armed || f !== file || op !== 'write') return undefined
      armed = false
      return action
    })
    try {
      await fn()
    } finally {
      restore()
    }
  }

  it('a short write (a disk filling up) is completed, not left as a torn record that hides later ones', async () => {
    const file = path.join(dir, 'short', 'journal')
    const j = await reopened(file)
    await withOneFault(file, { short: true }, async () => {
      j.set('a', bytes('1'))
      await j.flush()
    })
    j.set('b', bytes('2'))
    await j.close()
    const again = await reopened(file)
    assert.equal(text(again.get('a')), '1')
    assert.equal(text(again.get('b')), '2')
    await again.close()
  })

  for (const code of ['ENOSPC', 'EIO']) {
    it(`a failed write (${code}) is reported by flush, and written by the next flush once the disk allows`, async () => {
      const file = path.join(dir, `fail-${code}`, 'journal')
      const j = await reopened(file)
      j.set('keep', bytes('0'))
      await j.flush()
      await withOneFault(file, { fail: code }, async () => {
        j.set('a', bytes('1'))
        j.delete('keep')
        await assert.rejects(j.flush(), { code })
      })
      j.set('b', bytes('2'))
      await j.flush()
      await j.close()
      const again = await reopened(file)
      assert.deepEqual([text(again.get('a')), text(again.get('b')), again.has('keep')], ['1', '2', false])
      await again.close()
    })
  }

  it('a failed write is retried by flush even when nothing else is written', async () => {
    const file = path.join(dir, 'retry', 'journal')
    const j = await reopened(file)
    await withOneFault(file, { fail: 'ENOSPC' }, async () => {
      j.set('a', bytes('1'))
      await assert.rejects(j.flush(), { code: 'ENOSPC' })
    })
    await j.flush()
    const size = (await stat(file)).size
    await j.close()
    assert.equal((await stat(file)).size, size)
    const again = await reopened(file)
    assert.equal(text(again.get('a')), '1')
    await again.close()
  })

  it('a compaction that fails (disk full) leaves the journal working and no temporary file', async () => {
    const file = path.join(dir, 'compact', 'journal')
    const j = await reopened(file)
    const restore = await injectFaults(({ op, file: f }) => op === 'writeFile' && f.startsWith(file) ? { fail: 'ENOSPC' } : undefined)
    try {
      // superseded records past the compaction threshold (10,000 more than live keys)
      for (let i = 0; i < 10_050; i++) j.set('k', bytes(String(i)))
      await j.flush()
    } finally {
      restore()
    }
    j.set('x', bytes('y'))
    await j.flush()
    await j.close()
    assert.deepEqual((await readdir(path.dirname(file))).sort(), ['journal'])
    const again = await reopened(file)
    assert.equal(text(again.get('k')), '10049')
    assert.equal(text(again.get('x')), 'y')
    await again.close()
  })

  it('close releases the file even when the last write fails', async () => {
    const file = path.join(dir, 'close', 'journal')
    const j = await reopened(file)
    await withOneFault(file, { fail: 'EIO' }, async () => {
      j.set('a', bytes('1'))
      await assert.rejects(j.close(), { code: 'EIO' })
    })
    const fds = await readdir('/proc/self/fd').catch(() => [] as string[])
    const { readlinkSync } = await import('node:fs')
    assert.equal(fds.filter(fd => { try { return readlinkSync(`/proc/self/fd/${fd}`) === file } catch { return false } }).length, 0)
  })

  it('a torn or garbage tail (a process killed mid-append) is cut off; earlier records and later appends survive', async () => {
    const file = path.join(dir, 'torn', 'journal')
    const j = await reopened(file)
    j.set('a', bytes('1'))
    await j.close()
    for (const tail of [Buffer.from([1, 5, 0, 0, 0]), Buffer.from('garbage that is not a record at all')]) {
      await appendFile(file, tail)
      const again = await reopened(file)
      assert.equal(text(again.get('a')), '1')
      again.set('b', bytes('2'))
      await again.close()
      const third = await reopened(file)
      assert.equal(text(third.get('b')), '2')
      await third.close()
    }
  })

  it('a temporary file left by a process killed mid-compaction is removed at open', async () => {
    const file = path.join(dir, 'stale-tmp', 'journal')
    const j = await reopened(file)
    j.set('a', bytes('1'))
    await j.close()
    await writeFile(`${file}.999999.tmp`, 'half a journal')
    const again = await reopened(file)
    assert.equal(text(again.get('a')), '1')
    await again.close()
    assert.deepEqual(await readdir(path.dirname(file)), ['journal'])
  })

  it('a file that is not a journal is refused with a typed error naming it, and left as it is', async () => {
    const file = path.join(dir, 'foreign', 'journal')
    await mkdir(path.dirname(file), { recursive: true })
    await writeFile(file, 'someone else\'s data')
    await assert.rejects(reopened(file), (err: unknown) => err instanceof ContentVerificationError && err.context.file === file)
    assert.equal(await readFile(file, 'utf8'), 'someone else\'s data')
  })
})
