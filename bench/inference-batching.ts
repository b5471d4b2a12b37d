/**
 * Dynamic batching throughput: a burst of concurrent short requests (different texts, 8-16 tokens)
 * sent to `processAsync` with `hardware.batch_size` 1..64, against what a user of transformers.js
 * would write: one feature-extraction pipeline, one call per request, awaited together with
 * Promise.all. One pipeline call carrying every text as a padded batch is shown for reference.
 * Each burst sends every request at once and waits for every answer; contenders take turns round by
 * round, each running a few warm-up bursts and then measured ones back to back.
 *
 *   npx tsx bench/inference-batching.ts [--requests 64] [--rounds 10] [--bursts 5] [--batch-sizes 1,4,8,16,32,64] [--input text|ids] [--only bert256|tiny]
 */
import { availableParallelism } from 'node:os'
import { pipeline, env as hfEnv } from '@huggingface/transformers'
import { IpfsAccelerate } from '../src/accelerator.js'
import { benchBert, makeInputs, type BenchModel, type BenchInput } from './lib/models.js'
import { interleave, roundRatios, type Contender } from './lib/interleave.js'
import { median, quantile, fmt } from './lib/stats.js'
import { markdownTable } from './lib/table.js'
import { printHeader, argNumber, argList, argValue } from './lib/env.js'

const REQUESTS = argNumber('requests', 64)
const ROUNDS = argNumber('rounds', 10)
/** Bursts per contender per round: warm-up ones (unmeasured) then measured ones, back to back (sustained load). */
const WARMUP_BURSTS = 2
const MEASURED_BURSTS = argNumber('bursts', 5)
const BATCH_SIZES = argList('batch-sizes', [1, 4, 8, 16, 32, 64])
const INPUT = argValue('input') ?? 'text'
const ONLY = argValue('only')
const THREADS = argNumber('threads', availableParallelism())
if (INPUT !== 'text' && INPUT !== 'ids') throw new Error('--input must be text or ids')

hfEnv.allowRemoteModels = false
hfEnv.allowLocalModels = true

const sessionOptions = { intraOpNumThreads: THREADS, interOpNumThreads: 1, executionProviders: ['cpu'] }
const BASELINE = 'transformers.js pipeline, one call per request (Promise.all)'
const ENGINE = (b: number): string => `processAsync, hardware.batch_size ${b}`

/** Lengths 8..16 tokens, cycling, so that batches need padding as real traffic does. */
function burst (model: BenchModel): BenchInput[] {
  const inputs: BenchInput[] = []
  for (let k = 0; k < REQUESTS; k++) inputs.push(makeInputs(model, 8 + (k % 9), 1, k)[0])
  return inputs
}

async function runCase (label: string, model: BenchModel): Promise<Array<Array<string | number>>> {
  const inputs = burst(model)
  const dir = model.dir
  const extractor = await pipeline('feature-extraction', dir, { device: 'cpu', dtype: 'fp32', local_files_only: true, session_options: sessionOptions })
  const engines = new Map<number, IpfsAccelerate>()
  for (const b of BATCH_SIZES) {
    // Defaults otherwise (batch_window_ms 2, parallel_requests 4); the result cache is off so every request runs.
    const acc = new IpfsAccelerate({ logging: { level: 'SILENT' }, hardware: { batch_size: b, threads: THREADS }, performance: { enable_caching: false } }, {}, { env: {} })
    await acc.initEndpoints([dir], { endpoint_types: { [dir]: 'text_embedding' } })
    engines.set(b, acc)
  }
  const request = (i: BenchInput): unknown => INPUT === 'text' ? { text: i.text } : { input_ids: i.ids }
  const contenders: Contender[] = [
    {
      name: BASELINE,
      run: async () => await Promise.all(inputs.map(async i => await extractor(i.text, { pooling: 'mean', normalize: true })))
    },
    {
      name: 'transformers.js pipeline, one call with all texts (padded batch; reference)',
      run: async () => await extractor(inputs.map(i => i.text), { pooling: 'mean', normalize: true })
    },
    ...BATCH_SIZES.map(b => ({
      name: ENGINE(b),
      run: async () => await Promise.all(inputs.map(async i => await engines.get(b)?.processAsync(dir, request(i), 'text_embedding')))
    }))
  ]
  try {
    // Same answers: the engine's vectors equal the pipeline's for every request.
    const [viaEngine, viaPipeline] = await Promise.all([contenders[2].run(), contenders[0].run()]) as [Array<{ embedding: number[] }>, Array<{ data: Float32Array }>]
    viaEngine.forEach((r, k) => {
      const diff = Math.max(...r.embedding.map((v, h) => Math.abs(v - viaPipeline[k].data[h])))
      if (!(diff < 1e-4)) throw new Error(`${label}: request ${k}: engine and pipeline disagree (max diff ${diff})`)
    })
    const result = await interleave(contenders, { rounds: ROUNDS, perRound: MEASURED_BURSTS, warmupPerRound: WARMUP_BURSTS, pauseMs: 5, seed: 11 })
    const base = median(result.samples.get(BASELINE) ?? [])
    return contenders.map(c => {
      const s = result.samples.get(c.name) ?? []
      const ratios = roundRatios(result, BASELINE, c.name)
      const throughput = (ms: number): number => REQUESTS / (ms / 1000)
      return [
        label,
        c.name,
        fmt(throughput(median(s))),
        `${fmt(throughput(quantile(s, 0.9)))}–${fmt(throughput(quantile(s, 0.1)))}`,
        fmt(median(s)),
        `${(base / median(s)).toFixed(2)}x`,
        `${median(ratios).toFixed(2)}x (${quantile(ratios, 0.1).toFixed(2)}–${quantile(ratios, 0.9).toFixed(2)})`
      ]
    })
  } finally {
    await extractor.dispose()
    for (const acc of engines.values()) await acc.stop()
  }
}

async function main (): Promise<void> {
  const started = Date.now()
  printHeader('Inference — dynamic batching', import.meta.url, [
    `${REQUESTS} concurrent requests per burst, 8–16 tokens each (different words), given as ${INPUT === 'text' ? 'text (tokenized by each contender)' : 'input_ids (the pipeline still gets text)'}; mean pooling + L2 normalisation everywhere`,
    `threads: intraOpNumThreads ${THREADS}, interOpNumThreads 1 for every session; result cache off; batch_window_ms 2 (default)`,
    `${ROUNDS} interleaved rounds; in each, every contender runs ${WARMUP_BURSTS} unmeasured bursts then ${MEASURED_BURSTS} measured ones back to back (sustained traffic: a contender switched to cold is slower on its first burst)`
  ])
  const rows: Array<Array<string | number>> = []
  if (ONLY === undefined || ONLY === 'bert256') {
    rows.push(...await runCase('BERT hidden 256, 4 layers', await benchBert('bert256', { hiddenSize: 256, numLayers: 4, numHeads: 4, maxPositions: 512 })))
  }
  if (ONLY === undefined || ONLY === 'tiny') {
    rows.push(...await runCase('tiny BERT (hidden 32, 2 layers)', await benchBert('tiny')))
  }
  console.log(markdownTable(['model', 'contender', 'requests/s (median)', 'requests/s p10–p90', 'burst ms (median)', 'throughput vs one-call-per-request', 'per-round ratio, median (p10–p90)'], rows))
  console.log(`\nTotal run time ${((Date.now() - started) / 1000).toFixed(0)} s.`)
}

await main()
