// Child process of bench/cold-start.ts (plain JavaScript, so it runs under plain `node` as well as
// under `node --import tsx`). It marks, in epoch milliseconds: when this script starts running, when
// the library is imported, when the model is ready (or the instance constructed) and when the first
// embedding exists; then prints one JSON line and exits.
//   node bench/lib/cold-start-child.mjs <mode> <model dir> [package entry]
//   modes: empty | transformers | accelerate | accelerate-init
import { performance } from 'node:perf_hooks'

const now = () => performance.timeOrigin + performance.now()
const marks = { start: now() }
const [mode, dir, entry] = process.argv.slice(2)
const out = { mode }

if (mode === 'transformers') {
  const { pipeline, env } = await import('@huggingface/transformers')
  marks.imported = now()
  env.allowRemoteModels = false
  const extractor = await pipeline('feature-extraction', dir, { device: 'cpu', dtype: 'fp32', local_files_only: true })
  marks.ready = now()
  // 'what is' -> [CLS] what is [SEP] = [101, 2054, 2003, 102], the seed example's ids.
  const embedding = await extractor('what is', { pooling: 'mean', normalize: true })
  marks.first = now()
  out.length = embedding.data.length
  await extractor.dispose()
} else if (mode === 'accelerate' || mode === 'accelerate-init') {
  const { IpfsAccelerate } = await import(entry)
  marks.imported = now()
  const acc = new IpfsAccelerate({ logging: { level: 'SILENT' }, performance: { enable_caching: false } }, {}, { env: {} })
  marks.constructed = now()
  if (mode === 'accelerate-init') {
    // The same steps the first processAsync takes, one at a time: hardware detection (cached, so the
    // engine reuses it), then worker start and model load, then the call itself.
    acc.hardwareDetection.detectAllHardware()
    marks.hardware = now()
    const info = await acc.initEndpoints([dir], { endpoint_types: { [dir]: 'text_embedding' } })
    marks.ready = now()
    out.load_time_ms = info[dir].load_time * 1000
  }
  const result = await acc.processAsync(dir, { input_ids: [101, 2054, 2003, 102] }, 'text_embedding')
  marks.first = now()
  out.length = result.embedding.length
  out.inference_time_ms = result.inference_time * 1000
  const again = await acc.processAsync(dir, { input_ids: [101, 2054, 2003, 1999, 102] }, 'text_embedding')
  marks.second = now()
  out.second_inference_time_ms = again.inference_time * 1000
  process.stdout.write(JSON.stringify({ ...out, marks }) + '\n')
  await acc.stop()
  process.exit(0)
} else if (mode !== 'empty') {
  throw new Error(`unknown mode ${mode}`)
}
process.stdout.write(JSON.stringify({ ...out, marks }) + '\n')
