import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { writeModelFiles, type ModelFileContent } from '../../../src/models/tiny/write-model-files.js'
import { ValidationError } from '../../../src/errors.js'

describe('writeModelFiles', () => {
  let root: string

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'write-model-files-'))
  })

  after(async () => {
    await rm(root, { recursive: true, force: true })
  })

  const model = (seed: number): Record<string, ModelFileContent> => ({
    'config.json': { model_type: 'bert', ipfs_accelerate_tiny: { family: 'bert', seed } },
    'onnx/model.onnx': new Uint8Array([1, 2, 3, seed])
  })

  it('writes the folder, creating its parents', async () => {
    const dir = join(root, 'a', 'b', 'model')
    assert.deepEqual(await writeModelFiles(dir, model(1)), ['config.json', 'onnx/model.onnx'])
    assert.deepEqual(JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')).ipfs_accelerate_tiny, { family: 'bert', seed: 1 })
    assert.deepEqual(await readdir(join(root, 'a', 'b')), ['model'])
  })

  it('leaves nothing, not even the parents it created, when a write fails midway', async () => {
    const dir = join(root, 'fresh', 'deeper', 'model')
    // The second file cannot be serialised: the first one is already written by then.
    await assert.rejects(writeModelFiles(dir, { 'a.json': { ok: true }, 'b.json': { n: 1n } }), TypeError)
    assert.deepEqual((await readdir(root)).filter(n => n !== 'a'), [])
  })

  it('replaces the same model, and refuses other content, files and links as ValidationError on dir', async () => {
    const dir = join(root, 'same')
    await writeModelFiles(dir, model(2))
    await writeModelFiles(dir, model(2))
    const isDirError = (e: unknown): boolean => e instanceof ValidationError && e.context.field === 'dir'
    await assert.rejects(writeModelFiles(dir, model(3)), isDirError)
    await writeFile(join(dir, 'extra.txt'), 'mine')
    await assert.rejects(writeModelFiles(dir, model(2)), isDirError)
    await writeFile(join(root, 'file'), 'x')
    await assert.rejects(writeModelFiles(join(root, 'file'), model(2)), isDirError)
    await assert.rejects(writeModelFiles(join(root, 'file', 'below'), model(2)), isDirError)
    await mkdir(join(root, 'target'))
    await symlink(join(root, 'target'), join(root, 'link'))
    await assert.rejects(writeModelFiles(join(root, 'link'), model(2)), isDirError)
    assert.deepEqual((await readdir(root)).filter(n => n.startsWith('.')), [], 'no temporary folder is left')
  })

  it('a destination the file system cannot create (under /proc) is a ValidationError on dir, not a bare errno or a hang', { timeout: 20_000, skip: process.platform !== 'linux' }, async () => {
    // /proc/<new>: the temporary sibling cannot be made; /proc/<new>/model: nor can its parent (a recursive
    // mkdir spun for ever there on Node 20; the first case fails fast without the fix, before reaching it)
    for (const dir of ['/proc/ia-tiny-model', '/proc/ia-tiny-parent/model']) {
      await assert.rejects(writeModelFiles(dir, model(4)), (e: unknown) =>
        e instanceof ValidationError && e.context.field === 'dir' && e.message.startsWith(`dir: ${dir} cannot be created: ENOENT`) && (e.cause as NodeJS.ErrnoException).code === 'ENOENT', dir)
    }
  })
})
