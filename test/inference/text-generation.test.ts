import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import * as ort from 'onnxruntime-node'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { IpfsAccelerate } from '../../src/accelerator.js'
import { ValidationError } from '../../src/errors.js'
import { tinyModels, type TinyModels } from '../helpers/tiny-models.js'

/** Greedy decoding that re-runs the whole sequence each step, without any cache: the reference. */
async function greedyByRecomputation (dir: string, prompt: number[], steps: number): Promise<number[]> {
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'))
  const session = await ort.InferenceSession.create(join(dir, 'onnx', 'model.onnx'))
  const headDim = config.n_embd / config.n_head
  const ids = [...prompt]
  for (let s = 0; s < steps; s++) {
    const n = ids.length
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), [1, n]),
      attention_mask: new ort.Tensor('int64', new BigInt64Array(n).fill(1n), [1, n]),
      position_ids: new ort.Tensor('int64', BigInt64Array.from(ids.map((_, i) => BigInt(i))), [1, n])
    }
    for (let l = 0; l < config.n_layer; l++) {
      for (const kv of ['key', 'value']) feeds[`past_key_values.${l}.${kv}`] = new ort.Tensor('float32', new Float32Array(0), [1, config.n_head, 0, headDim])
    }
    const out = await session.run(feeds)
    const logits = out.logits.data as Float32Array
    const vocab = out.logits.dims[2]
    const last = logits.subarray((n - 1) * vocab, n * vocab)
    let best = 0
    for (let i = 1; i < vocab; i++) if (last[i] > last[best]) best = i
    ids.push(best)
  }
  await session.release()
  return ids.slice(prompt.length)
}

describe('text_generation', () => {
  let models: TinyModels
  let acc: IpfsAccelerate
  let gpt2: string

  before(async () => {
    models = await tinyModels(['gpt2'])
    gpt2 = models.dir('gpt2')
    acc = new IpfsAccelerate({ logging: { level: 'SILENT' } }, {}, { env: {} })
  })
  after(async () => {
    await acc.stop()
    models.cleanup()
  })

  it('generates from a prompt, synchronously and asynchronously, with the seed shape', async () => {
    const sync = acc.process(gpt2, { prompt: 'The future of AI is', max_new_tokens: 10 }, 'text_generation')
    assert.equal(typeof sync.text, 'string')
    assert.ok((sync.text as string).startsWith('The future of AI is'))
    assert.equal(sync.generated_tokens, 10)
    assert.equal(sync.model, gpt2)
    const async_ = await acc.processAsync(gpt2, { prompt: 'The future of AI is', max_new_tokens: 10 }, 'text_generation')
    assert.equal(async_.text, sync.text)
  })

  it('KV-cache generation equals greedy recomputation of the whole sequence', async () => {
    const prompt = [464, 2003, 286, 9552, 318].map(i => i % 1000)
    const result = await acc.processAsync(gpt2, { input_ids: prompt, max_new_tokens: 12 }, 'text_generation')
    const reference = await greedyByRecomputation(gpt2, prompt, 12)
    assert.deepEqual(result.generated_ids, reference)
    assert.ok(new Set(reference).size > 2, 'a broken cache could pass by repeating one token')
  })

  it('honours max_length from the request and from resources.models', async () => {
    const r = await acc.processAsync(gpt2, { input_ids: [10, 20, 30], max_length: 8 })
    assert.equal(r.generated_tokens, 5)
    const limited = new IpfsAccelerate({ logging: { level: 'SILENT' }, models: { [gpt2]: { max_length: 6 } } }, {}, { env: {} })
    try {
      const l = await limited.processAsync(gpt2, { input_ids: [10, 20, 30] })
      assert.equal(l.generated_tokens, 3)
    } finally {
      await limited.stop()
    }
  })

  it('samples reproducibly with a seed', async () => {
    const a = await acc.processAsync(gpt2, { prompt: 'hello', max_new_tokens: 8, do_sample: true, temperature: 1.5, top_k: 50, seed: 7 })
    const b = await acc.processAsync(gpt2, { prompt: 'hello', max_new_tokens: 8, do_sample: true, temperature: 1.5, top_k: 50, seed: 7 })
    assert.equal(a.text, b.text)
  })

  it('samples reproducibly with a seed while other sampling requests run alongside', async () => {
    // transformers.js samples from one global RNG: without serialising sampling generations, a seeded
    // request would interleave its draws with its neighbours' and give a different text.
    const parallel = new IpfsAccelerate({ logging: { level: 'SILENT' }, performance: { parallel_requests: 4, enable_caching: false } }, {}, { env: {} })
    try {
      const req = { prompt: 'hello', max_new_tokens: 16, do_sample: true, temperature: 1.5, seed: 7 }
      const alone = (await parallel.processAsync(gpt2, req, 'text_generation')).text
      const others = [{ ...req, seed: 99 }, { ...req, seed: undefined }, { prompt: 'greedy', max_new_tokens: 16 }]
      const first = await Promise.all([req, ...others].map(async r => await parallel.processAsync(gpt2, r, 'text_generation')))
      const last = await Promise.all([...others, req].map(async r => await parallel.processAsync(gpt2, r, 'text_generation')))
      assert.equal(first[0].text, alone)
      assert.equal(last[3].text, alone)
      assert.equal(first[1].text, last[0].text, 'the other seeded request is reproducible too')
    } finally {
      await parallel.stop()
    }
  })

  it('honours a left-padding attention_mask on input_ids', async () => {
    const prompt = [464, 286, 318, 52, 99]
    const plain = await acc.processAsync(gpt2, { input_ids: prompt, max_new_tokens: 8 }, 'text_generation')
    const padded = await acc.processAsync(gpt2, { input_ids: [7, 7, ...prompt], attention_mask: [0, 0, 1, 1, 1, 1, 1], max_new_tokens: 8 }, 'text_generation')
    assert.deepEqual(padded.generated_ids, plain.generated_ids, 'masked padding must not change the continuation')
    const unmasked = await acc.processAsync(gpt2, { input_ids: [7, 7, ...prompt], max_new_tokens: 8 }, 'text_generation')
    assert.notDeepEqual(unmasked.generated_ids, plain.generated_ids, 'the mask is what hides the padding')
  })

  it('streams tokens through a callback and an async iterator', async () => {
    const pieces: string[] = []
    const full = await acc.processAsync(gpt2, { prompt: 'stream me', max_new_tokens: 8 }, 'text_generation', { onToken: t => pieces.push(t) })
    assert.ok(pieces.length > 0)
    assert.equal(pieces.join(''), full.generated_text)
    const streamed: string[] = []
    const iterator = acc.streamGeneration(gpt2, { prompt: 'stream me', max_new_tokens: 8 })
    let step = await iterator.next()
    while (step.done !== true) {
      streamed.push(step.value)
      step = await iterator.next()
    }
    assert.equal(streamed.join(''), full.generated_text)
    assert.equal(step.value.text, full.text)
  })

  it('rejects bad input naming the field', async () => {
    const cases: Array<[unknown, string]> = [
      [{ prompt: '' }, 'prompt'],
      [{ prompt: 'x', max_new_tokens: 0 }, 'max_new_tokens'],
      [{ prompt: 'x', temperature: -1 }, 'temperature'],
      [{ prompt: 'x', top_p: 2 }, 'top_p'],
      [{ input_ids: [1, 99999] }, 'input_ids[1]'],
      [{ input_ids: [[1], [2]] }, 'input_ids'],
      [{ input_ids: [1, 2, 3], max_length: 2 }, 'max_length'],
      [{ input_ids: [1, 2, 3], attention_mask: 'zzz' }, 'attention_mask'],
      [{ input_ids: [1, 2, 3], attention_mask: [1, 1] }, 'attention_mask'],
      [{ input_ids: [1, 2, 3], attention_mask: [1, 2, 1] }, 'attention_mask'],
      [{ input_ids: [1, 2, 3], attention_mask: [1, 1, 0] }, 'attention_mask'],
      [{ prompt: 'x', attention_mask: [1] }, 'attention_mask'],
      [{}, 'prompt']
    ]
    for (const [input, field] of cases) {
      await assert.rejects(acc.processAsync(gpt2, input, 'text_generation'), (err: unknown) =>
        err instanceof ValidationError && err.context.field === field, JSON.stringify(input))
    }
  })
})
