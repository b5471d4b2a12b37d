import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { AutoModelForImageClassification, RawImage, Tensor, env, pipeline } from '@huggingface/transformers'
import { VIT_LABELS, buildVit } from '../../../src/models/tiny/vit.js'
import { ValidationError } from '../../../src/errors.js'

env.allowRemoteModels = false

const SIDE = 224
const PIXELS = 3 * SIDE * SIDE

function softmax (logits: ArrayLike<number>): number[] {
  const max = Math.max(...Array.from(logits))
  const exps = Array.from(logits, x => Math.exp(x - max))
  const sum = exps.reduce((a, b) => a + b, 0)
  return exps.map(e => e / sum)
}

/** A deterministic RGB test pattern. */
function patternImage (width: number, height: number, shift: number): RawImage {
  const data = new Uint8ClampedArray(width * height * 3)
  for (let i = 0; i < data.length; i++) data[i] = (i * 37 + shift) % 256
  return new RawImage(data, width, height, 3)
}

type Classification = Array<{ label: string, score: number }>

describe('tiny ViT', () => {
  let root: string
  let dir: string

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'tiny-vit-'))
    dir = join(root, 'vit')
    await buildVit(dir)
  })

  after(async () => {
    await rm(root, { recursive: true, force: true })
  })

  it('writes a config with readable labels and a ViT image processor config', async () => {
    const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'))
    assert.equal(config.model_type, 'vit')
    assert.deepEqual(config.architectures, ['ViTForImageClassification'])
    assert.equal(config.image_size, SIDE)
    assert.equal(config.patch_size, 32)
    assert.equal(Object.keys(config.id2label).length, 10)
    assert.equal(config.id2label['1'], 'Egyptian cat')
    assert.equal(config.label2id['tabby cat'], 0)
    const processor = JSON.parse(await readFile(join(dir, 'preprocessor_config.json'), 'utf8'))
    assert.equal(processor.image_processor_type, 'ViTImageProcessor')
    assert.deepEqual(processor.size, { height: SIDE, width: SIDE })
    assert.deepEqual(processor.image_mean, [0.5, 0.5, 0.5])
    assert.equal(processor.rescale_factor, 1 / 255)
  })

  it('is deterministic for a seed', async () => {
    const a = await buildVit(join(root, 'a'), { seed: 5, numLayers: 1 })
    await buildVit(join(root, 'b'), { seed: 5, numLayers: 1 })
    await buildVit(join(root, 'c'), { seed: 6, numLayers: 1 })
    for (const file of a.files) assert.ok((await readFile(join(root, 'a', file))).equals(await readFile(join(root, 'b', file))), `${file} differs`)
    assert.ok(!(await readFile(join(root, 'a', 'onnx/model.onnx'))).equals(await readFile(join(root, 'c', 'onnx/model.onnx'))))
    assert.equal(a.options.vocabSize, 10, 'vocabSize reports the label count')
  })

  it('classifies an in-memory image through the pipeline into probabilities over id2label', async () => {
    const classifier = await pipeline('image-classification', dir, { device: 'cpu', dtype: 'fp32' })
    try {
      const result = await classifier(patternImage(64, 48, 0), { top_k: 10 }) as Classification
      assert.equal(result.length, 10)
      assert.deepEqual(new Set(result.map(r => r.label)), new Set(VIT_LABELS))
      const total = result.reduce((sum, r) => sum + r.score, 0)
      assert.ok(Math.abs(total - 1) < 1e-5, `scores sum to ${total}`)
      for (let i = 1; i < result.length; i++) assert.ok(result[i - 1].score >= result[i].score)
      assert.ok(result[0].score > 0.2, 'the classifier is not uniform')
      const other = await classifier(patternImage(64, 48, 101), { top_k: 10 }) as Classification
      assert.notDeepEqual(other.map(r => r.score), result.map(r => r.score), 'different images, different scores')
      const [top] = await classifier(patternImage(64, 48, 0)) as Classification
      assert.deepEqual(top, result[0])
    } finally {
      await classifier.dispose()
    }
  })

  it('gives the pipeline and a raw pixel tensor the same probabilities', async () => {
    const gray = new RawImage(new Uint8ClampedArray(PIXELS).fill(200), SIDE, SIDE, 3)
    const classifier = await pipeline('image-classification', dir, { device: 'cpu', dtype: 'fp32' })
    const model = await AutoModelForImageClassification.from_pretrained(dir, { device: 'cpu', dtype: 'fp32' })
    try {
      const viaPipeline = await classifier(gray, { top_k: 10 }) as Classification
      // What the processor makes of a uniform 200: rescale by 1/255, normalise with mean = std = 0.5.
      const value = (200 / 255 - 0.5) / 0.5
      const { logits } = await model({ pixel_values: new Tensor('float32', new Float32Array(PIXELS).fill(value), [1, 3, SIDE, SIDE]) })
      assert.deepEqual(logits.dims, [1, 10])
      const probs = softmax(logits.data as Float32Array)
      for (const { label, score } of viaPipeline) {
        assert.ok(Math.abs(probs[VIT_LABELS.indexOf(label)] - score) < 1e-4, `${label}: ${probs[VIT_LABELS.indexOf(label)]} vs ${score}`)
      }
    } finally {
      await classifier.dispose()
      await model.dispose()
    }
  })

  it('classifies each image of a batch as it classifies it alone', async () => {
    const model = await AutoModelForImageClassification.from_pretrained(dir, { device: 'cpu', dtype: 'fp32' })
    try {
      const first = Float32Array.from({ length: PIXELS }, (_, i) => Math.sin(i) * 0.8)
      const second = Float32Array.from({ length: PIXELS }, (_, i) => Math.cos(i * 0.3) * 0.5)
      const batch = new Float32Array(2 * PIXELS)
      batch.set(first, 0)
      batch.set(second, PIXELS)
      const both = (await model({ pixel_values: new Tensor('float32', batch, [2, 3, SIDE, SIDE]) })).logits.data as Float32Array
      const alone = (await model({ pixel_values: new Tensor('float32', second, [1, 3, SIDE, SIDE]) })).logits.data as Float32Array
      for (let c = 0; c < 10; c++) assert.ok(Math.abs(both[10 + c] - alone[c]) < 1e-4)
      let diff = 0
      for (let c = 0; c < 10; c++) diff = Math.max(diff, Math.abs(both[c] - both[10 + c]))
      assert.ok(diff > 1e-3)
    } finally {
      await model.dispose()
    }
  })

  it('rejects bad options', async () => {
    await assert.rejects(buildVit(join(root, 'bad'), { hiddenSize: 33 }), (e: unknown) => e instanceof ValidationError && e.context.field === 'hiddenSize')
  })
})
