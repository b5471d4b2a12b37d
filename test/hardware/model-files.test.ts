import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ModelLoadError } from '../../src/errors.js'
import { availableDtypes, dtypeOfFile, estimateModelBytes } from '../../src/hardware/index.js'

describe('model weight files', () => {
  let root: string
  let bert: string
  let whisper: string
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'ipfs-accelerate-model-files-'))
    bert = join(root, 'bert')
    whisper = join(root, 'whisper')
    await mkdir(join(bert, 'onnx'), { recursive: true })
    await mkdir(join(whisper, 'onnx'), { recursive: true })
    const files: Record<string, number> = {
      'bert/onnx/model.onnx': 1000,
      'bert/onnx/model.onnx_data': 5000,
      'bert/onnx/model.onnx_data_1': 2500,
      'bert/onnx/model_fp16.onnx': 600,
      'bert/onnx/model_quantized.onnx': 300,
      'bert/onnx/model_q4f16.onnx': 150,
      'bert/config.json': 10,
      'whisper/onnx/encoder_model.onnx': 400,
      'whisper/onnx/decoder_model_merged.onnx': 700,
      'whisper/onnx/decoder_model.onnx': 650,
      'whisper/onnx/encoder_model_fp16.onnx': 200
    }
    for (const [path, size] of Object.entries(files)) await writeFile(join(root, path), Buffer.alloc(size))
  })
  after(async () => { await rm(root, { recursive: true, force: true }) })

  it('reads base name and dtype from a file name', () => {
    assert.deepEqual(dtypeOfFile('model_q4f16.onnx'), { baseName: 'model', dtype: 'q4f16' })
    assert.deepEqual(dtypeOfFile('model_q4.onnx'), { baseName: 'model', dtype: 'q4' })
    assert.deepEqual(dtypeOfFile('decoder_model_merged_quantized.onnx'), { baseName: 'decoder_model_merged', dtype: 'q8' })
    assert.deepEqual(dtypeOfFile('decoder_model_merged.onnx'), { baseName: 'decoder_model_merged', dtype: 'fp32' })
    assert.equal(dtypeOfFile('model.onnx_data'), undefined)
  })

  it('lists the variants on disk', async () => {
    assert.deepEqual(await availableDtypes(bert), ['fp32', 'fp16', 'q8', 'q4f16'])
    assert.deepEqual(await availableDtypes(join(root, 'missing')), [])
  })

  it('counts a dtype for a multi-file model only when every file has it', async () => {
    assert.deepEqual(await availableDtypes(whisper, ['encoder_model', 'decoder_model_merged']), ['fp32'])
    assert.deepEqual(await availableDtypes(whisper, 'encoder_model'), ['fp32', 'fp16'])
  })

  it('estimates bytes from the weight files of the dtype plus external data', async () => {
    assert.equal(await estimateModelBytes(bert, 'fp32'), 1000 + 5000 + 2500)
    assert.equal(await estimateModelBytes(bert, 'fp16'), 600)
    assert.equal(await estimateModelBytes(bert, 'q8'), 300)
    // Only the files transformers.js loads: decoder_model.onnx is another export, not loaded.
    assert.equal(await estimateModelBytes(whisper, 'fp32', ['encoder_model', 'decoder_model_merged']), 1100)
  })

  it('fails clearly when the dtype has no files', async () => {
    await assert.rejects(estimateModelBytes(bert, 'int8'), (err: unknown) => {
      assert.ok(err instanceof ModelLoadError)
      assert.match(err.message, /has no int8 weights \(looked for onnx\/model_int8\.onnx\)/)
      return true
    })
    await assert.rejects(estimateModelBytes(whisper, 'fp16', ['encoder_model', 'decoder_model_merged']), ModelLoadError)
  })
})
