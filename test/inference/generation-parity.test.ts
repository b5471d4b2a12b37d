/**
 * text_generation against transformers.js itself (its `generate` and `pipeline` on the same tiny GPT-2)
 * and against what a user of the result expects: the streamed pieces add up to `generated_text`, `text`
 * is the prompt followed by it, no piece holds half a character, and the settings do what they say.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { cpSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { AutoModelForCausalLM, AutoTokenizer, Tensor, env, pipeline, random } from '@huggingface/transformers'
import { IpfsAccelerate } from '../../src/accelerator.js'
import { ValidationError } from '../../src/errors.js'
import { ContinuationText, NucleusFilter, TextGenerationTask } from '../../src/inference/tasks/text-generation.js'
import type { LoadedModel } from '../../src/inference/tasks/task-handler.js'
import { tinyModels, type TinyModels } from '../helpers/tiny-models.js'

env.allowRemoteModels = false

type AnyTokenizer = Awaited<ReturnType<typeof AutoTokenizer.from_pretrained>>

const FFFD = '\uFFFD'

describe('text_generation parity and streaming', () => {
  let models: TinyModels
  let acc: IpfsAccelerate
  let gpt2: string
  /**
   * The same model with a tokenizer that cleans up spaces before punctuation (as gpt2 from the hub does
   * in transformers.js), and with tokens renamed so that its greedy text has what a real model writes
   * now and then: a token ending in a space (gpt2's bare "Ġ") and then punctuation, whose clean-up
   * removes that space. " gi" reads "gi ", and " food" and " wri", which the text is full of, ".." and ",,".
   */
  let cleanup: string
  let tok: AnyTokenizer
  let cleanupTok: AnyTokenizer

  before(async () => {
    models = await tinyModels(['gpt2'])
    gpt2 = models.dir('gpt2')
    cleanup = join(models.root, 'gpt2-cleanup')
    cpSync(gpt2, cleanup, { recursive: true })
    const config = JSON.parse(readFileSync(join(cleanup, 'tokenizer_config.json'), 'utf8'))
    writeFileSync(join(cleanup, 'tokenizer_config.json'), JSON.stringify({ ...config, clean_up_tokenization_spaces: true }))
    const tokenizer = JSON.parse(readFileSync(join(cleanup, 'tokenizer.json'), 'utf8'))
    const vocab = tokenizer.model.vocab as Record<string, number>
    for (const [word, renamed] of [['Ġgi', 'giĠ'], ['Ġfood', '..'], ['Ġwri', ',,']]) {
      assert.ok(vocab[word] !== undefined && vocab[renamed] === undefined)
      vocab[renamed] = vocab[word]
      delete vocab[word]
    }
    writeFileSync(join(cleanup, 'tokenizer.json'), JSON.stringify(tokenizer))
    tok = await AutoTokenizer.from_pretrained(gpt2)
    cleanupTok = await AutoTokenizer.from_pretrained(cleanup)
    acc = new IpfsAccelerate({ logging: { level: 'SILENT' }, performance: { enable_caching: false } }, {}, { env: {} })
  })
  after(async () => {
    await acc.stop()
    models.cleanup()
  })

  async function streamed (model: string, input: Record<string, unknown>): Promise<{ pieces: string[], result: Record<string, unknown> }> {
    const pieces: string[] = []
    const result = await acc.processAsync(model, input, 'text_generation', { onToken: t => pieces.push(t) })
    return { pieces, result }
  }

  it('greedy generation equals transformers.js generate() and pipeline() with the same settings', async () => {
    const model = await AutoModelForCausalLM.from_pretrained(gpt2)
    try {
      const cases: Array<Record<string, unknown>> = [
        { max_new_tokens: 12 },
        { max_length: 9 },
        { max_new_tokens: 12, repetition_penalty: 1.5 },
        { max_new_tokens: 12, no_repeat_ngram_size: 2 },
        // max_new_tokens wins over max_length, as in transformers.js and Hugging Face.
        { max_new_tokens: 6, max_length: 4 }
      ]
      const ids = [464, 286, 318, 52, 99]
      for (const settings of cases) {
        const ours = await acc.processAsync(gpt2, { input_ids: ids, ...settings }, 'text_generation')
        const theirs = await model.generate({
          input_ids: new Tensor('int64', BigInt64Array.from(ids, BigInt), [1, ids.length]),
          attention_mask: new Tensor('int64', new BigInt64Array(ids.length).fill(1n), [1, ids.length]),
          do_sample: false,
          ...settings
        }) as Tensor
        assert.deepEqual(ours.generated_ids, Array.from(theirs.data as BigInt64Array, Number).slice(ids.length), JSON.stringify(settings))
      }
      const noRepeat = await acc.processAsync(gpt2, { input_ids: ids, max_new_tokens: 40, no_repeat_ngram_size: 2 }, 'text_generation')
      const all = [...ids, ...noRepeat.generated_ids as number[]]
      const bigrams = all.slice(1).map((id, i) => `${all[i]},${id}`)
      assert.equal(new Set(bigrams).size, bigrams.length, 'no_repeat_ngram_size: 2 repeats no pair of tokens')
    } finally {
      await model.dispose()
    }
    const generator = await pipeline('text-generation', gpt2)
    try {
      const prompt = 'The future of AI is'
      const [theirs] = await generator(prompt, { max_new_tokens: 10, do_sample: false }) as Array<{ generated_text: string }>
      const ours = await acc.processAsync(gpt2, { prompt, max_new_tokens: 10 }, 'text_generation')
      assert.equal(ours.text, theirs.generated_text)
    } finally {
      await generator.dispose()
    }
  })

  it('streamed pieces add up to generated_text and text is the prompt followed by it, for any prompt', async () => {
    const prompts = ['The future of AI is', 'héllo wörld', '日本語', '😀 emoji', 'a\nb\n', 'hello ', '  spaces', 'x<|endoftext|>y']
    for (const prompt of prompts) {
      const { pieces, result } = await streamed(gpt2, { prompt, max_new_tokens: 24 })
      assert.equal(pieces.join(''), result.generated_text, JSON.stringify(prompt))
      // The prompt verbatim, as Hugging Face's pipeline returns it (a special token's text included).
      assert.equal(result.text, prompt + (result.generated_text as string), JSON.stringify(prompt))
      if (!prompt.includes('<|')) {
        const ids = tok.encode(prompt)
        assert.equal(result.text, tok.decode([...ids, ...result.generated_ids as number[]], { skip_special_tokens: true }), JSON.stringify(prompt))
      }
    }
  })

  it('streamed pieces keep the punctuation that clean_up_tokenization_spaces joins to the previous word', async () => {
    // transformers.js's TextStreamer streamed "gi " and, once ".." made the text "gi..", cut its later
    // pieces at offsets counted in the text that still had the space: a "." went missing.
    const { pieces, result } = await streamed(cleanup, { prompt: 'The future of AI is', max_new_tokens: 40 })
    const raw = cleanupTok.decode(result.generated_ids as number[], { skip_special_tokens: true, clean_up_tokenization_spaces: false })
    assert.notEqual(raw, result.generated_text, 'clean-up removed spaces')
    assert.match(result.generated_text as string, /gi\.\./)
    assert.equal(pieces.join(''), result.generated_text)
    assert.equal(result.text, `The future of AI is${result.generated_text as string}`)
  })

  it('a character split between the prompt ids and the continuation is whole in the text and the stream', async () => {
    // Prompts ending in the first byte of a two-byte character; on this tiny model the greedy continuation
    // of some of them starts with the byte that completes it.
    const candidates = [['a', 'é'], ['x', 'ß'], ['morning', 'ж'], ['caf', 'ß'], ['food', 'ж']]
    let found = 0
    for (const [word, char] of candidates) {
      const input = [...tok.encode(word), tok.encode(char)[0]]
      const { pieces, result } = await streamed(gpt2, { input_ids: input, max_new_tokens: 6 })
      const whole = tok.decode([...input, ...result.generated_ids as number[]], { skip_special_tokens: true })
      assert.equal(result.text, whole)
      assert.equal(pieces.join(''), result.generated_text)
      if (whole.slice(0, word.length + 1).includes(FFFD)) continue
      found++
      // Pieces that add up to generated_text hold a U+FFFD only where the final text has one.
      assert.ok(!(result.generated_text as string).startsWith(FFFD), JSON.stringify(result.generated_text))
      assert.ok(!pieces[0].startsWith(FFFD), JSON.stringify(pieces[0]))
    }
    assert.ok(found > 0, 'a candidate prompt had its character completed')
  })

  it('ContinuationText releases pieces that add up to the decoded text, never half a character', () => {
    // Token sequences of real text fed one token at a time, with and without space clean-up.
    const texts = ['Hello, world. It\'s fine !', 'naïve café — 日本語テキスト', 'emoji 😀👍🏽 and\nnew lines\n\n', 'a , b . c ? d n\'t e \'s', ' lead  and trail ']
    for (const tokenizer of [tok, cleanupTok]) {
      for (const text of texts) {
        const prompt = tokenizer.encode('Prompt:')
        const ids = tokenizer.encode(text)
        const stream = new ContinuationText(tokenizer, prompt)
        const pieces: string[] = []
        for (const id of ids) {
          const piece = stream.push([id])
          if (piece !== '') pieces.push(piece)
        }
        const whole = stream.finish(t => pieces.push(t))
        const expected = (tokenizer.decode([...prompt, ...ids]) as string).slice((tokenizer.decode(prompt) as string).length)
        assert.equal(whole, expected, JSON.stringify(text))
        assert.equal(pieces.join(''), whole, JSON.stringify(text))
        for (const piece of pieces) assert.ok(!piece.includes(FFFD), `${JSON.stringify(piece)} in ${JSON.stringify(text)}`)
      }
    }
    // Long continuations move the decoding window and still add up.
    const long = tok.encode('word after word, 😀 and 日本 '.repeat(40))
    const stream = new ContinuationText(tok, tok.encode('x'))
    let joined = ''
    for (const id of long) joined += stream.push([id])
    const whole = stream.finish(t => { joined += t })
    assert.equal(joined, tok.decode(long))
    assert.equal(whole, joined)
  })

  it('top_p is applied (transformers.js ignores it): a tiny top_p samples the greedy text', async () => {
    const greedy = await acc.processAsync(gpt2, { prompt: 'hello', max_new_tokens: 12 }, 'text_generation')
    for (const seed of [1, 2, 3]) {
      const nucleus = await acc.processAsync(gpt2, { prompt: 'hello', max_new_tokens: 12, do_sample: true, temperature: 2, top_k: 0, top_p: 1e-6, seed }, 'text_generation')
      assert.equal(nucleus.text, greedy.text, `seed ${seed}`)
    }
    // Hugging Face's filter: top_k first, then the smallest set reaching top_p of the renormalised mass.
    const logits = (probs: number[]): Tensor => new Tensor('float32', Float32Array.from(probs, Math.log), [1, probs.length])
    const kept = (t: Tensor): number[] => Array.from(t.data as Float32Array).flatMap((v, i) => v === -Infinity ? [] : [i])
    const filter = (topK: number, topP: number): NucleusFilter => new NucleusFilter(topK, topP)
    assert.deepEqual(kept(filter(0, 0.7)([[0n]], logits([0.3, 0.05, 0.5, 0.15]))), [0, 2])
    assert.deepEqual(kept(filter(0, 0.9)([[0n]], logits([0.3, 0.05, 0.5, 0.15]))), [0, 2, 3])
    assert.deepEqual(kept(filter(0, 0.6)([[0n]], logits([0.3, 0.05, 0.5, 0.15]))), [0, 2])
    assert.deepEqual(kept(filter(2, 0.6)([[0n]], logits([0.3, 0.05, 0.5, 0.15]))), [2], 'over the top 2, renormalised, 0.5 is 0.625 of the mass')
    assert.deepEqual(kept(filter(0, 0.01)([[0n]], logits([0.3, 0.05, 0.5, 0.15]))), [2], 'at least one token stays')
  })

  it('a seeded request leaves later unseeded sampling random, and a seed still reproduces its text', async () => {
    const hot = { prompt: 'hello', max_new_tokens: 16, do_sample: true, temperature: 2, top_k: 0 }
    const following: string[] = []
    const seeded: string[] = []
    for (let i = 0; i < 2; i++) {
      seeded.push((await acc.processAsync(gpt2, { ...hot, seed: 5 }, 'text_generation')).text as string)
      following.push((await acc.processAsync(gpt2, hot, 'text_generation')).text as string)
    }
    assert.equal(seeded[0], seeded[1])
    assert.notEqual(following[0], following[1], 'the unseeded request that follows a seeded one is not fixed by that seed')
  })

  it('a greedy request with a seed leaves the shared generator alone (a sampling request may be using it)', async () => {
    const task = new TextGenerationTask()
    const config = JSON.parse(readFileSync(join(gpt2, 'config.json'), 'utf8'))
    const parts = await task.load({ dir: gpt2, config, pretrained: { device: 'cpu', dtype: 'fp32', local_files_only: true } })
    const m: LoadedModel = { id: 'gpt2', dir: gpt2, task: 'text_generation', config, settings: {}, device: 'cpu', dtype: 'fp32', ...parts }
    try {
      const { value } = await task.prepare({ prompt: 'hello', max_new_tokens: 2, seed: 9 }, m)
      random.seed(3)
      const expected = [random.random(), random.random()]
      random.seed(3)
      random.random()
      await task.run(m, [value], {})
      assert.equal(random.random(), expected[1], 'the generator goes on where it was')
    } finally {
      await m.model.dispose()
      random.seed()
    }
  })

  it('refuses invalid settings naming the field, and accepts their neutral values', async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ temperature: 0, do_sample: true }, 'temperature'],
      [{ temperature: Number.NaN }, 'temperature'],
      [{ temperature: '1' }, 'temperature'],
      [{ top_p: 0, do_sample: true }, 'top_p'],
      [{ top_p: 1.5 }, 'top_p'],
      [{ top_k: -1 }, 'top_k'],
      [{ top_k: 2.5 }, 'top_k'],
      [{ repetition_penalty: 0 }, 'repetition_penalty'],
      [{ no_repeat_ngram_size: -1 }, 'no_repeat_ngram_size'],
      [{ num_beams: 4 }, 'num_beams'],
      [{ num_beams: 0 }, 'num_beams'],
      [{ seed: -1 }, 'seed'],
      [{ do_sample: 'yes' }, 'do_sample'],
      [{ max_new_tokens: -3 }, 'max_new_tokens'],
      [{ max_new_tokens: Number.NaN }, 'max_new_tokens'],
      [{ max_length: 0 }, 'max_length']
    ]
    for (const [settings, field] of cases) {
      await assert.rejects(acc.processAsync(gpt2, { prompt: 'hello', max_new_tokens: 2, ...settings }, 'text_generation'), (err: unknown) =>
        err instanceof ValidationError && err.context.field === field, JSON.stringify(settings))
    }
    const greedy = await acc.processAsync(gpt2, { prompt: 'hello', max_new_tokens: 6 }, 'text_generation')
    // temperature 0 is the usual way of asking for greedy decoding; num_beams 1 is no beam search.
    for (const neutral of [{ temperature: 0 }, { num_beams: 1 }, { no_repeat_ngram_size: 0 }, { do_sample: false, top_p: 0.5, top_k: 3 }]) {
      const r = await acc.processAsync(gpt2, { prompt: 'hello', max_new_tokens: 6, ...neutral }, 'text_generation')
      assert.equal(r.text, greedy.text, JSON.stringify(neutral))
    }
  })
})
