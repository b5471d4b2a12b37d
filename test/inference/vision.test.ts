import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { RawImage } from '@huggingface/transformers'
import { IpfsAccelerate } from '../../src/accelerator.js'
import { ValidationError } from '../../src/errors.js'
import { tinyModels, type TinyModels } from '../helpers/tiny-models.js'

function pixels (seed: number): { data: Float32Array, dims: number[] } {
  return { data: Float32Array.from({ length: 3 * 224 * 224 }, (_, i) => Math.sin(i * 0.001 * seed) * 0.8), dims: [1, 3, 224, 224] }
}

function nested (flat: { data: Float32Array }): number[][][][] {
  const out: number[][][][] = [[]]
  for (let c = 0; c < 3; c++) {
    const plane: number[][] = []
    for (let y = 0; y < 224; y++) plane.push(Array.from(flat.data.subarray((c * 224 + y) * 224, (c * 224 + y + 1) * 224)))
    out[0].push(plane)
  }
  return out
}

const sum = (v: number[]): number => v.reduce((a, b) => a + b, 0)

describe('image_classification and multimodal', () => {
  let models: TinyModels
  let acc: IpfsAccelerate

  before(async () => {
    models = await tinyModels(['vit', 'clip'])
    acc = new IpfsAccelerate({ logging: { level: 'SILENT' }, hardware: { batch_size: 4 } }, {}, { env: {} })
  })
  after(async () => {
    await acc.stop()
    models.cleanup()
  })

  it('classifies pixel_values given as nested arrays or a typed array with dims', async () => {
    const vit = models.dir('vit')
    const typed = await acc.processAsync(vit, { pixel_values: pixels(1) }, 'image_classification')
    const arrays = acc.process(vit, { pixel_values: nested(pixels(1)) }, 'image_classification')
    assert.equal(typeof typed.label, 'string')
    assert.deepEqual(arrays.logits, typed.logits)
    const logits = typed.logits as number[]
    assert.equal(logits.length, 10)
    const probs = logits.map(l => Math.exp(l - Math.max(...logits)))
    assert.ok(Math.abs((typed.score as number) - Math.max(...probs) / sum(probs)) < 1e-6, 'score is the softmax probability of the top class')
    const top = typed.top_k as Array<{ score: number }>
    assert.ok(Math.abs(sum(top.map(t => t.score))) <= 1 + 1e-6)
  })

  it('gives the same answer batched and alone', async () => {
    const vit = models.dir('vit')
    const alone: Array<Record<string, unknown>> = []
    for (let s = 1; s <= 4; s++) alone.push(await acc.processAsync(vit, { pixel_values: pixels(s) }))
    const together = await Promise.all([1, 2, 3, 4].map(async s => await acc.processAsync(vit, { pixel_values: pixels(s) })))
    together.forEach((r, i) => {
      assert.equal(r.label, alone[i].label)
      ;(r.logits as number[]).forEach((v, j) => assert.ok(Math.abs(v - (alone[i].logits as number[])[j]) < 1e-4))
    })
  })

  it('reads an image file through the model processor', async () => {
    const image = new RawImage(new Uint8ClampedArray(64 * 48 * 3).map((_, i) => (i * 37) % 256), 64, 48, 3)
    const file = join(models.root, 'picture.png')
    await image.save(file)
    const r = await acc.processAsync(models.dir('vit'), { image: file })
    assert.equal(typeof r.label, 'string')
    await assert.rejects(acc.processAsync(models.dir('vit'), { image: join(models.root, 'missing.png') }), (err: unknown) =>
      err instanceof ValidationError && err.context.field === 'image')
  })

  it('rejects pixel_values of the wrong shape or with NaN', async () => {
    const vit = models.dir('vit')
    const bad = pixels(1)
    bad.data[5] = Number.NaN
    for (const input of [
      { pixel_values: { data: new Float32Array(3 * 32 * 32), dims: [1, 3, 32, 32] } },
      { pixel_values: bad },
      { pixel_values: [[1, 2], [3]] },
      { pixel_values: { data: new Float32Array(10), dims: [1, 3, 224, 224] } }
    ]) {
      await assert.rejects(acc.processAsync(vit, input, 'image_classification'), (err: unknown) =>
        err instanceof ValidationError && String(err.context.field).startsWith('pixel_values'))
    }
  })

  it('runs CLIP zero-shot on pixel_values with candidate labels or input_ids', async () => {
    const clip = models.dir('clip')
    const r = await acc.processAsync(clip, { pixel_values: pixels(3), candidate_labels: ['a cat', 'a dog', 'a car'] }, 'zero_shot_image_classification')
    const labels = r.labels as Array<{ label: string, score: number }>
    assert.equal(labels.length, 3)
    assert.ok(Math.abs(sum(labels.map(l => l.score)) - 1) < 1e-5, 'scores are probabilities')
    assert.ok(labels[0].score >= labels[1].score && labels[1].score >= labels[2].score)
    assert.equal(r.label, labels[0].label)
    // The seed's multimodal example: pixel_values with input_ids (auto picks the task from config.json).
    const seed = await acc.processAsync(clip, { pixel_values: pixels(3), input_ids: [[1022, 320, 1023], [1022, 321, 500, 1023]] })
    assert.equal((seed.logits as number[]).length, 2)
  })

  it('CLIP zero-shot takes a hypothesis_template with {} and refuses anything else', async () => {
    const clip = models.dir('clip')
    const labels = ['a cat', 'a dog']
    const byDefault = await acc.processAsync(clip, { pixel_values: pixels(3), candidate_labels: labels }, 'zero_shot_image_classification')
    const same = await acc.processAsync(clip, { pixel_values: pixels(3), candidate_labels: labels, hypothesis_template: 'This is a photo of {}' }, 'zero_shot_image_classification')
    assert.deepEqual(same.logits, byDefault.logits)
    const other = await acc.processAsync(clip, { pixel_values: pixels(3), candidate_labels: labels, hypothesis_template: '{} in a picture' }, 'zero_shot_image_classification')
    assert.notDeepEqual(other.logits, byDefault.logits, 'the template is used')
    for (const input of [
      { pixel_values: pixels(3), candidate_labels: labels, hypothesis_template: 5 },
      { pixel_values: pixels(3), candidate_labels: labels, hypothesis_template: 'no place for the label' },
      { pixel_values: pixels(3), input_ids: [[1022, 320, 1023]], hypothesis_template: 'a photo of a {}' }
    ]) {
      await assert.rejects(acc.processAsync(clip, input, 'zero_shot_image_classification'), (err: unknown) =>
        err instanceof ValidationError && err.context.field === 'hypothesis_template', String(input.hypothesis_template))
    }
  })
})
