import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { ModelLoadError } from '../../src/errors.js'
import { MemoryBudget } from '../../src/hardware/memory-budget.js'

/** Whether a promise has settled, after letting pending callbacks run. */
async function settled (promise: Promise<unknown>): Promise<boolean> {
  let done = false
  promise.then(() => { done = true }, () => { done = true })
  await new Promise(resolve => setImmediate(resolve))
  return done
}

describe('MemoryBudget: models in use', () => {
  it('never evicts a key in use, and evicts idle keys around it', () => {
    const budget = new MemoryBudget(100)
    budget.reserve('a', 40)
    budget.reserve('b', 40)
    const releaseA = budget.use('a')
    assert.equal(budget.inUse('a'), true)
    // a is least recently used but in use: b goes instead.
    assert.deepEqual(budget.reserve('c', 50), ['b'])
    assert.deepEqual(budget.keys(), ['a', 'c'])
    releaseA()
    releaseA() // a second call changes nothing
    assert.equal(budget.inUse('a'), false)
  })

  it('reserve() refuses, evicting nothing, when only keys in use stand in the way', () => {
    const budget = new MemoryBudget(100)
    budget.reserve('a', 60)
    budget.reserve('b', 30)
    budget.use('a')
    assert.throws(() => budget.reserve('c', 50, 'org/c'), (err: unknown) => {
      assert.ok(err instanceof ModelLoadError)
      assert.deepEqual(err.context.in_use, ['a'])
      return true
    })
    assert.deepEqual(budget.keys(), ['a', 'b'])
    assert.equal(budget.used, 90)
  })

  it('reserveWhenFree() waits until the key in use is released, then evicts it synchronously', async () => {
    const budget = new MemoryBudget(100)
    budget.reserve('a', 80)
    const releaseA = budget.use('a')
    const evicted: string[] = []
    const granted = budget.reserveWhenFree('b', 80, 'b', victim => {
      // Called at the moment of the decision: the budget already no longer holds the victim.
      assert.equal(budget.has(victim), false)
      evicted.push(victim)
    })
    assert.equal(await settled(granted), false)
    assert.equal(budget.waiting, 1)
    assert.equal(budget.isWaiting('b'), true)
    assert.equal(budget.has('b'), false)
    assert.equal(budget.used, 80)
    releaseA()
    // Granted within release(): no other code could pick up 'a' in between.
    assert.deepEqual(evicted, ['a'])
    assert.deepEqual(budget.keys(), ['b'])
    assert.deepEqual(await granted, ['a'])
    assert.equal(budget.waiting, 0)
  })

  it('uses nest: the key is free only when every use is released', async () => {
    const budget = new MemoryBudget(10)
    budget.reserve('a', 10)
    const r1 = budget.use('a')
    const r2 = budget.use('a')
    const granted = budget.reserveWhenFree('b', 10)
    r1()
    assert.equal(await settled(granted), false)
    r2()
    assert.deepEqual(await granted, ['a'])
  })

  it('grants waiting reservations in arrival order; a later one never overtakes the first', async () => {
    const budget = new MemoryBudget(100)
    budget.reserve('big', 90)
    const releaseBig = budget.use('big')
    const first = budget.reserveWhenFree('x', 60)
    // 'y' (10 bytes) would fit right now, but waits behind 'x'.
    const second = budget.reserveWhenFree('y', 10)
    assert.equal(await settled(second), false)
    const gate = budget.whenWaitersServed()
    assert.ok(gate !== undefined)
    releaseBig()
    assert.deepEqual(await first, ['big'])
    assert.deepEqual(await second, [])
    await gate
    assert.equal(budget.whenWaitersServed(), undefined)
    assert.deepEqual(budget.keys(), ['x', 'y'])
  })

  it('a released reservation wakes a waiter, and a key in use not yet reserved does not block', async () => {
    const budget = new MemoryBudget(100)
    budget.reserve('a', 70)
    const releaseA = budget.use('a')
    budget.use('loading') // in use, not reserved: takes no room
    const granted = budget.reserveWhenFree('b', 50)
    budget.release('a') // explicitly unloaded while in use
    assert.deepEqual(await granted, [])
    releaseA()
    assert.equal(budget.used, 50)
  })

  it('still refuses a model larger than the bound at once, and cancelWaiting() rejects waiters', async () => {
    const budget = new MemoryBudget(100)
    await assert.rejects(budget.reserveWhenFree('huge', 101, 'org/huge'), (err: unknown) =>
      err instanceof ModelLoadError && err.context.model === 'org/huge' && err.context.max_memory === 100)
    assert.equal(budget.waiting, 0)
    budget.reserve('a', 100)
    budget.use('a')
    const waiting = budget.reserveWhenFree('b', 100)
    const gate = budget.whenWaitersServed()
    budget.cancelWaiting(new Error('stopping'))
    await assert.rejects(waiting, /stopping/)
    await gate
    assert.deepEqual(budget.keys(), ['a'])
  })

  it('never waits when unbounded', async () => {
    const budget = new MemoryBudget(undefined)
    budget.reserve('a', 10 ** 12)
    budget.use('a')
    assert.deepEqual(await budget.reserveWhenFree('b', 10 ** 12), [])
  })
})
