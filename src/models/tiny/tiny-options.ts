/**
 * Applies a family's defaults to {@link TinyModelOptions} and rejects values no graph could be built
 * from, so that every builder fails the same way (a {@link ValidationError} naming the field) before it
 * writes anything.
 */
import { ValidationError } from '../../errors.js'
import type { TinyModelOptions } from './options.js'

/** Per-family lower bounds beyond "positive integer". */
export interface TinyOptionLimits {
  /** Smallest vocabulary the family's tokenizer can be written with. */
  minVocabSize?: number
  /** Largest vocabulary the family accepts (0 or absent: no limit). */
  maxVocabSize?: number
  /** Smallest position table (e.g. the number of patches + 1 for vision towers). */
  minPositions?: number
}

/** Hard ceilings that keep a "tiny" model tiny and the int32 maths in shapes safe. */
const CEILING: Required<Omit<TinyModelOptions, 'seed'>> = {
  hiddenSize: 4096,
  numLayers: 64,
  numHeads: 64,
  vocabSize: 1_000_000,
  maxPositions: 1_000_000
}

/**
 * Merges `options` over `defaults` and validates the result.
 * @throws ValidationError naming the first bad field.
 */
export function resolveTinyOptions (
  options: TinyModelOptions | undefined,
  defaults: Required<TinyModelOptions>,
  limits: TinyOptionLimits = {}
): Required<TinyModelOptions> {
  const merged: Required<TinyModelOptions> = { ...defaults }
  for (const key of Object.keys(defaults) as Array<keyof TinyModelOptions>) {
    const value = options?.[key]
    if (value !== undefined) merged[key] = value
  }
  for (const key of ['hiddenSize', 'numLayers', 'numHeads', 'vocabSize', 'maxPositions'] as const) {
    const value = merged[key]
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
      throw ValidationError.field(key, `must be a positive integer, got ${String(value)}`)
    }
    if (value > CEILING[key]) throw ValidationError.field(key, `must be at most ${CEILING[key]} for a tiny model, got ${value}`)
  }
  if (typeof merged.seed !== 'number' || !Number.isInteger(merged.seed) || merged.seed < 0 || merged.seed > 0xffffffff) {
    throw ValidationError.field('seed', `must be an integer in [0, 2^32), got ${String(merged.seed)}`)
  }
  if (merged.hiddenSize % merged.numHeads !== 0) {
    throw ValidationError.field('hiddenSize', `must be divisible by numHeads (${merged.numHeads}), got ${merged.hiddenSize}`)
  }
  if (limits.minVocabSize !== undefined && merged.vocabSize < limits.minVocabSize) {
    throw ValidationError.field('vocabSize', `must be at least ${limits.minVocabSize} for this tokenizer, got ${merged.vocabSize}`)
  }
  if (limits.maxVocabSize !== undefined && limits.maxVocabSize > 0 && merged.vocabSize > limits.maxVocabSize) {
    throw ValidationError.field('vocabSize', `must be at most ${limits.maxVocabSize} for this tokenizer, got ${merged.vocabSize}`)
  }
  if (limits.minPositions !== undefined && merged.maxPositions < limits.minPositions) {
    throw ValidationError.field('maxPositions', `must be at least ${limits.minPositions}, got ${merged.maxPositions}`)
  }
  return merged
}
