import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { IpfsAccelerate } from '../../src/accelerator.js'
import { ValidationError, ModelLoadError } from '../../src/errors.js'
import { tinyModels, type TinyModels } from '../helpers/tiny-models.js'

const close = (a: number[], b: number[], tol = 1e-5): boolean => a.length === b.length && a.every((v, i) => Math.abs(v - b[i]) <= tol)
const norm = (v: number[]): number => Math.sqrt(v.reduce((s, x) => s + x * x, 0))

describe('text_embedding', () => {
  let models: TinyModels
  let acc: IpfsAccelerate
  let bert: string

  before(async () => {
    models = await tinyModels(['bert'])
    bert = models.dir('bert')
    acc = new IpfsAccelerate({ logging: { level: 'SILENT' }, hardware: { batch_size: 8 }, performance: { enable_caching: false } }, {}, { env: {} })
  })
  after(async () => {
    await acc.stop()
    models.cleanup()
  })

  it('runs the seed example through process() synchronously', () => {
    const result = acc.process(bert, { input_ids: [101, 2054, 2003, 102] }, 'text_embedding')
    assert.ok(!(result instanceof Promise))
    const embedding = result.embedding as number[]
    assert.equal(result.model, bert)
    assert.equal(typeof result.inference_time, 'number')
    assert.ok(result.inference_time > 0)
    assert.equal(embedding.length, 32)
    assert.ok(Math.abs(norm(embedding) - 1) < 1e-5, 'mean pooling + L2 normalisation by default')
  })

  it('processAsync gives the same values as process', async () => {
    const sync = acc.process(bert, { input_ids: [101, 2054, 2003, 1999, 2023, 3746, 102] }, 'text_embedding')
    const async_ = await acc.processAsync(bert, { input_ids: [101, 2054, 2003, 1999, 2023, 3746, 102] }, 'text_embedding')
    assert.deepEqual(async_.embedding, sync.embedding)
  })

  it('embeds a text alone the same as inside a padded batch', async () => {
    const short = [101, 2054, 102]
    const long = [101, 2054, 2003, 1999, 2023, 3746, 102]
    const alone = await acc.processAsync(bert, { input_ids: short })
    const batch = await acc.processAsync(bert, { input_ids: [long, short] })
    const rows = batch.embedding as number[][]
    assert.equal(rows.length, 2)
    assert.ok(close(rows[1], alone.embedding as number[]), 'padding must not change a row')
    const explicitMask = await acc.processAsync(bert, { input_ids: short, attention_mask: [1, 1, 1] })
    assert.ok(close(explicitMask.embedding as number[], alone.embedding as number[]))
  })

  it('merges concurrent requests into batches and gives each caller its own result', async () => {
    const inputs = Array.from({ length: 12 }, (_, i) => ({ input_ids: [101, 2000 + i, 2000 + 2 * i, 102].slice(0, 2 + (i % 3)) }))
    const alone: number[][] = []
    for (const input of inputs) alone.push((await acc.processAsync(bert, input)).embedding as number[])
    const together = await Promise.all(inputs.map(async input => await acc.processAsync(bert, input)))
    together.forEach((r, i) => assert.ok(close(r.embedding as number[], alone[i]), `request ${i}`))
  })

  it('takes text and pooling options', async () => {
    const text = await acc.processAsync(bert, { text: 'what is this image' })
    const ids = await acc.processAsync(bert, { input_ids: [101, 2054, 2003, 2023, 3746, 102] })
    assert.ok(close(text.embedding as number[], ids.embedding as number[]), 'the tokenizer maps the words to the seed ids')
    const cls = await acc.processAsync(bert, { input_ids: [101, 2054, 102], pooling: 'cls', normalize: false })
    assert.ok(Math.abs(norm(cls.embedding as number[]) - 1) > 1e-3)
    const many = await acc.processAsync(bert, ['hello world', 'what is this'])
    assert.equal((many.embedding as number[][]).length, 2)
  })

  it('splits one request of many texts into calls of at most hardware.batch_size rows, same vectors', async () => {
    const texts = Array.from({ length: 10 }, (_, i) => `text number ${i}${' more'.repeat(i % 4)}`)
    const alone: number[][] = []
    for (const text of texts) alone.push((await acc.processAsync(bert, { text })).embedding as number[])
    const many = (await acc.processAsync(bert, { texts })).embedding as number[][]
    assert.equal(many.length, 10)
    many.forEach((v, i) => assert.ok(close(v, alone[i]), `text ${i}`))
  })

  it('feeds token_type_ids to the model', async () => {
    const ids = [101, 2054, 102, 2023, 102]
    const zeros = await acc.processAsync(bert, { input_ids: ids })
    const explicitZeros = await acc.processAsync(bert, { input_ids: ids, token_type_ids: [0, 0, 0, 0, 0] })
    const segments = await acc.processAsync(bert, { input_ids: ids, token_type_ids: [0, 0, 0, 1, 1] })
    assert.ok(close(explicitZeros.embedding as number[], zeros.embedding as number[]))
    assert.ok(!close(segments.embedding as number[], zeros.embedding as number[], 1e-4))
  })

  it('rejects bad input with a ValidationError naming the field', async () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ input_ids: [] }, /^input_ids/],
      [{ input_ids: [101, 1.5, 102] }, /^input_ids\[1\]/],
      [{ input_ids: [101, -3, 102] }, /^input_ids\[1\]/],
      [{ input_ids: [101, 999999, 102] }, /^input_ids\[1\]/],
      [{ input_ids: Array.from({ length: 600 }, () => 101) }, /^input_ids/],
      [{ input_ids: [101, 102], attention_mask: [1] }, /^attention_mask/],
      [{ input_id: [101] }, /^input\.input_id/],
      [{ input_ids: 'abc' }, /^input_ids/],
      [{ input_ids: [101, 102], token_type_ids: 'garbage' }, /^token_type_ids$/],
      [{ input_ids: [101, 102], token_type_ids: [0, 5] }, /^token_type_ids\[1\]$/],
      [{ text: 'hello', texts: ['a', 'b'] }, /^texts$/]
    ]
    for (const [input, field] of cases) {
      await assert.rejects(acc.processAsync(bert, input, 'text_embedding'), (err: unknown) => {
        assert.ok(err instanceof ValidationError, `${JSON.stringify(input).slice(0, 40)} gave ${String(err)}`)
        assert.match(String(err.context.field), field)
        return true
      })
      assert.throws(() => acc.process(bert, input, 'text_embedding'), ValidationError)
    }
    // The model is still loaded and answers after all that.
    const ok = await acc.processAsync(bert, { input_ids: [101, 102] })
    assert.equal((ok.embedding as number[]).length, 32)
  })

  it('rejects unknown endpoint types, unknown tasks for the model, and missing models', async () => {
    await assert.rejects(acc.processAsync(bert, { input_ids: [101] }, 'telepathy' as never), (err: unknown) =>
      err instanceof ValidationError && err.context.field === 'endpoint_type')
    await assert.rejects(acc.processAsync(bert, { input_ids: [101] }, 'text_generation'), (err: unknown) =>
      err instanceof ValidationError && err.context.field === 'endpoint_type')
    await assert.rejects(acc.processAsync(`${models.root}/nothing-here`, { input_ids: [101] }), (err: unknown) =>
      err instanceof ModelLoadError && String(err.context.file).includes('nothing-here'))
    assert.throws(() => acc.process('', { input_ids: [101] }), ValidationError)
  })
})
