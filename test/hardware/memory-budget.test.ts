import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { hardwareSchema } from '../../src/config/schema.js'
import { ModelLoadError } from '../../src/errors.js'
import { MemoryBudget } from '../../src/hardware/index.js'

describe('MemoryBudget', () => {
  it('evicts least recently used models first, just enough to fit', () => {
    const budget = new MemoryBudget(100)
    assert.deepEqual(budget.reserve('a', 40), [])
    assert.deepEqual(budget.reserve('b', 30), [])
    assert.deepEqual(budget.reserve('c', 20), [])
    budget.touch('a')
    // Order of use is now b, c, a: fitting 50 more needs b (30) and c (20) gone, not a.
    assert.deepEqual(budget.reserve('d', 50), ['b', 'c'])
    assert.deepEqual(budget.keys(), ['a', 'd'])
    assert.equal(budget.used, 90)
  })

  it('re-reserving a key replaces its size and makes it most recent', () => {
    const budget = new MemoryBudget(100)
    budget.reserve('a', 50)
    budget.reserve('b', 40)
    // a's old 50 no longer counts: 70 + b's 40 exceeds 100, so b goes.
    assert.deepEqual(budget.reserve('a', 70), ['b'])
    assert.equal(budget.used, 70)
  })

  it('release() frees room; unknown keys are ignored', () => {
    const budget = new MemoryBudget(100)
    budget.reserve('a', 70)
    budget.release('a')
    budget.release('nope')
    budget.touch('nope')
    assert.deepEqual(budget.reserve('b', 100), [])
    assert.equal(budget.has('a'), false)
  })

  it('refuses a model larger than the bound, with its context, evicting nothing', () => {
    const budget = new MemoryBudget(1000)
    budget.reserve('small', 10)
    assert.throws(() => budget.reserve('key\u0000big', 2000, 'org/big-model'), (err: unknown) => {
      assert.ok(err instanceof ModelLoadError)
      assert.deepEqual({ model: err.context.model, bytes: err.context.bytes, max_memory: err.context.max_memory }, { model: 'org/big-model', bytes: 2000, max_memory: 1000 })
      assert.match(err.message, /org\/big-model needs 2\.0 KiB \(2000 bytes\), more than hardware\.max_memory allows/)
      return true
    })
    assert.deepEqual(budget.keys(), ['small'])
  })

  it('never evicts when unbounded, and reads hardware.max_memory', () => {
    const unbounded = MemoryBudget.fromConfig(hardwareSchema.parse({}))
    assert.equal(unbounded.maxBytes, undefined)
    unbounded.reserve('a', 10 ** 12)
    assert.deepEqual(unbounded.reserve('b', 10 ** 12), [])
    assert.equal(MemoryBudget.fromConfig(hardwareSchema.parse({ max_memory: '8GB' })).maxBytes, 8e9)
  })
})
