import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { access, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { AutoConfig, env } from '@huggingface/transformers'
import { TINY_DEFAULTS, TINY_FAMILIES, TINY_TASKS, buildTinyModel, isTinyFamily } from '../../../src/models/tiny/index.js'
import { buildBert } from '../../../src/models/tiny/bert.js'
import { resolveTinyOptions } from '../../../src/models/tiny/tiny-options.js'
import { ValidationError } from '../../../src/errors.js'
import type { TinyFamily } from '../../../src/models/tiny/options.js'

env.allowRemoteModels = false

const MODEL_TYPES: Record<TinyFamily, string> = {
  bert: 'bert', gpt2: 'gpt2', vit: 'vit', clip: 'clip', whisper: 'whisper', wav2vec2: 'wav2vec2'
}

describe('buildTinyModel', () => {
  let root: string

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'tiny-index-'))
  })

  after(async () => {
    await rm(root, { recursive: true, force: true })
  })

  it('has valid defaults and a task for every family', () => {
    assert.deepEqual(Object.keys(TINY_DEFAULTS).sort(), [...TINY_FAMILIES].sort())
    for (const family of TINY_FAMILIES) {
      const defaults = TINY_DEFAULTS[family]
      assert.deepEqual(resolveTinyOptions(undefined, defaults), defaults, family)
      assert.ok(TINY_TASKS[family].length > 0)
      assert.ok(Object.isFrozen(defaults))
    }
    assert.equal(TINY_DEFAULTS.bert.vocabSize >= 4000, true, 'BERT keeps bert-base-uncased ids up to 3746')
    assert.equal(TINY_DEFAULTS.gpt2.maxPositions >= 512, true, 'room for the pipeline default of 256 new tokens')
  })

  for (const family of TINY_FAMILIES) {
    it(`builds ${family} into a folder transformers.js reads`, async () => {
      const dir = join(root, family, 'nested')
      const info = await buildTinyModel(family, dir)
      assert.equal(info.family, family)
      assert.equal(info.dir, dir)
      assert.equal(info.task, TINY_TASKS[family])
      assert.equal(info.options.seed, TINY_DEFAULTS[family].seed)
      assert.ok(info.files.includes('config.json'))
      assert.ok(info.files.some(f => f.startsWith('onnx/') && f.endsWith('.onnx')))
      for (const file of info.files) await access(join(dir, file))
      const config = await AutoConfig.from_pretrained(dir)
      assert.equal(config.model_type, MODEL_TYPES[family])
    })
  }

  it('dispatches to the family builder: same bytes as calling it directly', async () => {
    const options = { hiddenSize: 16, numHeads: 2, numLayers: 1, vocabSize: 1200, maxPositions: 64, seed: 9 }
    const viaIndex = await buildTinyModel('bert', join(root, 'via-index'), options)
    await buildBert(join(root, 'direct'), options)
    assert.deepEqual(viaIndex.options, options)
    for (const file of viaIndex.files) {
      assert.ok((await readFile(join(root, 'via-index', file))).equals(await readFile(join(root, 'direct', file))), file)
    }
  })

  it('rejects unknown families and empty paths with a ValidationError', async () => {
    assert.equal(isTinyFamily('llama'), false)
    assert.equal(isTinyFamily('clip'), true)
    await assert.rejects(buildTinyModel('llama' as TinyFamily, join(root, 'x')), (e: unknown) => e instanceof ValidationError && e.context.field === 'family')
    await assert.rejects(buildTinyModel('bert', ''), (e: unknown) => e instanceof ValidationError && e.context.field === 'dir')
    await assert.rejects(buildTinyModel('gpt2', join(root, 'y'), { numHeads: 0 }), (e: unknown) => e instanceof ValidationError && e.context.field === 'numHeads')
  })
})
