import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { inferTask, supportedTasks, resolveTask, pipelineTaskFor, readModelConfig, type ModelConfigJson } from '../../src/models/task-inference.js'
import { ModelLoadError, ValidationError } from '../../src/errors.js'
import { ENDPOINT_TYPES, type Task } from '../../src/config/schema.js'

// Trimmed copies of the config.json files of the seed's models, keeping the keys that matter.
const CONFIGS = {
  bert: { _name_or_path: 'bert-base-uncased', architectures: ['BertForMaskedLM'], model_type: 'bert', hidden_size: 768, num_hidden_layers: 12, vocab_size: 30522 },
  minilm: { _name_or_path: 'sentence-transformers/all-MiniLM-L6-v2', architectures: ['BertModel'], model_type: 'bert', hidden_size: 384 },
  gpt2: { architectures: ['GPT2LMHeadModel'], model_type: 'gpt2', n_embd: 768, n_head: 12, n_layer: 12, n_positions: 1024, bos_token_id: 50256, eos_token_id: 50256, task_specific_params: { 'text-generation': { do_sample: true, max_length: 50 } } },
  llama: { architectures: ['LlamaForCausalLM'], model_type: 'llama' },
  vit: { architectures: ['ViTForImageClassification'], model_type: 'vit', image_size: 224, patch_size: 16, id2label: { 0: 'tench', 1: 'goldfish' } },
  clip: { architectures: ['CLIPModel'], model_type: 'clip', projection_dim: 512, text_config: { model_type: 'clip_text_model' }, vision_config: { model_type: 'clip_vision_model' } },
  whisper: { architectures: ['WhisperForConditionalGeneration'], model_type: 'whisper', is_encoder_decoder: true, d_model: 768, encoder_layers: 12, decoder_layers: 12, num_mel_bins: 80, max_source_positions: 1500 },
  wav2vec2: { architectures: ['Wav2Vec2ForCTC'], model_type: 'wav2vec2', vocab_size: 32, feat_extract_norm: 'group' },
  t5: { architectures: ['T5ForConditionalGeneration'], model_type: 't5' }
}

describe('task inference', () => {
  it('infers each seed task from real config shapes', () => {
    const expected: Record<string, Task> = {
      bert: 'text_embedding',
      minilm: 'text_embedding',
      gpt2: 'text_generation',
      llama: 'text_generation',
      vit: 'image_classification',
      clip: 'zero_shot_image_classification',
      whisper: 'audio_transcription',
      wav2vec2: 'audio_transcription'
    }
    for (const [name, task] of Object.entries(expected)) {
      assert.equal(inferTask(CONFIGS[name as keyof typeof CONFIGS]), task, name)
    }
  })

  it('falls back to model_type when architectures are missing or unknown', () => {
    assert.equal(inferTask({ model_type: 'bert' }), 'text_embedding')
    assert.equal(inferTask({ model_type: 'gpt2' }), 'text_generation')
    assert.equal(inferTask({ model_type: 'whisper', architectures: ['WhisperModel'] }), 'audio_transcription')
    assert.equal(inferTask({ model_type: 'vit', architectures: ['ViTModel'] }), 'image_classification')
    assert.equal(inferTask({ model_type: 'clip' }), 'zero_shot_image_classification')
    assert.equal(inferTask({ model_type: 'wav2vec2' }), 'audio_transcription')
  })

  it('treats a bare text encoder …Model as an embedding model but not a vision or decoder one', () => {
    assert.deepEqual(supportedTasks({ architectures: ['XLMRobertaModel'], model_type: 'xlm-roberta' }), ['text_embedding'])
    assert.deepEqual(supportedTasks({ architectures: ['MPNetModel'] }), ['text_embedding'])
    assert.deepEqual(supportedTasks({ architectures: ['GPT2Model'], model_type: 'gpt2' }), ['text_generation'])
  })

  it('lists what a model supports and nothing it cannot do', () => {
    assert.deepEqual(supportedTasks(CONFIGS.gpt2), ['text_generation'])
    assert.deepEqual(supportedTasks(CONFIGS.whisper), ['audio_transcription'])
    assert.deepEqual(supportedTasks(CONFIGS.t5), [])
    assert.deepEqual(supportedTasks({}), [])
    assert.deepEqual(supportedTasks({ architectures: ['ViTForImageClassification', 'ViTForImageClassification'] }), ['image_classification'])
  })

  it('throws ValidationError on endpoint_type when nothing is recognised', () => {
    assert.throws(() => inferTask(CONFIGS.t5), (err: unknown) => err instanceof ValidationError && err.context.field === 'endpoint_type' && /T5ForConditionalGeneration/.test(err.message))
    assert.throws(() => inferTask([] as unknown as ModelConfigJson), ValidationError)
  })

  it('resolves auto to the inferred task and rejects tasks the model cannot do', () => {
    assert.equal(resolveTask(CONFIGS.vit, 'auto'), 'image_classification')
    assert.equal(resolveTask(CONFIGS.vit), 'image_classification')
    assert.equal(resolveTask(CONFIGS.gpt2, 'text_generation'), 'text_generation')
    assert.throws(() => resolveTask(CONFIGS.gpt2, 'image_classification', 'gpt2'), (err: unknown) => {
      assert.ok(err instanceof ValidationError)
      assert.equal(err.context.field, 'endpoint_type')
      assert.equal(err.context.model, 'gpt2')
      assert.match(err.message, /cannot do image_classification; it supports text_generation/)
      return true
    })
    // An unrecognised config is trusted with an explicit task.
    assert.equal(resolveTask(CONFIGS.t5, 'text_generation'), 'text_generation')
    assert.throws(() => resolveTask(CONFIGS.gpt2, 'translation' as Task), ValidationError)
  })

  it('maps every task onto its transformers.js pipeline', () => {
    const expected = {
      text_embedding: 'feature-extraction',
      text_generation: 'text-generation',
      image_classification: 'image-classification',
      audio_transcription: 'automatic-speech-recognition',
      zero_shot_image_classification: 'zero-shot-image-classification'
    }
    for (const task of ENDPOINT_TYPES.filter((t): t is Task => t !== 'auto')) assert.equal(pipelineTaskFor(task), expected[task])
    assert.throws(() => pipelineTaskFor('auto' as Task), ValidationError)
  })

  describe('readModelConfig', () => {
    let dir: string
    before(async () => { dir = await mkdtemp(join(tmpdir(), 'model-config-')) })
    after(async () => { await rm(dir, { recursive: true, force: true }) })

    it('reads config.json', async () => {
      await writeFile(join(dir, 'config.json'), JSON.stringify(CONFIGS.whisper))
      assert.deepEqual(await readModelConfig(dir), CONFIGS.whisper)
    })

    it('names the file when it is missing, not JSON or not an object', async () => {
      const expectLoadError = async (sub: string, content: string | undefined, pattern: RegExp): Promise<void> => {
        const folder = join(dir, sub)
        await rm(folder, { recursive: true, force: true })
        await mkdir(folder)
        if (content !== undefined) await writeFile(join(folder, 'config.json'), content)
        await assert.rejects(readModelConfig(folder, 'Org/m'), (err: unknown) => {
          assert.ok(err instanceof ModelLoadError)
          assert.equal(err.context.file, join(folder, 'config.json'))
          assert.equal(err.context.model, 'Org/m')
          assert.match(err.message, pattern)
          return true
        })
      }
      await expectLoadError('missing', undefined, /not found/)
      await expectLoadError('broken', '{"model_type": ', /not valid JSON/)
      await expectLoadError('array', '[1, 2]', /JSON object/)
    })
  })
})
