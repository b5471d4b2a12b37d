/**
 * Tiny models for the benchmarks, built once into a folder under the system temp directory (keyed by
 * their options, so later runs reuse them; set IPFS_ACCELERATE_BENCH_MODELS to choose the folder), and
 * inputs of an exact token length that are the same as ids and as text.
 */
import { existsSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildTinyModel } from '../../src/models/tiny/index.js'
import { BERT_DEFAULTS } from '../../src/models/tiny/tiny-defaults.js'
import type { TinyModelOptions } from '../../src/models/tiny/options.js'

export const BENCH_MODELS_ROOT = process.env.IPFS_ACCELERATE_BENCH_MODELS ?? join(tmpdir(), 'ipfs-accelerate-bench-models')

export interface BenchModel {
  name: string
  dir: string
  options: Required<TinyModelOptions>
}

/** Builds (or reuses) a tiny BERT with `options` over the defaults. */
export async function benchBert (name: string, options: TinyModelOptions = {}): Promise<BenchModel> {
  const o = { ...BERT_DEFAULTS, ...options }
  const dir = join(BENCH_MODELS_ROOT, `bert-h${o.hiddenSize}-l${o.numLayers}-a${o.numHeads}-v${o.vocabSize}-p${o.maxPositions}-s${o.seed}`)
  if (!existsSync(join(dir, 'onnx', 'model.onnx')) || !existsSync(join(dir, 'tokenizer.json'))) {
    await buildTinyModel('bert', dir, o)
  }
  return { name, dir, options: o }
}

/** One input: token ids (with [CLS] and [SEP]) and a text the model's tokenizer turns into exactly those ids. */
export interface BenchInput {
  ids: number[]
  text: string
}

/**
 * `count` inputs of exactly `length` tokens each ([CLS] + words + [SEP]), made of whole-word vocabulary
 * entries so that the text tokenizes to the same ids; input k uses a different run of words.
 */
export function makeInputs (model: BenchModel, length: number, count: number, first = 0): BenchInput[] {
  if (length < 3) throw new Error('inputs need at least 3 tokens')
  const tokenizer = JSON.parse(readFileSync(join(model.dir, 'tokenizer.json'), 'utf8')) as { model: { vocab: Record<string, number> } }
  const words = Object.entries(tokenizer.model.vocab)
    .filter(([w]) => /^[a-z]{3,}$/.test(w))
    .sort((a, b) => a[1] - b[1])
  if (words.length === 0) throw new Error(`no whole words in the vocabulary of ${model.dir}`)
  const inputs: BenchInput[] = []
  for (let k = first; k < first + count; k++) {
    const picked: Array<[string, number]> = []
    for (let i = 0; i < length - 2; i++) picked.push(words[(k * 7919 + i * 31) % words.length])
    inputs.push({ ids: [101, ...picked.map(([, id]) => id), 102], text: picked.map(([w]) => w).join(' ') })
  }
  return inputs
}
