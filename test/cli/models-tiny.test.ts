import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, existsSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const cli = (...args: string[]): ReturnType<typeof spawnSync> =>
  spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { encoding: 'utf8', timeout: 120_000 })

describe('ipfs-accelerate models tiny', () => {
  it('writes a model with the requested sizes, and the same bytes twice', () => {
    const root = mkdtempSync(join(tmpdir(), 'ia-cli-tiny-'))
    try {
      const a = cli('models', 'tiny', 'bert', join(root, 'a'), '--hidden-size', '64', '--layers', '3', '--heads', '4', '--positions', '256', '--vocab', '2048')
      assert.equal(a.status, 0, String(a.stderr))
      const info = JSON.parse(String(a.stdout))
      assert.equal(info.family, 'bert')
      const config = JSON.parse(readFileSync(join(root, 'a', 'config.json'), 'utf8'))
      assert.equal(config.hidden_size, 64)
      assert.equal(config.num_hidden_layers, 3)
      assert.equal(config.max_position_embeddings, 256)
      assert.equal(config.vocab_size, 2048)
      const b = cli('models', 'tiny', 'bert', join(root, 'b'), '--hidden-size', '64', '--layers', '3', '--heads', '4', '--positions', '256', '--vocab', '2048')
      assert.equal(b.status, 0)
      assert.deepEqual(readFileSync(join(root, 'b', 'onnx', 'model.onnx')), readFileSync(join(root, 'a', 'onnx', 'model.onnx')))
    } finally {
      rmSync(root, { recursive: true, force: true })
    }
  })

  it('refuses an unknown family and impossible sizes with exit code 2, writing nothing', () => {
    const root = mkdtempSync(join(tmpdir(), 'ia-cli-tiny-'))
    try {
      const family = cli('models', 'tiny', 'llama', join(root, 'x'))
      assert.equal(family.status, 2)
      assert.match(String(family.stderr), /ValidationError: family/)
      const heads = cli('models', 'tiny', 'bert', join(root, 'y'), '--hidden-size', '30', '--heads', '4')
      assert.equal(heads.status, 2)
      assert.match(String(heads.stderr), /hiddenSize/)
      assert.equal(existsSync(join(root, 'y', 'onnx')), false)
      const notNumber = cli('models', 'tiny', 'bert', join(root, 'z'), '--layers', 'many')
      assert.equal(notNumber.status, 2)
      assert.match(String(notNumber.stderr), /option '--layers <n>' argument 'many' is invalid/)
    } finally {
      rmSync(root, { recursive: true, force: true })
    }
  })

  it('refuses a target that is a file or a folder holding something else (exit 2), and rebuilds the same model in place', () => {
    const root = mkdtempSync(join(tmpdir(), 'ia-cli-tiny-'))
    try {
      writeFileSync(join(root, 'a-file'), 'x')
      const file = cli('models', 'tiny', 'bert', join(root, 'a-file'))
      assert.equal(file.status, 2, String(file.stderr))
      assert.match(String(file.stderr), /ValidationError: dir: .*a-file exists and is not a folder/)
      const below = cli('models', 'tiny', 'bert', join(root, 'a-file', 'model'))
      assert.equal(below.status, 2, String(below.stderr))
      assert.match(String(below.stderr), /ValidationError: dir: .*inside a file/)

      mkdirSync(join(root, 'mine'))
      writeFileSync(join(root, 'mine', 'notes.txt'), 'keep me')
      const full = cli('models', 'tiny', 'bert', join(root, 'mine'))
      assert.equal(full.status, 2, String(full.stderr))
      assert.match(String(full.stderr), /ValidationError: dir: .*is not empty/)
      assert.deepEqual(readdirSync(join(root, 'mine')), ['notes.txt'])

      mkdirSync(join(root, 'empty'))
      assert.equal(cli('models', 'tiny', 'bert', join(root, 'empty'), '--layers', '1').status, 0)
      // The same family and options again: replaced, same bytes.
      const before = readFileSync(join(root, 'empty', 'onnx', 'model.onnx'))
      const again = cli('models', 'tiny', 'bert', join(root, 'empty'), '--layers', '1')
      assert.equal(again.status, 0, String(again.stderr))
      assert.deepEqual(readFileSync(join(root, 'empty', 'onnx', 'model.onnx')), before)
      // Other options, or another family: refused, the model left as it was.
      const other = cli('models', 'tiny', 'bert', join(root, 'empty'), '--layers', '2')
      assert.equal(other.status, 2, String(other.stderr))
      const family = cli('models', 'tiny', 'gpt2', join(root, 'empty'))
      assert.equal(family.status, 2, String(family.stderr))
      assert.deepEqual(readFileSync(join(root, 'empty', 'onnx', 'model.onnx')), before)
      // No temporary folders are left next to the targets.
      assert.deepEqual(readdirSync(root).sort(), ['a-file', 'empty', 'mine'])
    } finally {
      rmSync(root, { recursive: true, force: true })
    }
  })

  it('refuses a target the file system cannot create (under /proc) with exit 2, ValidationError on dir, without hanging', { skip: process.platform !== 'linux' }, () => {
    // a recursive mkdir of /proc/<new>/model spun for ever on Node 20; the helper kills the CLI after 120 s
    for (const dir of ['/proc/ia-cli-tiny', '/proc/ia-cli-tiny/model']) {
      const result = cli('models', 'tiny', 'bert', dir, '--layers', '1')
      assert.equal(result.status, 2, `${dir}: ${String(result.stderr)}`)
      assert.match(String(result.stderr), new RegExp(`^ValidationError: dir: ${dir} cannot be created: ENOENT`))
    }
  })
})
