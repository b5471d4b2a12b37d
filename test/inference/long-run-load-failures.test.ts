/**
 * A long-running server sees the same broken model requested again and again: each failed load must
 * leave nothing behind (no session, no reservation in hardware.max_memory), however far it got.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { AutoModelForCausalLM } from '@huggingface/transformers'
import { resolveConfig } from '../../src/config/resolve.js'
import { ModelLoadError } from '../../src/errors.js'
import { WorkerEngine } from '../../src/inference/worker-engine.js'
import { tinyModels, type TinyModels } from '../helpers/tiny-models.js'
import { cpuOnly } from '../helpers/cpu-only-hardware.js'

describe('failed loads in a long-running engine', () => {
  let models: TinyModels

  before(async () => {
    models = await tinyModels(['gpt2'])
    // The weights load; the tokenizer does not.
    writeFileSync(join(models.dir('gpt2'), 'tokenizer.json'), '{ not json')
  })
  after(() => { models.cleanup() })

  it('disposes of the session a load created when another part of the model fails to load', async () => {
    const engine = new WorkerEngine(resolveConfig({ hardware: { max_memory: '64MiB' }, logging: { level: 'SILENT' } }, { env: {} }), cpuOnly(), { progress: () => {}, log: () => {} })
    // Count the sessions transformers.js creates for the model and those disposed of.
    const original = AutoModelForCausalLM.from_pretrained
    let created = 0
    let disposed = 0
    AutoModelForCausalLM.from_pretrained = async function (this: typeof AutoModelForCausalLM, ...args: Parameters<typeof original>) {
      const model = await original.apply(this, args)
      created++
      const dispose = model.dispose.bind(model)
      model.dispose = async () => { disposed++; return await dispose() }
      return model
    } as typeof original
    try {
      for (let i = 0; i < 3; i++) {
        await assert.rejects(engine.infer(models.dir('gpt2'), { input_ids: [1, 2], max_new_tokens: 2 }, 'text_generation', () => {}), ModelLoadError)
      }
      assert.ok(created > 0, 'the weights loaded before the tokenizer failed')
      assert.equal(disposed, created, 'every session of a failed load is disposed of')
      const budget = (engine as unknown as { loader: { budget: { used: number, keys: () => string[] } } }).loader.budget
      assert.equal(budget.used, 0, 'no reservation is left behind')
    } finally {
      AutoModelForCausalLM.from_pretrained = original
      await engine.stop()
    }
  })
})
