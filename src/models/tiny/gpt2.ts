/**
 * A tiny random-weight GPT2LMHeadModel for the text-generation pipeline, with a KV cache: inputs
 * `past_key_values.{i}.key/value` `[batch_size, heads, past_sequence_length, head_dim]` and outputs
 * `present.{i}.key/value`, so `generate()` feeds one new token a step. transformers.js creates the
 * first step's empty cache from the input metadata, giving every symbolic dimension except
 * `batch_size` the size 0: hence the exact `batch_size` name and fixed head counts.
 */
import { GraphBuilder } from './onnx-graph.js'
import type { TinyModelInfo, TinyModelOptions } from './options.js'
import { addedToken, byteAlphabet, growBpe, mergeWords, toByteSymbols, type BpeVocabulary } from './bpe-tokenizer.js'
import { GPT2_DEFAULTS } from './tiny-defaults.js'
import { resolveTinyOptions } from './tiny-options.js'
import { causalBias, dimOf, layerNorm, paddingBias, preNormBlock } from './transformer-layers.js'
import { writeModelFiles } from './write-model-files.js'

export { GPT2_DEFAULTS } from './tiny-defaults.js'

const END_OF_TEXT = '<|endoftext|>'
const LAYER_NORM_EPS = 1e-5
/** Smallest vocabulary: the 256 byte tokens and `<|endoftext|>`. */
export const MIN_GPT2_VOCAB = 257
/** Largest vocabulary the merge grower is asked for (GPT-2's own is 50257). */
export const MAX_GPT2_VOCAB = 65536
/**
 * Wider than the usual 0.02 so that greedy decoding has clear winners (ties between logits would make
 * cached and recomputed generation diverge on rounding alone) and so that the context changes the next
 * token, which is what makes a KV-cache test meaningful.
 */
const GPT2_STD = 0.2

/** Byte-level BPE vocabulary: 256 bytes, merges of ` word`/`word`, `<|endoftext|>` last (as in GPT-2). */
export function buildGpt2Vocabulary (vocabSize: number): BpeVocabulary {
  const table = byteAlphabet()
  const bpe = growBpe({
    base: table,
    newTokens: vocabSize - 257,
    words: mergeWords([word => toByteSymbols(` ${word}`), word => toByteSymbols(word)])
  })
  bpe.vocab.push(END_OF_TEXT)
  if (bpe.vocab.length !== vocabSize) throw new Error(`GPT-2 vocabulary came out with ${bpe.vocab.length} tokens, not ${vocabSize}`)
  return bpe
}

/** The ONNX graph with KV-cache inputs and outputs. */
export function gpt2Graph (o: Required<TinyModelOptions>): Uint8Array {
  const H = o.hiddenSize
  const headDim = H / o.numHeads
  const g = new GraphBuilder('tiny-gpt2', o.seed)
  const inputIds = g.input('input_ids', 'int64', ['batch_size', 'sequence_length'])
  const attentionMask = g.input('attention_mask', 'int64', ['batch_size', 'total_sequence_length'])
  const positionIds = g.input('position_ids', 'int64', ['batch_size', 'sequence_length'])
  const past: Array<{ key: string, value: string }> = []
  for (let i = 0; i < o.numLayers; i++) {
    const cacheDims = ['batch_size', o.numHeads, 'past_sequence_length', headDim]
    past.push({
      key: g.input(`past_key_values.${i}.key`, 'float32', cacheDims),
      value: g.input(`past_key_values.${i}.value`, 'float32', cacheDims)
    })
  }

  const wte = g.weight('transformer.wte.weight', [o.vocabSize, H], GPT2_STD)
  const wpe = g.weight('transformer.wpe.weight', [o.maxPositions, H], GPT2_STD)
  let hidden = g.op('Add', [g.op('Gather', [wte, inputIds]), g.op('Gather', [wpe, positionIds])])

  // [S, T] causal part + [B, 1, 1, T] padding part -> [B, 1, S, T]; T = past + S comes from the mask.
  const causal = causalBias(g, dimOf(g, inputIds, 1), dimOf(g, attentionMask, 1))
  const bias = g.op('Add', [causal, paddingBias(g, attentionMask)])
  for (let i = 0; i < o.numLayers; i++) {
    const block = preNormBlock(g, hidden, {
      hidden: H, numHeads: o.numHeads, innerDim: 4 * H, name: `transformer.h.${i}`, bias, past: past[i], epsilon: LAYER_NORM_EPS, std: GPT2_STD
    })
    hidden = block.hidden
    g.op('Identity', [block.key], {}, `present.${i}.key`)
    g.op('Identity', [block.value], {}, `present.${i}.value`)
  }
  hidden = layerNorm(g, hidden, H, 'transformer.ln_f', LAYER_NORM_EPS)
  // The LM head is tied to the token embeddings, as in GPT-2.
  g.op('MatMul', [hidden, g.op('Transpose', [wte], { perm: [1, 0] })], {}, 'logits')

  g.output('logits', 'float32', ['batch_size', 'sequence_length', o.vocabSize])
  for (let i = 0; i < o.numLayers; i++) {
    const dims = ['batch_size', o.numHeads, 'total_sequence_length', headDim]
    g.output(`present.${i}.key`, 'float32', dims)
    g.output(`present.${i}.value`, 'float32', dims)
  }
  return g.toBytes()
}

/** `config.json` of the tiny GPT-2. */
export function gpt2Config (o: Required<TinyModelOptions>): object {
  const eos = o.vocabSize - 1
  return {
    architectures: ['GPT2LMHeadModel'],
    model_type: 'gpt2',
    n_embd: o.hiddenSize,
    n_layer: o.numLayers,
    n_head: o.numHeads,
    n_positions: o.maxPositions,
    n_ctx: o.maxPositions,
    n_inner: null,
    vocab_size: o.vocabSize,
    activation_function: 'gelu',
    layer_norm_epsilon: LAYER_NORM_EPS,
    bos_token_id: eos,
    eos_token_id: eos,
    tie_word_embeddings: true,
    use_cache: true,
    torch_dtype: 'float32',
    ipfs_accelerate_tiny: { family: 'gpt2', seed: o.seed }
  }
}

/** `tokenizer.json` in the Hugging Face fast-tokenizer format (byte-level BPE). */
export function gpt2TokenizerJson (bpe: BpeVocabulary): object {
  const eos = bpe.vocab.length - 1
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [addedToken(eos, END_OF_TEXT, true)],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: Object.fromEntries(bpe.vocab.map((token, id) => [token, id])),
      merges: bpe.merges.map(([a, b]) => `${a} ${b}`)
    }
  }
}

/** `tokenizer_config.json`; the pad token is `<|endoftext|>` so batched prompts can be left-padded. */
export function gpt2TokenizerConfig (maxLength: number): object {
  return {
    tokenizer_class: 'GPT2Tokenizer',
    add_bos_token: false,
    add_prefix_space: false,
    bos_token: END_OF_TEXT,
    eos_token: END_OF_TEXT,
    unk_token: END_OF_TEXT,
    pad_token: END_OF_TEXT,
    model_max_length: maxLength,
    clean_up_tokenization_spaces: false
  }
}

/**
 * Writes a tiny GPT-2 (text-generation, with KV cache) into `dir`.
 * @throws ValidationError when an option is out of range.
 */
export async function buildGpt2 (dir: string, options?: TinyModelOptions): Promise<TinyModelInfo> {
  const o = resolveTinyOptions(options, GPT2_DEFAULTS, { minVocabSize: MIN_GPT2_VOCAB, maxVocabSize: MAX_GPT2_VOCAB, minPositions: 2 })
  const bpe = buildGpt2Vocabulary(o.vocabSize)
  const eos = o.vocabSize - 1
  const files = await writeModelFiles(dir, {
    'config.json': gpt2Config(o),
    'generation_config.json': { bos_token_id: eos, eos_token_id: eos, pad_token_id: eos, max_length: o.maxPositions, _from_model_config: true },
    'tokenizer.json': gpt2TokenizerJson(bpe),
    'tokenizer_config.json': gpt2TokenizerConfig(o.maxPositions),
    'onnx/model.onnx': gpt2Graph(o)
  })
  return { family: 'gpt2', dir, files, task: 'text-generation', options: o }
}
