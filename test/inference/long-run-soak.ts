/**
 * A soak run by hand (not part of the suite): many thousands of mixed requests on the tiny models, some
 * aborted, some invalid, some cache hits, some streamed; prints the main thread's heap (after gc), the
 * process RSS (worker included), the engine's bookkeeping and the active resources every round, then
 * stops and checks that nothing keeps the process alive.
 *
 *   node --expose-gc --import tsx test/inference/long-run-soak.ts [rounds] [requests-per-round]
 *
 * SOAK_NO_CACHE=1 turns the result cache off, so that every request reaches the worker.
 */
import { IpfsAccelerate } from '../../src/accelerator.js'
import { tinyModels } from '../helpers/tiny-models.js'

const rounds = Number(process.argv[2] ?? 10)
const perRound = Number(process.argv[3] ?? 500)
const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) throw new Error('run with --expose-gc')

const models = await tinyModels(['bert', 'gpt2', 'vit', 'clip', 'wav2vec2'])
const acc = new IpfsAccelerate({
  logging: { level: 'SILENT' },
  hardware: { batch_size: 4 },
  performance: { cache_size: '1MiB', parallel_requests: 2, enable_caching: process.env.SOAK_NO_CACHE !== '1' }
}, {}, { env: {} })

const pixels = (seed: number): { data: Float32Array, dims: number[] } =>
  ({ data: Float32Array.from({ length: 3 * 224 * 224 }, (_, i) => Math.sin(i * 0.001 * seed) * 0.8), dims: [1, 3, 224, 224] })
const tone = (hz: number): Float32Array => Float32Array.from({ length: 4000 }, (_, i) => 0.4 * Math.sin(2 * Math.PI * hz * i / 16_000))

const counts: Record<string, number> = {}
const count = (what: string): void => { counts[what] = (counts[what] ?? 0) + 1 }

async function one (i: number): Promise<void> {
  const kind = i % 8
  const abort = i % 7 === 0 ? new AbortController() : undefined
  const signal = abort?.signal
  // Some callers give up at once, some a little later.
  if (abort !== undefined) { if (i % 2 === 0) queueMicrotask(() => { abort.abort() }); else setTimeout(() => { abort.abort() }, i % 5) }
  try {
    switch (kind) {
      case 0: // fresh embeddings: cache misses that fill the cache
        await acc.processAsync(models.dir('bert'), { input_ids: [101, 7 + (i % 500), 102] }, 'text_embedding', { signal }); break
      case 1: // the same input again and again: cache hits
        await acc.processAsync(models.dir('bert'), { input_ids: [101, 7, 102] }, 'text_embedding', { signal }); break
      case 2:
        await acc.processAsync(models.dir('gpt2'), { input_ids: [1, 2, i % 50], max_new_tokens: 4 }, 'text_generation', { signal }); break
      case 3: { // streaming, left early half the time
        let n = 0
        for await (const _ of acc.streamGeneration(models.dir('gpt2'), { input_ids: [3, i % 50], max_new_tokens: 6 })) if (++n === 2 && i % 2 === 0) break
        break
      }
      case 4:
        await acc.processAsync(models.dir('vit'), { pixel_values: pixels(1 + (i % 3)) }, 'image_classification', { signal }); break
      case 5:
        await acc.processAsync(models.dir('wav2vec2'), { input_values: tone(200 + i % 300), sampling_rate: 16_000 }, 'audio_transcription', { signal }); break
      case 6:
        await acc.processAsync(models.dir('clip'), { pixel_values: pixels(2), candidate_labels: ['a cat', `a dog ${i % 5}`] }, 'zero_shot_image_classification', { signal }); break
      case 7: // invalid input
        await acc.processAsync(models.dir('bert'), { input_ids: [101, -5] }, 'text_embedding', { signal }); break
    }
    count('ok')
  } catch (err) {
    count((err as Error).name)
  }
}

function engineState (): Record<string, number> {
  const e = (acc as unknown as { engineInstance?: Record<string, { size: number } | unknown[]> }).engineInstance
  if (e === undefined) return {}
  return { pending: (e.pending as Map<unknown, unknown>).size, unanswered: (e.unanswered as Set<unknown>).size, signals: (e.signals as Map<unknown, unknown>).size }
}

const mb = (n: number): string => (n / 2 ** 20).toFixed(1)
let i = 0
for (let r = 0; r < rounds; r++) {
  const calls: Array<Promise<void>> = []
  for (let k = 0; k < perRound; k++) {
    const p = one(i++)
    calls.push(p)
    if (k % 16 === 15) await Promise.all(calls.splice(0))
  }
  await Promise.all(calls)
  gc(); await new Promise(resolve => setTimeout(resolve, 50)); gc()
  const mem = process.memoryUsage()
  console.log(`round ${r + 1}: ${i} requests, heap ${mb(mem.heapUsed)} MiB, rss ${mb(mem.rss)} MiB, external ${mb(mem.external)} MiB, arrayBuffers ${mb(mem.arrayBuffers)} MiB,`,
    JSON.stringify(engineState()), 'cache', JSON.stringify(acc.cacheStats()), 'resources', JSON.stringify(process.getActiveResourcesInfo()))
}
console.log('outcomes', JSON.stringify(counts))
await acc.stop()
models.cleanup()
gc()
console.log('after stop: resources', JSON.stringify(process.getActiveResourcesInfo()))
const t = setTimeout(() => { console.log('STILL ALIVE 10 s after stop:', JSON.stringify(process.getActiveResourcesInfo())); process.exit(1) }, 10_000)
t.unref()
process.on('exit', () => { console.log('exited on its own') })
