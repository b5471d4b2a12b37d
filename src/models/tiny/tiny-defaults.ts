/**
 * Default sizes of every tiny-model family, in one place so that the CLI, docs and builders agree and
 * so that reading them does not load any builder.
 */
import type { TinyFamily, TinyModelOptions } from './options.js'

type Defaults = Readonly<Required<TinyModelOptions>>

/** BERT: 4096 tokens keep bert-base-uncased ids such as 3746 'image' meaningful. */
export const BERT_DEFAULTS: Defaults = Object.freeze({ hiddenSize: 32, numLayers: 2, numHeads: 4, vocabSize: 4096, maxPositions: 512, seed: 42 })

/** GPT-2: 1024 positions so the text-generation pipeline's default 256 new tokens fit after a prompt. */
export const GPT2_DEFAULTS: Defaults = Object.freeze({ hiddenSize: 32, numLayers: 2, numHeads: 4, vocabSize: 1024, maxPositions: 1024, seed: 42 })

/** ViT: 224 x 224 images in 32 x 32 patches (49 + CLS positions); `vocabSize` reports the 10 labels. */
export const VIT_DEFAULTS: Defaults = Object.freeze({ hiddenSize: 32, numLayers: 2, numHeads: 4, vocabSize: 10, maxPositions: 50, seed: 42 })

/** CLIP: text positions (77 as in real CLIP); the vision tower uses 224 x 224 images in 32 x 32 patches. */
export const CLIP_DEFAULTS: Defaults = Object.freeze({ hiddenSize: 32, numLayers: 2, numHeads: 4, vocabSize: 1024, maxPositions: 77, seed: 42 })

/** All families; Whisper's and Wav2Vec2's builders own their values, these describe them. */
export const TINY_DEFAULTS: Readonly<Record<TinyFamily, Defaults>> = Object.freeze({
  bert: BERT_DEFAULTS,
  gpt2: GPT2_DEFAULTS,
  vit: VIT_DEFAULTS,
  clip: CLIP_DEFAULTS,
  whisper: Object.freeze({ hiddenSize: 32, numLayers: 2, numHeads: 4, vocabSize: 51865, maxPositions: 448, seed: 42 }),
  wav2vec2: Object.freeze({ hiddenSize: 32, numLayers: 2, numHeads: 4, vocabSize: 32, maxPositions: 128, seed: 42 })
})
