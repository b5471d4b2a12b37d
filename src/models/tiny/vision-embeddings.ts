/**
 * The ViT-style front end shared by the ViT and CLIP vision towers: a strided convolution cuts the
 * image into patches, a learned class token is put in front, and learned position embeddings are added.
 */
import type { GraphBuilder } from './onnx-graph.js'

export interface PatchEmbeddingOptions {
  /** Side of the (square) input image in pixels. */
  imageSize: number
  /** Side of a patch in pixels; must divide `imageSize`. */
  patchSize: number
  hidden: number
  /** Prefix of the weight names. */
  name: string
  /** Whether the patch convolution has a bias (ViT yes, CLIP no). */
  convBias: boolean
  std?: number
}

/** Patches per image (without the class token). */
export function patchCount (imageSize: number, patchSize: number): number {
  return (imageSize / patchSize) ** 2
}

/** `[1, n, H]` tiled along the batch of `like` (`[B, ...]`): a per-image copy of a learned token. */
export function expandToBatch (g: GraphBuilder, token: string, like: string, tail: number[]): string {
  const batch = g.op('Slice', [g.op('Shape', [like]), g.ints([0]), g.ints([1])])
  const shape = g.op('Concat', [batch, g.ints(tail)], { axis: 0 })
  return g.op('Expand', [token, shape])
}

/** `pixel_values` `[B, 3, S, S]` to embeddings `[B, 1 + patches, H]` (class token first). */
export function patchEmbedding (g: GraphBuilder, pixelValues: string, o: PatchEmbeddingOptions): string {
  const std = o.std ?? 0.02
  const p = o.patchSize
  const convInputs = [pixelValues, g.weight(`${o.name}.patch_embedding.weight`, [o.hidden, 3, p, p], std)]
  if (o.convBias) convInputs.push(g.weight(`${o.name}.patch_embedding.bias`, [o.hidden], std))
  const grid = g.op('Conv', convInputs, { kernel_shape: [p, p], strides: [p, p] })
  const patches = g.op('Transpose', [g.op('Reshape', [grid, g.ints([0, o.hidden, -1])])], { perm: [0, 2, 1] })
  const cls = expandToBatch(g, g.weight(`${o.name}.class_embedding`, [1, 1, o.hidden], std), pixelValues, [1, o.hidden])
  const tokens = g.op('Concat', [cls, patches], { axis: 1 })
  const positions = g.weight(`${o.name}.position_embedding.weight`, [1, patchCount(o.imageSize, p) + 1, o.hidden], std)
  return g.op('Add', [tokens, positions])
}

/** The class token's state `[B, H]` from hidden states `[B, T, H]`. */
export function classToken (g: GraphBuilder, hidden: string): string {
  return g.op('Gather', [hidden, g.init(g.fresh('cls_index'), 'int64', [], [0])], { axis: 1 })
}
