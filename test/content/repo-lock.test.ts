import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, rm, readFile, readdir, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { LOCK_FILE, lockRepo, processIdentity } from '../../src/content/repo-lock.js'
import { ValidationError } from '../../src/errors.js'

const linux = existsSync('/proc/self/stat')

describe('repository lock', () => {
  let dir: string
  let other: ChildProcess // a live process that is not a store (nor node)
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'ipfs-accelerate-lock-'))
    other = spawn('sleep', ['60'], { stdio: 'ignore' })
    await new Promise(resolve => other.once('spawn', resolve))
  })
  after(async () => {
    other.kill()
    await rm(dir, { recursive: true, force: true })
  })

  async function repoWithLock (name: string, content: string): Promise<string> {
    const repo = path.join(dir, name)
    await lockRepo(repo).then(async release => await release()) // creates the folder
    await writeFile(path.join(repo, LOCK_FILE), content)
    return repo
  }

  it('refuses a repository path that is a file (or under one) with a ValidationError on ipfs.repo', async () => {
    const file = path.join(dir, 'a-file')
    await writeFile(file, 'x')
    for (const repo of [file, path.join(file, 'below')]) {
      await assert.rejects(lockRepo(repo), (err: unknown) => err instanceof ValidationError && err.context.field === 'ipfs.repo' && /is a file/.test(err.message))
    }
  })

  it('records the pid with the process start time, and refuses a second holder while it is held', async () => {
    const repo = path.join(dir, 'held')
    const release = await lockRepo(repo)
    const lock = JSON.parse(await readFile(path.join(repo, LOCK_FILE), 'utf8'))
    assert.equal(lock.pid, process.pid)
    if (linux) assert.equal(lock.start, processIdentity(process.pid)?.start)
    await assert.rejects(lockRepo(repo), { name: 'ValidationError', message: /in use by another HeliaStore in this process/ })
    await release()
    assert.equal(existsSync(path.join(repo, LOCK_FILE)), false)
    await (await lockRepo(repo))()
  })

  it('a lock naming this process is live only while this process holds it (any platform)', async () => {
    // As written where /proc is missing (no start time): held by us, a second store is refused ...
    const repo = path.join(dir, 'same-process')
    const release = await lockRepo(repo)
    await assert.rejects(lockRepo(repo), (err: unknown) => err instanceof ValidationError && /another HeliaStore in this process/.test(err.message))
    await release()
    // ... and left behind by an earlier process that had our pid, it is taken over.
    const leftover = await repoWithLock('leftover-own-pid', JSON.stringify({ pid: process.pid, host: 'h', token: 't' }) + '\n')
    const taken = await lockRepo(leftover)
    assert.match(await readFile(path.join(leftover, LOCK_FILE), 'utf8'), new RegExp(`"pid":${process.pid}`))
    await taken()
    // nothing but the lock itself is left in the folder (the temporary file used to create it is gone)
    assert.deepEqual((await readdir(leftover)).filter(n => n.includes('.tmp')), [])
  })

  it('respects a live holder whose identity matches', { skip: !linux && 'needs /proc' }, async () => {
    const identity = processIdentity(other.pid as number)
    assert.ok(identity !== undefined)
    const repo = await repoWithLock('live', JSON.stringify({ pid: other.pid, ...identity, host: 'h', token: 't' }))
    await assert.rejects(lockRepo(repo), (err: Error & { context?: Record<string, unknown> }) => {
      assert.equal(err.name, 'ValidationError')
      assert.match(err.message, new RegExp(`in use by process ${String(other.pid)}`))
      assert.equal(err.context?.pid, other.pid)
      return true
    })
  })

  it('takes over a lock whose pid now belongs to another process (reused pid, pid 1 after a restart)', { skip: !linux && 'needs /proc' }, async () => {
    const identity = processIdentity(other.pid as number) as { start: string, boot: string }
    for (const lock of [
      { pid: other.pid, start: String(Number(identity.start) + 1), boot: identity.boot }, // started later
      { pid: other.pid, start: identity.start, boot: 'another-boot' }, // before a reboot
      { pid: process.pid, start: '1', boot: identity.boot } // this pid, an earlier process
    ]) {
      const repo = await repoWithLock(`reused-${String(lock.pid)}-${lock.start}-${lock.boot}`, JSON.stringify(lock))
      const release = await lockRepo(repo)
      assert.equal(JSON.parse(await readFile(path.join(repo, LOCK_FILE), 'utf8')).pid, process.pid)
      await release()
    }
  })

  it('takes over an older-format lock naming a dead pid, this pid, or a process running another program', { skip: !linux && 'needs /proc' }, async () => {
    for (const content of ['999999999 stale', `${process.pid} old`, `${String(other.pid)} recycled`, 'garbage']) {
      const repo = await repoWithLock(`legacy-${content.split(' ')[0]}`, content)
      const release = await lockRepo(repo)
      await release()
    }
  })
})
