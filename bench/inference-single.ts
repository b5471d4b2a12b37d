/**
 * Single-request latency: `processAsync` / `process` against the same model called directly through
 * transformers.js (AutoModel and the feature-extraction pipeline) and through a bare onnxruntime-node
 * InferenceSession, all in one process with the same thread settings, interleaved round by round.
 * A second engine with hardware.batch_size 8 shows what the batch window costs a lone request.
 *
 *   npx tsx bench/inference-single.ts [--rounds 40] [--per-round 8] [--threads N] [--only tiny|bert256]
 */
import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import * as ort from 'onnxruntime-node'
import { AutoModel, pipeline, Tensor, env as hfEnv } from '@huggingface/transformers'
import { IpfsAccelerate } from '../src/accelerator.js'
import { benchBert, makeInputs, type BenchModel } from './lib/models.js'
import { interleave, roundRatios, type Contender } from './lib/interleave.js'
import { median, p90, quantile, fmt } from './lib/stats.js'
import { markdownTable } from './lib/table.js'
import { printHeader, argNumber, argValue } from './lib/env.js'

const ROUNDS = argNumber('rounds', 40)
const PER_ROUND = argNumber('per-round', 8)
const WARMUP_PER_ROUND = 2
/** The engine's own setting: hardware.threads, else one intra-op thread per core, one inter-op thread. */
const THREADS = argNumber('threads', availableParallelism())
const ONLY = argValue('only')

hfEnv.allowRemoteModels = false
hfEnv.allowLocalModels = true

const sessionOptions = { intraOpNumThreads: THREADS, interOpNumThreads: 1, executionProviders: ['cpu'] }

interface Case {
  label: string
  model: BenchModel
  seq: number
}

const RAW = 'onnxruntime-node InferenceSession.run'
/** The second engine: batching on, with the default window. */
const BATCHING_SIZE = 8
const BATCHING_WINDOW_MS = 2

async function contendersFor (c: Case, acc: IpfsAccelerate, batching: IpfsAccelerate): Promise<{ contenders: Contender[], close: () => Promise<void> }> {
  const dir = c.model.dir
  const [input] = makeInputs(c.model, c.seq, 1)
  const ids = input.ids
  const seq = ids.length

  const session = await ort.InferenceSession.create(join(dir, 'onnx', 'model.onnx'), sessionOptions)
  const model = await AutoModel.from_pretrained(dir, { device: 'cpu', dtype: 'fp32', local_files_only: true, session_options: sessionOptions })
  const extractor = await pipeline('feature-extraction', dir, { device: 'cpu', dtype: 'fp32', local_files_only: true, session_options: sessionOptions })
  await acc.initEndpoints([dir], { endpoint_types: { [dir]: 'text_embedding' } })
  await batching.initEndpoints([dir], { endpoint_types: { [dir]: 'text_embedding' } })

  const contenders: Contender[] = [
    {
      name: RAW,
      run: async () => {
        // The same inputs transformers.js feeds the graph (it adds zero token_type_ids itself).
        const dims = [1, seq]
        return await session.run({
          input_ids: new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), dims),
          attention_mask: new ort.Tensor('int64', new BigInt64Array(seq).fill(1n), dims),
          token_type_ids: new ort.Tensor('int64', new BigInt64Array(seq), dims)
        })
      }
    },
    {
      name: 'transformers.js AutoModel call',
      run: async () => {
        const dims = [1, seq]
        return await model({
          input_ids: new Tensor('int64', BigInt64Array.from(ids, BigInt), dims),
          attention_mask: new Tensor('int64', new BigInt64Array(seq).fill(1n), dims)
        })
      }
    },
    {
      name: 'transformers.js pipeline (text, mean+normalize)',
      run: async () => await extractor(input.text, { pooling: 'mean', normalize: true })
    },
    {
      name: 'IpfsAccelerate.processAsync (ids)',
      run: async () => await acc.processAsync(dir, { input_ids: ids }, 'text_embedding')
    },
    {
      name: 'IpfsAccelerate.processAsync (text)',
      run: async () => await acc.processAsync(dir, { text: input.text }, 'text_embedding')
    },
    {
      name: 'IpfsAccelerate.process (sync, ids)',
      run: () => acc.process(dir, { input_ids: ids }, 'text_embedding')
    },
    {
      // A lone request on an engine configured for batching waits out batch_window_ms for company.
      name: `processAsync (ids), hardware.batch_size ${BATCHING_SIZE}, batch_window_ms ${BATCHING_WINDOW_MS}`,
      run: async () => await batching.processAsync(dir, { input_ids: ids }, 'text_embedding')
    }
  ]
  // Sanity: every path sees the same sequence and the engine's vector matches the pipeline's.
  const viaEngine = (await acc.processAsync(dir, { input_ids: ids }, 'text_embedding')).embedding as number[]
  const viaPipeline = Array.from((await extractor(input.text, { pooling: 'mean', normalize: true })).data as Float32Array)
  const diff = Math.max(...viaEngine.map((v, i) => Math.abs(v - viaPipeline[i])))
  if (!(diff < 1e-4)) throw new Error(`${c.label}: engine and pipeline disagree (max diff ${diff})`)
  return {
    contenders,
    close: async () => {
      await session.release()
      await model.dispose()
      await extractor.dispose()
    }
  }
}

async function main (): Promise<void> {
  const started = Date.now()
  printHeader('Inference — single request', import.meta.url, [
    `threads: intraOpNumThreads ${THREADS}, interOpNumThreads 1 for every contender (the engine's default: one per core)`,
    `${ROUNDS} interleaved rounds x ${PER_ROUND} measured calls per contender (after ${WARMUP_PER_ROUND} warm-up calls each round); result cache off, hardware.batch_size 1 unless the row says otherwise`
  ])
  const cases: Case[] = []
  if (ONLY === undefined || ONLY === 'tiny') {
    cases.push({ label: 'tiny BERT (default: hidden 32, 2 layers), 16 tokens', model: await benchBert('tiny'), seq: 16 })
  }
  if (ONLY === undefined || ONLY === 'bert256') {
    cases.push({ label: 'BERT hidden 256, 4 layers, 4 heads, 128 tokens', model: await benchBert('bert256', { hiddenSize: 256, numLayers: 4, numHeads: 4, maxPositions: 512 }), seq: 128 })
  }
  // One engine for both models, as an application would have; cache off so each call runs the model.
  const acc = new IpfsAccelerate({ logging: { level: 'SILENT' }, performance: { enable_caching: false }, hardware: { threads: THREADS } }, {}, { env: {} })
  const batching = new IpfsAccelerate({
    logging: { level: 'SILENT' },
    performance: { enable_caching: false, batch_window_ms: BATCHING_WINDOW_MS },
    hardware: { threads: THREADS, batch_size: BATCHING_SIZE }
  }, {}, { env: {} })
  const rows: Array<Array<string | number>> = []
  try {
    for (const c of cases) {
      const { contenders, close } = await contendersFor(c, acc, batching)
      const result = await interleave(contenders, { rounds: ROUNDS, perRound: PER_ROUND, warmupPerRound: WARMUP_PER_ROUND, pauseMs: 5, seed: 7 })
      const baseMedian = median(result.samples.get(RAW) ?? [])
      const baseP90 = p90(result.samples.get(RAW) ?? [])
      for (const contender of contenders) {
        const s = result.samples.get(contender.name) ?? []
        const ratios = roundRatios(result, contender.name, RAW)
        rows.push([
          c.label,
          contender.name,
          fmt(median(s)),
          fmt(p90(s)),
          `${fmt(quantile(s, 0.1))}–${fmt(quantile(s, 0.99))}`,
          `${(median(s) / baseMedian).toFixed(2)}x`,
          `${(p90(s) / baseP90).toFixed(2)}x`,
          `${median(ratios).toFixed(2)}x (${quantile(ratios, 0.25).toFixed(2)}–${quantile(ratios, 0.75).toFixed(2)})`
        ])
      }
      await close()
    }
  } finally {
    await acc.stop()
    await batching.stop()
  }
  console.log(markdownTable(
    ['model / input', 'contender', 'median ms', 'p90 ms', 'p10–p99 ms', 'median / raw', 'p90 / raw', 'per-round ratio to raw, median (p25–p75)'],
    rows
  ))
  console.log(`\nTotal run time ${((Date.now() - started) / 1000).toFixed(0)} s.`)
}

await main()
