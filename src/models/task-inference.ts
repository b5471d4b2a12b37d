/**
 * What a model can do, read from its `config.json`: the task to run when the caller says `auto`, the
 * tasks it supports (a request for any other is a ValidationError before anything loads), and the
 * transformers.js pipeline that runs each task. `architectures` decides first, since it names the head
 * the weights were exported with; `model_type` is the fallback for configs without it.
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ModelLoadError, ValidationError } from '../errors.js'
import type { EndpointType, Task } from '../config/schema.js'

/** The fields of a Hugging Face `config.json` this module reads; the rest is kept as is. */
export interface ModelConfigJson {
  architectures?: string[]
  model_type?: string
  [key: string]: unknown
}

/** transformers.js pipeline names, one per task. */
export type PipelineTask =
  | 'feature-extraction'
  | 'text-generation'
  | 'image-classification'
  | 'automatic-speech-recognition'
  | 'zero-shot-image-classification'

const PIPELINE_TASKS: Readonly<Record<Task, PipelineTask>> = Object.freeze({
  text_embedding: 'feature-extraction',
  text_generation: 'text-generation',
  image_classification: 'image-classification',
  audio_transcription: 'automatic-speech-recognition',
  zero_shot_image_classification: 'zero-shot-image-classification'
})

/** Text encoders whose bare `…Model` or `…ForMaskedLM` export gives token states to pool into embeddings. */
const TEXT_ENCODER_TYPES = new Set([
  'bert', 'roberta', 'xlm-roberta', 'distilbert', 'mpnet', 'albert', 'electra', 'deberta', 'deberta-v2',
  'camembert', 'nomic_bert', 'modernbert', 'mobilebert', 'squeezebert', 'flaubert', 'xlm', 'ernie', 'esm',
  'jina_bert', 'eurobert', 'neobert', 'new', 'bge', 'e5', 'gte'
])
const DECODER_TYPES = new Set([
  'gpt2', 'gpt_neo', 'gpt_neox', 'gptj', 'gpt_bigcode', 'codegen', 'llama', 'mistral', 'mixtral', 'qwen2',
  'qwen3', 'phi', 'phi3', 'gemma', 'gemma2', 'gemma3_text', 'opt', 'bloom', 'falcon', 'mpt', 'stablelm',
  'olmo', 'olmo2', 'granite', 'smollm3', 'cohere', 'starcoder2', 'tinyllama', 'exaone', 'helium'
])
const IMAGE_CLASSIFIER_TYPES = new Set([
  'vit', 'deit', 'beit', 'convnext', 'convnextv2', 'resnet', 'swin', 'swinv2', 'mobilevit', 'mobilevitv2',
  'mobilenet_v1', 'mobilenet_v2', 'mobilenet_v3', 'efficientnet', 'dinov2', 'regnet', 'levit', 'segformer',
  'poolformer', 'pvt', 'vit_msn', 'fastvit', 'rt_detr_resnet', 'hiera'
])
const SPEECH_SEQ2SEQ_TYPES = new Set(['whisper', 'moonshine', 'lite-whisper'])
const CTC_TYPES = new Set(['wav2vec2', 'wav2vec2-bert', 'hubert', 'wavlm', 'unispeech', 'unispeech-sat', 'data2vec-audio', 'sew', 'sew-d', 'parakeet_ctc'])
const ZERO_SHOT_IMAGE_TYPES = new Set(['clip', 'siglip', 'chinese_clip', 'clipseg', 'jina_clip', 'metaclip_2', 'mobileclip'])

/** Families that are never text encoders, so their bare `…Model` must not count as one. */
function isNonTextFamily (modelType: string | undefined): boolean {
  if (modelType === undefined) return false
  return DECODER_TYPES.has(modelType) || IMAGE_CLASSIFIER_TYPES.has(modelType) || SPEECH_SEQ2SEQ_TYPES.has(modelType) ||
    CTC_TYPES.has(modelType) || ZERO_SHOT_IMAGE_TYPES.has(modelType)
}

function taskOfArchitecture (arch: string, modelType: string | undefined): Task | undefined {
  if (/(ForCausalLM|LMHeadModel)$/.test(arch)) return 'text_generation'
  if (/ForImageClassification$/.test(arch)) return 'image_classification'
  if (/ForCTC$/.test(arch)) return 'audio_transcription'
  if (/ForConditionalGeneration$/.test(arch) &&
    ((modelType !== undefined && SPEECH_SEQ2SEQ_TYPES.has(modelType)) || /^(Whisper|Moonshine)/.test(arch))) return 'audio_transcription'
  if (/^(CLIP|SigLIP|Siglip|ChineseCLIP|JinaCLIP|MetaClip2|MobileCLIP)Model$/i.test(arch)) return 'zero_shot_image_classification'
  if (/ForMaskedLM$/.test(arch) && !isNonTextFamily(modelType)) return 'text_embedding'
  if (/Model$/.test(arch) && !isNonTextFamily(modelType) && !/^(CLIP|Whisper|GPT|ViT|Wav2Vec2)/i.test(arch)) return 'text_embedding'
  return undefined
}

function taskOfModelType (modelType: string | undefined): Task | undefined {
  if (modelType === undefined) return undefined
  if (TEXT_ENCODER_TYPES.has(modelType)) return 'text_embedding'
  if (DECODER_TYPES.has(modelType)) return 'text_generation'
  if (IMAGE_CLASSIFIER_TYPES.has(modelType)) return 'image_classification'
  if (SPEECH_SEQ2SEQ_TYPES.has(modelType) || CTC_TYPES.has(modelType)) return 'audio_transcription'
  if (ZERO_SHOT_IMAGE_TYPES.has(modelType)) return 'zero_shot_image_classification'
  return undefined
}

function asConfig (config: unknown): ModelConfigJson {
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    throw ValidationError.field('config', 'config.json must hold a JSON object')
  }
  return config as ModelConfigJson
}

/**
 * Every task the model can run, most specific first: the tasks its `architectures` name, or, when none
 * is recognised, the task of its `model_type`. Empty when nothing is recognised.
 */
export function supportedTasks (config: ModelConfigJson): Task[] {
  const c = asConfig(config)
  const modelType = typeof c.model_type === 'string' ? c.model_type : undefined
  const tasks: Task[] = []
  for (const arch of Array.isArray(c.architectures) ? c.architectures : []) {
    if (typeof arch !== 'string') continue
    const task = taskOfArchitecture(arch, modelType)
    if (task !== undefined && !tasks.includes(task)) tasks.push(task)
  }
  if (tasks.length === 0) {
    const task = taskOfModelType(modelType)
    if (task !== undefined) tasks.push(task)
  }
  // A sentence-transformers export of an unlisted encoder is still an embedding model.
  if (tasks.length === 0 && typeof c._name_or_path === 'string' && c._name_or_path.includes('sentence-transformers')) {
    tasks.push('text_embedding')
  }
  return tasks
}

/**
 * The task to run a model under when the caller did not name one.
 * @throws ValidationError (field `endpoint_type`) when the config names no architecture or model type
 *   this package can run; the caller should then set `endpoint_type` explicitly.
 */
export function inferTask (config: ModelConfigJson): Task {
  const tasks = supportedTasks(config)
  if (tasks.length === 0) {
    const c = asConfig(config)
    throw ValidationError.field('endpoint_type',
      `cannot infer a task from config.json (architectures ${JSON.stringify(c.architectures ?? [])}, model_type ${JSON.stringify(c.model_type ?? null)}); set endpoint_type`)
  }
  return tasks[0]
}

/**
 * The task to run: `requested` when the model supports it, the inferred task for `auto` or nothing.
 * A model whose config names nothing recognised is trusted with an explicit task.
 * @throws ValidationError (field `endpoint_type`) for a task the model cannot do.
 */
export function resolveTask (config: ModelConfigJson, requested?: EndpointType, model?: string): Task {
  if (requested === undefined || requested === 'auto') return inferTask(config)
  if (!Object.hasOwn(PIPELINE_TASKS, requested)) {
    throw ValidationError.field('endpoint_type', `unknown task ${JSON.stringify(requested)}`, model === undefined ? {} : { model })
  }
  const tasks = supportedTasks(config)
  if (tasks.length > 0 && !tasks.includes(requested)) {
    throw ValidationError.field('endpoint_type',
      `${model ?? 'the model'} cannot do ${requested}; it supports ${tasks.join(', ')}`, model === undefined ? {} : { model })
  }
  return requested
}

/** The transformers.js pipeline name for a task. */
export function pipelineTaskFor (task: Task): PipelineTask {
  const name = Object.hasOwn(PIPELINE_TASKS, task) ? PIPELINE_TASKS[task] : undefined
  if (name === undefined) throw ValidationError.field('endpoint_type', `unknown task ${JSON.stringify(task)}`)
  return name
}

/**
 * Reads and parses `dir/config.json`.
 * @throws ModelLoadError naming the file when it is missing, unreadable, not JSON or not an object.
 */
export async function readModelConfig (dir: string, model?: string): Promise<ModelConfigJson> {
  const file = join(dir, 'config.json')
  const context = { file, ...(model === undefined ? {} : { model }) }
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (cause) {
    const missing = (cause as NodeJS.ErrnoException).code === 'ENOENT'
    throw new ModelLoadError(missing ? `${file} not found: a model folder needs config.json` : `${file} cannot be read: ${(cause as Error).message}`, { cause, context })
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (cause) {
    throw new ModelLoadError(`${file} is not valid JSON: ${(cause as Error).message}`, { cause, context })
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ModelLoadError(`${file} must hold a JSON object`, { context })
  }
  return parsed as ModelConfigJson
}
