/** Size options shared by every tiny-model family (`ipfs-accelerate models tiny <family> <dir> --hidden-size ...`). */

export const TINY_FAMILIES = ['bert', 'gpt2', 'vit', 'clip', 'whisper', 'wav2vec2'] as const
export type TinyFamily = typeof TINY_FAMILIES[number]

export interface TinyModelOptions {
  /** Width of the hidden states (d_model / n_embd). Must be divisible by `numHeads`. */
  hiddenSize?: number
  /** Transformer layers (encoder and decoder each, for Whisper). */
  numLayers?: number
  /** Attention heads. */
  numHeads?: number
  /** Vocabulary size (text families). Families with a fixed tokenizer clamp or reject values they cannot honor. */
  vocabSize?: number
  /** Longest sequence the position table covers. */
  maxPositions?: number
  /** Seed of the random weights: same options and seed, same bytes. */
  seed?: number
}

/** What a builder wrote. */
export interface TinyModelInfo {
  family: TinyFamily
  dir: string
  /** Paths relative to `dir`. */
  files: string[]
  /** The pipeline task transformers.js runs it with. */
  task: string
  /** Options after defaults were applied. */
  options: Required<TinyModelOptions>
}
