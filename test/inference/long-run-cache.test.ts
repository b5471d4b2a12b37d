/**
 * The result cache over a long run: the memory it really holds stays near `cache_size` whatever the
 * results hold, and what a hit returns is the stored result, whatever callers did to earlier copies.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { ResultCache } from '../../src/inference/result-cache.js'

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

/** Heap and off-heap bytes the process holds once garbage is collected. */
function held (): number {
  gc()
  gc()
  const { heapUsed, external } = process.memoryUsage()
  return heapUsed + external
}

describe('ResultCache over a long run', () => {
  it('holds about cache_size in real memory when results hold text past Latin-1', () => {
    const max = 4 * 2 ** 20
    const before = held()
    const cache = new ResultCache(max)
    // Generated text with one arrow in it, beside thousands of ASCII characters.
    for (let i = 0; i < 400; i++) {
      cache.set(ResultCache.key('m', 'text_generation', i), { text: `→ ${'word '.repeat(2000)}${i}`, generated_ids: Array.from({ length: 500 }, (_, k) => k + i) })
    }
    const grown = held() - before
    assert.ok(cache.stats().bytes <= max)
    assert.ok(grown < 1.25 * max, `the cache holds ${(grown / 2 ** 20).toFixed(2)} MiB for a bound of 4 MiB`)
    // What was stored comes back as it was.
    const last = cache.get(ResultCache.key('m', 'text_generation', 399)) as { text: string }
    assert.equal(last.text, `→ ${'word '.repeat(2000)}399`)
  })

  it('gives every hit the stored result, whatever callers did to what they were given', () => {
    const cache = new ResultCache(2 ** 20)
    const result = { embedding: [0.5, 0.25], labels: [{ label: 'café ☕', score: 1 }], model: 'm' }
    cache.set('k', result)
    result.embedding[0] = 42
    const first = cache.get('k') as typeof result
    first.embedding[1] = 42
    first.labels[0].label = 'changed'
    assert.deepEqual(cache.get('k'), { embedding: [0.5, 0.25], labels: [{ label: 'café ☕', score: 1 }], model: 'm' })
  })
})
