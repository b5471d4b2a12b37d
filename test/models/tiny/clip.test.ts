import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { AutoModel, AutoProcessor, AutoTokenizer, RawImage, Tensor, env, pipeline } from '@huggingface/transformers'
import { CLIP_LOGIT_SCALE, buildClip } from '../../../src/models/tiny/clip.js'
import { ValidationError } from '../../../src/errors.js'

env.allowRemoteModels = false

const SIDE = 224
const PIXELS = 3 * SIDE * SIDE
const DIM = 32

function patternImage (width: number, height: number, shift: number): RawImage {
  const data = new Uint8ClampedArray(width * height * 3)
  for (let i = 0; i < data.length; i++) data[i] = (i * 37 + shift) % 256
  return new RawImage(data, width, height, 3)
}

function softmax (logits: ArrayLike<number>): number[] {
  const max = Math.max(...Array.from(logits))
  const exps = Array.from(logits, x => Math.exp(x - max))
  const sum = exps.reduce((a, b) => a + b, 0)
  return exps.map(e => e / sum)
}

type Scores = Array<{ label: string, score: number }>

describe('tiny CLIP', () => {
  let root: string
  let dir: string

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'tiny-clip-'))
    dir = join(root, 'clip')
    await buildClip(dir)
  })

  after(async () => {
    await rm(root, { recursive: true, force: true })
  })

  it('writes configs for both towers, a CLIP tokenizer and a CLIP image processor', async () => {
    const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'))
    assert.equal(config.model_type, 'clip')
    assert.deepEqual(config.architectures, ['CLIPModel'])
    assert.equal(config.projection_dim, DIM)
    assert.equal(config.text_config.vocab_size, 1024)
    assert.equal(config.text_config.max_position_embeddings, 77)
    assert.equal(config.text_config.eos_token_id, 1023)
    assert.equal(config.vision_config.image_size, SIDE)
    const processor = JSON.parse(await readFile(join(dir, 'preprocessor_config.json'), 'utf8'))
    assert.equal(processor.image_processor_type, 'CLIPImageProcessor')
    assert.deepEqual(processor.crop_size, { height: SIDE, width: SIDE })
    const tokenizerConfig = JSON.parse(await readFile(join(dir, 'tokenizer_config.json'), 'utf8'))
    assert.equal(tokenizerConfig.tokenizer_class, 'CLIPTokenizer')
  })

  it('is deterministic for a seed', async () => {
    const options = { hiddenSize: 16, numHeads: 2, numLayers: 1, vocabSize: 600, maxPositions: 16, seed: 11 }
    const a = await buildClip(join(root, 'a'), options)
    await buildClip(join(root, 'b'), options)
    await buildClip(join(root, 'c'), { ...options, seed: 12 })
    for (const file of a.files) assert.ok((await readFile(join(root, 'a', file))).equals(await readFile(join(root, 'b', file))), `${file} differs`)
    assert.ok(!(await readFile(join(root, 'a', 'onnx/model.onnx'))).equals(await readFile(join(root, 'c', 'onnx/model.onnx'))))
  })

  it('tokenizes like CLIP: lower-cased, start/end tokens, end token highest and used as padding', async () => {
    const tokenizer = await AutoTokenizer.from_pretrained(dir)
    const ids = tokenizer.encode('A Photo of a CAT')
    assert.equal(ids[0], 1022)
    assert.equal(ids.at(-1), 1023)
    assert.deepEqual(ids, tokenizer.encode('a photo of a cat'))
    assert.ok(ids.length < 'a photo of a cat'.length, 'merges form whole words')
    assert.equal(tokenizer.decode(ids, { skip_special_tokens: true }).trim(), 'a photo of a cat')
    const batch = tokenizer(['a cat', 'a photo of a dog'], { padding: true })
    assert.equal(Number(batch.input_ids.data[batch.input_ids.dims[1] - 1]), 1023, 'pads with the end token')
  })

  it('scores candidate labels through the pipeline as probabilities', async () => {
    const classifier = await pipeline('zero-shot-image-classification', dir, { device: 'cpu', dtype: 'fp32' })
    try {
      const labels = ['cat', 'dog', 'sports car', 'banana']
      const result = await classifier(patternImage(80, 60, 0), labels) as Scores
      assert.deepEqual(new Set(result.map(r => r.label)), new Set(labels))
      const total = result.reduce((sum, r) => sum + r.score, 0)
      assert.ok(Math.abs(total - 1) < 1e-5, `scores sum to ${total}`)
      for (let i = 1; i < result.length; i++) assert.ok(result[i - 1].score >= result[i].score)
      assert.ok(result[0].score - result.at(-1)!.score > 1e-3, 'labels are told apart')

      // Same numbers as the raw model on the processor's and tokenizer's output.
      const direct = await classifier(patternImage(80, 60, 0), labels, { hypothesis_template: '{}' }) as Scores
      const tokenizer = await AutoTokenizer.from_pretrained(dir)
      const processor = await AutoProcessor.from_pretrained(dir)
      const model = await AutoModel.from_pretrained(dir, { device: 'cpu', dtype: 'fp32' })
      try {
        const text = tokenizer(labels, { padding: true, truncation: true })
        const { pixel_values: pixelValues } = await processor(patternImage(80, 60, 0))
        const out = await model({ ...text, pixel_values: pixelValues })
        const probs = softmax(out.logits_per_image.data as Float32Array)
        for (const { label, score } of direct) assert.ok(Math.abs(probs[labels.indexOf(label)] - score) < 1e-5)
      } finally {
        await model.dispose()
      }
    } finally {
      await classifier.dispose()
    }
  })

  it('returns normalised embeddings whose scaled dot products are the logits; padding does not move a text', async () => {
    const tokenizer = await AutoTokenizer.from_pretrained(dir)
    const model = await AutoModel.from_pretrained(dir, { device: 'cpu', dtype: 'fp32' })
    try {
      const pixels = new Float32Array(2 * PIXELS)
      for (let i = 0; i < pixels.length; i++) pixels[i] = Math.sin(i * (i < PIXELS ? 0.1 : 0.37))
      const pixelValues = new Tensor('float32', pixels, [2, 3, SIDE, SIDE])
      const texts = ['a photo of a cat sitting on a red chair', 'a dog']
      const out = await model({ ...tokenizer(texts, { padding: true }), pixel_values: pixelValues })
      assert.deepEqual(out.logits_per_image.dims, [2, 2])
      assert.deepEqual(out.logits_per_text.dims, [2, 2])
      assert.deepEqual(out.text_embeds.dims, [2, DIM])
      assert.deepEqual(out.image_embeds.dims, [2, DIM])
      const text = out.text_embeds.data as Float32Array
      const image = out.image_embeds.data as Float32Array
      const perImage = out.logits_per_image.data as Float32Array
      const perText = out.logits_per_text.data as Float32Array
      for (let r = 0; r < 2; r++) {
        let tn = 0
        let inorm = 0
        for (let d = 0; d < DIM; d++) {
          tn += text[r * DIM + d] ** 2
          inorm += image[r * DIM + d] ** 2
        }
        assert.ok(Math.abs(tn - 1) < 1e-5 && Math.abs(inorm - 1) < 1e-5)
      }
      for (let i = 0; i < 2; i++) {
        for (let t = 0; t < 2; t++) {
          let dot = 0
          for (let d = 0; d < DIM; d++) dot += image[i * DIM + d] * text[t * DIM + d]
          assert.ok(Math.abs(perImage[i * 2 + t] - CLIP_LOGIT_SCALE * dot) < 1e-4)
          assert.equal(perText[t * 2 + i], perImage[i * 2 + t])
        }
      }
      assert.ok(Math.abs(perImage[0] - perImage[2]) > 1e-4, 'different images, different logits')

      const alone = await model({ ...tokenizer(['a dog']), pixel_values: new Tensor('float32', pixels.slice(0, PIXELS), [1, 3, SIDE, SIDE]) })
      const aloneText = alone.text_embeds.data as Float32Array
      for (let d = 0; d < DIM; d++) assert.ok(Math.abs(aloneText[d] - text[DIM + d]) < 1e-5)
      assert.ok(Math.abs((alone.image_embeds.data as Float32Array)[0] - image[0]) < 1e-5)
    } finally {
      await model.dispose()
    }
  })

  it('rejects bad options', async () => {
    await assert.rejects(buildClip(join(root, 'bad'), { vocabSize: 300 }), (e: unknown) => e instanceof ValidationError && e.context.field === 'vocabSize')
    await assert.rejects(buildClip(join(root, 'bad'), { numHeads: 5 }), (e: unknown) => e instanceof ValidationError && e.context.field === 'hiddenSize')
  })
})
