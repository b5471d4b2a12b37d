/**
 * Entry point for the tiny random-weight models: `buildTinyModel(family, dir, options)` writes a
 * folder transformers.js loads offline (`config.json`, tokenizer or processor files, `onnx/*.onnx`).
 * Builders are imported lazily so that loading this module stays cheap and one family's module
 * cannot keep the others from loading.
 */
import { ValidationError } from '../../errors.js'
import { TINY_FAMILIES, type TinyFamily, type TinyModelInfo, type TinyModelOptions } from './options.js'

export { TINY_FAMILIES } from './options.js'
export type { TinyFamily, TinyModelInfo, TinyModelOptions } from './options.js'
export { TINY_DEFAULTS } from './tiny-defaults.js'

/** The pipeline task each family's model runs under. */
export const TINY_TASKS: Readonly<Record<TinyFamily, string>> = Object.freeze({
  bert: 'feature-extraction',
  gpt2: 'text-generation',
  vit: 'image-classification',
  clip: 'zero-shot-image-classification',
  whisper: 'automatic-speech-recognition',
  wav2vec2: 'automatic-speech-recognition'
})

/** True when `value` names a tiny-model family. */
export function isTinyFamily (value: unknown): value is TinyFamily {
  return typeof value === 'string' && (TINY_FAMILIES as readonly string[]).includes(value)
}

/**
 * Writes a tiny random-weight model of `family` as the folder `dir` (created with its parents if
 * missing). Same family, options and seed give byte-identical files. `dir` must be new, empty, or this
 * same tiny model (same family and options, nothing else in it), which is then replaced. The files are
 * written into a temporary sibling folder that is renamed into place, so a failed build leaves nothing.
 * @throws ValidationError for an unknown family, out-of-range options, or a `dir` that is a file, a
 *   symbolic link or a non-empty folder holding something else.
 */
export async function buildTinyModel (family: TinyFamily, dir: string, options?: TinyModelOptions): Promise<TinyModelInfo> {
  if (!isTinyFamily(family)) {
    throw ValidationError.field('family', `unknown tiny model family ${JSON.stringify(family)}; expected one of ${TINY_FAMILIES.join(', ')}`)
  }
  if (typeof dir !== 'string' || dir.length === 0) throw ValidationError.field('dir', 'must be a non-empty path')
  switch (family) {
    case 'bert': return await (await import('./bert.js')).buildBert(dir, options)
    case 'gpt2': return await (await import('./gpt2.js')).buildGpt2(dir, options)
    case 'vit': return await (await import('./vit.js')).buildVit(dir, options)
    case 'clip': return await (await import('./clip.js')).buildClip(dir, options)
    case 'whisper': return await (await import('./whisper.js')).buildWhisper(dir, options ?? {})
    case 'wav2vec2': return await (await import('./wav2vec2.js')).buildWav2Vec2(dir, options ?? {})
  }
}
