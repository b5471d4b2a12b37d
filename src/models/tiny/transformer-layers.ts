/**
 * Transformer building blocks written as ONNX nodes on a {@link GraphBuilder}: linear layers, layer
 * norm, GELU, multi-head attention (self or cross, with an optional KV cache) and the additive masks
 * attention needs. Hidden states are `[batch, sequence, hidden]` with symbolic batch and sequence
 * sizes, so every reshape copies those dimensions (`0` in an ONNX Reshape) instead of fixing them.
 * Weight names are `${name}.<part>` so a graph stays readable in Netron.
 */
import type { GraphBuilder } from './onnx-graph.js'

/**
 * Added to the attention score of a masked key. Large enough that `exp()` underflows to exactly 0
 * next to any real score, yet finite, so a row whose keys are all masked (left padding) still gives
 * a uniform softmax instead of NaN.
 */
export const MASK_VALUE = -1e9

/** Standard deviation of random projection weights unless a caller asks for another. */
export const WEIGHT_STD = 0.02

/** An int64 scalar constant (Range bounds, Gather indices that drop an axis). */
export function intScalar (g: GraphBuilder, value: number): string {
  return g.init(g.fresh('int_scalar'), 'int64', [], [value])
}

/** `x @ W + b` over the last axis. */
export function linear (
  g: GraphBuilder, x: string, inDim: number, outDim: number, name: string,
  options: { bias?: boolean, std?: number } = {}
): string {
  const w = g.weight(`${name}.weight`, [inDim, outDim], options.std ?? WEIGHT_STD)
  const y = g.op('MatMul', [x, w])
  if (options.bias === false) return y
  // Small random biases rather than zeros so that a bias wired to the wrong place shows up in tests.
  const b = g.weight(`${name}.bias`, [outDim], options.std ?? WEIGHT_STD)
  return g.op('Add', [y, b])
}

/** Layer normalisation over the last axis (scale 1, shift 0: the state a freshly initialised model has). */
export function layerNorm (g: GraphBuilder, x: string, dim: number, name: string, epsilon = 1e-5): string {
  const scale = g.fill(`${name}.weight`, [dim], 1)
  const shift = g.fill(`${name}.bias`, [dim], 0)
  return g.op('LayerNormalization', [x, scale, shift], { axis: -1, epsilon: { f: epsilon } })
}

/** Exact GELU: `0.5 x (1 + erf(x / sqrt 2))`, the activation BERT, GPT-2, ViT and Whisper use. */
export function gelu (g: GraphBuilder, x: string): string {
  const scaled = g.op('Mul', [x, g.scalar(Math.SQRT1_2)])
  const onePlusErf = g.op('Add', [g.op('Erf', [scaled]), g.scalar(1)])
  return g.op('Mul', [g.op('Mul', [x, onePlusErf]), g.scalar(0.5)])
}

/** The position-wise MLP: linear, GELU, linear back to `dim`. */
export function feedForward (g: GraphBuilder, x: string, dim: number, innerDim: number, name: string, std = WEIGHT_STD): string {
  const inner = gelu(g, linear(g, x, dim, innerDim, `${name}.fc1`, { std }))
  return linear(g, inner, innerDim, dim, `${name}.fc2`, { std })
}

/** `[B, S, H]` to `[B, heads, S, H / heads]`. */
export function splitHeads (g: GraphBuilder, x: string, numHeads: number, headDim: number): string {
  const reshaped = g.op('Reshape', [x, g.ints([0, 0, numHeads, headDim])])
  return g.op('Transpose', [reshaped], { perm: [0, 2, 1, 3] })
}

/** `[B, heads, S, d]` back to `[B, S, heads * d]`. */
export function mergeHeads (g: GraphBuilder, x: string, hidden: number): string {
  const transposed = g.op('Transpose', [x], { perm: [0, 2, 1, 3] })
  return g.op('Reshape', [transposed, g.ints([0, 0, hidden])])
}

/**
 * Scaled dot-product attention on split heads: `softmax(q k^T / sqrt(d) + bias) v`.
 * `bias` must broadcast to `[B, heads, S, T]` (e.g. `[B, 1, 1, T]` padding, `[S, T]` causal).
 */
export function scaledDotProduct (g: GraphBuilder, q: string, k: string, v: string, headDim: number, bias?: string): string {
  const kT = g.op('Transpose', [k], { perm: [0, 1, 3, 2] })
  let scores = g.op('Mul', [g.op('MatMul', [q, kT]), g.scalar(1 / Math.sqrt(headDim))])
  if (bias !== undefined) scores = g.op('Add', [scores, bias])
  const probs = g.op('Softmax', [scores], { axis: -1 })
  return g.op('MatMul', [probs, v])
}

export interface AttentionOptions {
  /** Queries come from here, `[B, S, hidden]`. */
  query: string
  /** Keys and values come from here (`query` for self-attention, encoder states for cross-attention). */
  keyValue?: string
  hidden: number
  numHeads: number
  /** Prefix of the weight names. */
  name: string
  /** Additive mask broadcastable to `[B, heads, S, T]`. */
  bias?: string
  /** Cached keys/values `[B, heads, past, d]` to put in front of this step's (decoder self-attention). */
  past?: { key: string, value: string }
  /** Keys/values already projected `[B, heads, T, d]`: skips the K/V projections (cross-attention reuse). */
  precomputed?: { key: string, value: string }
  /** Standard deviation of the projection weights (default {@link WEIGHT_STD}). */
  std?: number
}

/** What {@link multiHeadAttention} produced. */
export interface AttentionResult {
  /** After the output projection, `[B, S, hidden]`. */
  output: string
  /** The keys/values attended over, `[B, heads, T, d]` (past included): the `present.*` outputs of a decoder. */
  key: string
  value: string
}

/** Multi-head attention with Q/K/V/output projections, for self- or cross-attention, with an optional cache. */
export function multiHeadAttention (g: GraphBuilder, options: AttentionOptions): AttentionResult {
  const { query, hidden, numHeads, name } = options
  const std = options.std ?? WEIGHT_STD
  const headDim = hidden / numHeads
  const source = options.keyValue ?? query
  const q = splitHeads(g, linear(g, query, hidden, hidden, `${name}.q_proj`, { std }), numHeads, headDim)
  let key: string
  let value: string
  if (options.precomputed !== undefined) {
    key = options.precomputed.key
    value = options.precomputed.value
  } else {
    key = splitHeads(g, linear(g, source, hidden, hidden, `${name}.k_proj`, { std }), numHeads, headDim)
    value = splitHeads(g, linear(g, source, hidden, hidden, `${name}.v_proj`, { std }), numHeads, headDim)
  }
  if (options.past !== undefined) {
    key = g.op('Concat', [options.past.key, key], { axis: 2 })
    value = g.op('Concat', [options.past.value, value], { axis: 2 })
  }
  const context = scaledDotProduct(g, q, key, value, headDim, options.bias)
  const output = linear(g, mergeHeads(g, context, hidden), hidden, hidden, `${name}.out_proj`, { std })
  return { output, key, value }
}

/** Size of axis `axis` of `x` as an int64 scalar. */
export function dimOf (g: GraphBuilder, x: string, axis: number): string {
  return g.op('Gather', [g.op('Shape', [x]), intScalar(g, axis)], { axis: 0 })
}

/** `[0, 1, ..., n - 1]` as int64 for an int64 scalar `n` (position ids of a sequence). */
export function rangeTo (g: GraphBuilder, n: string): string {
  return g.op('Range', [intScalar(g, 0), n, intScalar(g, 1)])
}

/**
 * Additive padding mask from an int64 `attention_mask` `[B, T]`: `[B, 1, 1, T]` with 0 where the mask
 * is 1 and {@link MASK_VALUE} where it is 0.
 */
export function paddingBias (g: GraphBuilder, attentionMask: string): string {
  const mask = g.op('Cast', [attentionMask], { to: 1 })
  const inverted = g.op('Sub', [g.scalar(1), mask])
  const bias = g.op('Mul', [inverted, g.scalar(MASK_VALUE)])
  return g.op('Unsqueeze', [bias, g.ints([1, 2])])
}

/**
 * Additive causal mask `[S, T]` for `S` new queries after `T - S` cached positions: query `i` may see
 * keys `0 ..= T - S + i`. `queryLength` and `keyLength` are int64 scalars.
 */
export function causalBias (g: GraphBuilder, queryLength: string, keyLength: string): string {
  const keyPositions = rangeTo(g, keyLength)
  const offset = g.op('Sub', [keyLength, queryLength])
  const queryPositions = g.op('Range', [offset, keyLength, intScalar(g, 1)])
  const column = g.op('Unsqueeze', [queryPositions, g.ints([1])])
  const future = g.op('Less', [column, keyPositions])
  return g.op('Where', [future, g.scalar(MASK_VALUE), g.scalar(0)])
}

/**
 * One pre-norm encoder block (GPT-2, ViT, CLIP, Whisper): `x + attn(ln1(x))`, then `x + mlp(ln2(x))`.
 * Returns the new hidden states and the attention's keys/values.
 */
export function preNormBlock (
  g: GraphBuilder, x: string,
  options: {
    hidden: number, numHeads: number, innerDim: number, name: string
    bias?: string, past?: { key: string, value: string }, epsilon?: number, std?: number
  }
): { hidden: string, key: string, value: string } {
  const { hidden, numHeads, innerDim, name } = options
  const attention = multiHeadAttention(g, {
    query: layerNorm(g, x, hidden, `${name}.ln_1`, options.epsilon),
    hidden,
    numHeads,
    name: `${name}.attn`,
    bias: options.bias,
    past: options.past,
    std: options.std
  })
  const afterAttention = g.op('Add', [x, attention.output])
  const mlp = feedForward(g, layerNorm(g, afterAttention, hidden, `${name}.ln_2`, options.epsilon), hidden, innerDim, `${name}.mlp`, options.std)
  return { hidden: g.op('Add', [afterAttention, mlp]), key: attention.key, value: attention.value }
}

/** One post-norm encoder block (BERT): `ln1(x + attn(x))`, then `ln2(h + mlp(h))`. */
export function postNormBlock (
  g: GraphBuilder, x: string,
  options: { hidden: number, numHeads: number, innerDim: number, name: string, bias?: string, epsilon?: number }
): string {
  const { hidden, numHeads, innerDim, name } = options
  const attention = multiHeadAttention(g, { query: x, hidden, numHeads, name: `${name}.attention`, bias: options.bias })
  const h = layerNorm(g, g.op('Add', [x, attention.output]), hidden, `${name}.attention.ln`, options.epsilon)
  const mlp = feedForward(g, h, hidden, innerDim, `${name}.mlp`)
  return layerNorm(g, g.op('Add', [h, mlp]), hidden, `${name}.output.ln`, options.epsilon)
}
