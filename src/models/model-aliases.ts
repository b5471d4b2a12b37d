/**
 * Short model names the seed accepted, mapped onto hub repositories that carry ONNX weights laid out
 * for transformers.js. The original repositories (`bert-base-uncased`, `openai/whisper-small`, ...)
 * hold PyTorch/safetensors weights only, which onnxruntime cannot run, so each name points at the
 * community conversion (mostly under `Xenova/`) with the same weights exported to `onnx/*.onnx`.
 * Config `model_aliases` extends and overrides this table.
 */
import { ValidationError } from '../errors.js'

/** Built-in alias table: seed name -> hub repository with ONNX weights. */
export const BUILTIN_MODEL_ALIASES: Readonly<Record<string, string>> = Object.freeze({
  // text_embedding
  'bert-base-uncased': 'Xenova/bert-base-uncased',
  'google-bert/bert-base-uncased': 'Xenova/bert-base-uncased',
  'bert-base-cased': 'Xenova/bert-base-cased',
  'google-bert/bert-base-cased': 'Xenova/bert-base-cased',
  'distilbert-base-uncased': 'Xenova/distilbert-base-uncased',
  'distilbert/distilbert-base-uncased': 'Xenova/distilbert-base-uncased',
  'all-MiniLM-L6-v2': 'Xenova/all-MiniLM-L6-v2',
  'sentence-transformers/all-MiniLM-L6-v2': 'Xenova/all-MiniLM-L6-v2',
  'all-mpnet-base-v2': 'Xenova/all-mpnet-base-v2',
  'sentence-transformers/all-mpnet-base-v2': 'Xenova/all-mpnet-base-v2',
  'BAAI/bge-small-en-v1.5': 'Xenova/bge-small-en-v1.5',
  // text_generation
  gpt2: 'Xenova/gpt2',
  'openai-community/gpt2': 'Xenova/gpt2',
  distilgpt2: 'Xenova/distilgpt2',
  'distilbert/distilgpt2': 'Xenova/distilgpt2',
  // image_classification
  'vit-base-patch16-224': 'Xenova/vit-base-patch16-224',
  'google/vit-base-patch16-224': 'Xenova/vit-base-patch16-224',
  'microsoft/vit-base-patch16-224': 'Xenova/vit-base-patch16-224',
  // audio_transcription
  'whisper-tiny': 'Xenova/whisper-tiny',
  'openai/whisper-tiny': 'Xenova/whisper-tiny',
  'openai/whisper-tiny.en': 'Xenova/whisper-tiny.en',
  'whisper-base': 'Xenova/whisper-base',
  'openai/whisper-base': 'Xenova/whisper-base',
  'openai/whisper-base.en': 'Xenova/whisper-base.en',
  'whisper-small': 'Xenova/whisper-small',
  'openai/whisper-small': 'Xenova/whisper-small',
  'openai/whisper-small.en': 'Xenova/whisper-small.en',
  'wav2vec2-base-960h': 'Xenova/wav2vec2-base-960h',
  'facebook/wav2vec2-base-960h': 'Xenova/wav2vec2-base-960h',
  // zero_shot_image_classification
  'clip-vit-base-patch32': 'Xenova/clip-vit-base-patch32',
  'openai/clip-vit-base-patch32': 'Xenova/clip-vit-base-patch32',
  'clip-vit-base-patch16': 'Xenova/clip-vit-base-patch16',
  'openai/clip-vit-base-patch16': 'Xenova/clip-vit-base-patch16'
})

/** Longest alias chain followed before giving up: config aliases may point at other aliases. */
const MAX_ALIAS_DEPTH = 8

/**
 * Resolves `id` through the config's `model_aliases` (checked first, so config wins) and the built-in
 * table, following chains (`my-model` -> `bert-base-uncased` -> `Xenova/bert-base-uncased`).
 * Returns `id` unchanged when it is no alias.
 * @throws ValidationError (field `model_aliases`) on an alias cycle.
 */
export function resolveModelAlias (id: string, configAliases: Readonly<Record<string, string>> = {}): string {
  let current = id
  const seen = new Set<string>([id])
  for (let depth = 0; depth < MAX_ALIAS_DEPTH; depth++) {
    const next = Object.hasOwn(configAliases, current)
      ? configAliases[current]
      : Object.hasOwn(BUILTIN_MODEL_ALIASES, current) ? BUILTIN_MODEL_ALIASES[current] : undefined
    if (next === undefined || next === current) return current
    if (seen.has(next)) {
      throw ValidationError.field('model_aliases', `alias cycle through ${[...seen, next].map(s => JSON.stringify(s)).join(' -> ')}`, { model: id })
    }
    seen.add(next)
    current = next
  }
  throw ValidationError.field('model_aliases', `alias chain from ${JSON.stringify(id)} is longer than ${MAX_ALIAS_DEPTH}`, { model: id })
}
