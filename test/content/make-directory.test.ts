import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { makeDirectory } from '../../src/content/make-directory.js'

describe('makeDirectory', () => {
  let root: string
  before(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'ia-make-directory-'))
  })
  after(async () => {
    await rm(root, { recursive: true, force: true })
  })

  it('creates every missing level and returns the first one it created; an existing folder gives undefined', { timeout: 20_000 }, async () => {
    const deep = path.join(root, 'a', 'b', 'c')
    assert.equal(await makeDirectory(deep), path.join(root, 'a'))
    assert.ok((await stat(deep)).isDirectory())
    assert.equal(await makeDirectory(deep), undefined)
    assert.equal(await makeDirectory(path.join(root, 'a', 'b')), undefined)
    assert.equal(await makeDirectory(path.join(root, 'a', 'd')), path.join(root, 'a', 'd'))
    // the same answer as fs.mkdir's for a relative path: the first folder created, as given
    const cwd = process.cwd()
    process.chdir(root)
    try {
      assert.equal(await makeDirectory(path.join('rel', 'x')), 'rel')
    } finally {
      process.chdir(cwd)
    }
  })

  it('concurrent calls for overlapping paths all succeed', { timeout: 20_000 }, async () => {
    const paths = Array.from({ length: 8 }, (_, i) => path.join(root, 'race', 'shared', String(i % 2)))
    await Promise.all(paths.map(async p => await makeDirectory(p)))
    for (const p of paths) assert.ok((await stat(p)).isDirectory())
  })

  it('a file at the path is EEXIST, a file above it ENOTDIR, as fs.mkdir', { timeout: 20_000 }, async () => {
    const file = path.join(root, 'a-file')
    await writeFile(file, 'x')
    await assert.rejects(makeDirectory(file), { code: 'EEXIST', syscall: 'mkdir' })
    await assert.rejects(makeDirectory(path.join(file, 'x', 'y')), { code: 'ENOTDIR', syscall: 'mkdir' })
  })

  it('a level that answers ENOENT although its parent exists (procfs) is thrown, not retried for ever', { timeout: 20_000, skip: process.platform !== 'linux' }, async () => {
    // a retry loop would not end: the test's timeout fails it (no timing is asserted)
    for (const dir of ['/proc/ia-no-such-dir', '/proc/ia-no-such-dir/x/y']) {
      await assert.rejects(makeDirectory(dir), { code: 'ENOENT', syscall: 'mkdir', path: '/proc/ia-no-such-dir' })
    }
  })
})
