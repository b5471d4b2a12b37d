/**
 * A tiny random-weight BertModel for the feature-extraction pipeline: post-norm encoder with learned
 * absolute positions and token types, and an attention mask applied as an additive bias so that a
 * text's token states are the same alone and inside a right-padded batch.
 */
import { GraphBuilder } from './onnx-graph.js'
import type { TinyModelInfo, TinyModelOptions } from './options.js'
import { BERT_DEFAULTS } from './tiny-defaults.js'
import { resolveTinyOptions } from './tiny-options.js'
import { dimOf, layerNorm, paddingBias, postNormBlock, rangeTo } from './transformer-layers.js'
import { BERT_SPECIAL_IDS, MIN_WORDPIECE_VOCAB, buildWordPieceVocab, wordPieceTokenizerConfig, wordPieceTokenizerJson, wordPieceVocabTxt } from './wordpiece-tokenizer.js'
import { writeModelFiles } from './write-model-files.js'

export { BERT_DEFAULTS } from './tiny-defaults.js'

const LAYER_NORM_EPS = 1e-12
const TYPE_VOCAB_SIZE = 2

/** The ONNX graph: `input_ids`, `attention_mask`, `token_type_ids` -> `last_hidden_state`. */
export function bertGraph (o: Required<TinyModelOptions>): Uint8Array {
  const H = o.hiddenSize
  const g = new GraphBuilder('tiny-bert', o.seed)
  const dims = ['batch_size', 'sequence_length']
  const inputIds = g.input('input_ids', 'int64', dims)
  const attentionMask = g.input('attention_mask', 'int64', dims)
  const tokenTypeIds = g.input('token_type_ids', 'int64', dims)

  const words = g.op('Gather', [g.weight('embeddings.word_embeddings.weight', [o.vocabSize, H]), inputIds])
  const positionIds = rangeTo(g, dimOf(g, inputIds, 1))
  const positions = g.op('Gather', [g.weight('embeddings.position_embeddings.weight', [o.maxPositions, H]), positionIds])
  const types = g.op('Gather', [g.weight('embeddings.token_type_embeddings.weight', [TYPE_VOCAB_SIZE, H]), tokenTypeIds])
  let hidden = layerNorm(g, g.op('Add', [g.op('Add', [words, positions]), types]), H, 'embeddings.LayerNorm', LAYER_NORM_EPS)

  const bias = paddingBias(g, attentionMask)
  for (let i = 0; i < o.numLayers; i++) {
    hidden = postNormBlock(g, hidden, { hidden: H, numHeads: o.numHeads, innerDim: 4 * H, name: `encoder.layer.${i}`, bias, epsilon: LAYER_NORM_EPS })
  }
  g.op('Identity', [hidden], {}, 'last_hidden_state')
  g.output('last_hidden_state', 'float32', ['batch_size', 'sequence_length', H])
  return g.toBytes()
}

/** `config.json` of the tiny BERT. */
export function bertConfig (o: Required<TinyModelOptions>): object {
  return {
    architectures: ['BertModel'],
    model_type: 'bert',
    hidden_size: o.hiddenSize,
    num_hidden_layers: o.numLayers,
    num_attention_heads: o.numHeads,
    intermediate_size: 4 * o.hiddenSize,
    hidden_act: 'gelu',
    vocab_size: o.vocabSize,
    max_position_embeddings: o.maxPositions,
    type_vocab_size: TYPE_VOCAB_SIZE,
    layer_norm_eps: LAYER_NORM_EPS,
    pad_token_id: BERT_SPECIAL_IDS.pad,
    position_embedding_type: 'absolute',
    initializer_range: 0.02,
    hidden_dropout_prob: 0.1,
    attention_probs_dropout_prob: 0.1,
    torch_dtype: 'float32',
    ipfs_accelerate_tiny: { family: 'bert', seed: o.seed }
  }
}

/**
 * Writes a tiny BERT (feature-extraction) into `dir`.
 * @throws ValidationError when an option is out of range (e.g. `vocabSize` below {@link MIN_WORDPIECE_VOCAB}).
 */
export async function buildBert (dir: string, options?: TinyModelOptions): Promise<TinyModelInfo> {
  const o = resolveTinyOptions(options, BERT_DEFAULTS, { minVocabSize: MIN_WORDPIECE_VOCAB, minPositions: 2 })
  const vocab = buildWordPieceVocab(o.vocabSize)
  const files = await writeModelFiles(dir, {
    'config.json': bertConfig(o),
    'tokenizer.json': wordPieceTokenizerJson(vocab),
    'tokenizer_config.json': wordPieceTokenizerConfig(o.maxPositions),
    'vocab.txt': wordPieceVocabTxt(vocab),
    'onnx/model.onnx': bertGraph(o)
  })
  return { family: 'bert', dir, files, task: 'feature-extraction', options: o }
}
