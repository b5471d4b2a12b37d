/**
 * `image_classification`: `pixel_values` or an image in, `{ label, score, logits }` out (the top
 * class, its softmax probability and the raw logits). A request holding several images gets
 * parallel lists. Requests for one model are batched.
 */
import { AutoModelForImageClassification, AutoProcessor } from '@huggingface/transformers'
import { ValidationError } from '../../errors.js'
import { asObject, optionalInt, rejectUnknownKeys } from '../inputs/options.js'
import { toPixelBatch, imageToPixelBatch, concatPixelBatches, type PixelBatch } from '../inputs/pixel-values.js'
import { softmax, argmax } from '../inputs/softmax.js'
import type { TaskHandler, LoadedModel } from './task-handler.js'

interface ImageRequest {
  pixels: PixelBatch
  topK: number
}

const KEYS = ['pixel_values', 'image', 'image_size', 'top_k'] as const

export class ImageClassificationTask implements TaskHandler<ImageRequest> {
  readonly task = 'image_classification' as const
  readonly batchable = true

  async load (ctx: Parameters<TaskHandler['load']>[0]): ReturnType<TaskHandler['load']> {
    const [model, processor] = await Promise.all([
      AutoModelForImageClassification.from_pretrained(ctx.dir, ctx.pretrained),
      AutoProcessor.from_pretrained(ctx.dir, { local_files_only: true }).catch(() => undefined)
    ])
    return { model, processor }
  }

  async prepare (input: unknown, m: LoadedModel): Promise<{ value: ImageRequest, rows: number }> {
    const obj = asObject(input, typeof input === 'string' || input instanceof Uint8Array ? 'image' : 'pixel_values')
    rejectUnknownKeys(obj, KEYS)
    const topK = optionalInt(obj.top_k, 'top_k', 1) ?? 5
    let pixels: PixelBatch
    if (obj.pixel_values !== undefined && obj.image !== undefined) throw ValidationError.field('image', 'give either pixel_values or image, not both')
    if (obj.pixel_values !== undefined) pixels = toPixelBatch(obj.pixel_values, m)
    else if (obj.image !== undefined) pixels = await imageToPixelBatch(obj.image, m)
    else throw ValidationError.field('pixel_values', 'is missing (or pass image)')
    return { value: { pixels, topK }, rows: pixels.dims[0] }
  }

  async run (m: LoadedModel, items: ImageRequest[]): Promise<Array<Record<string, unknown>>> {
    // One model call per image shape: a model whose config gives no image_size takes pixel_values of
    // any size, and requests of different sizes cannot share one tensor.
    const groups = new Map<string, number[]>()
    items.forEach((item, i) => {
      const key = item.pixels.dims.slice(1).join('x')
      groups.set(key, [...(groups.get(key) ?? []), i])
    })
    const rowLogits: number[][][] = new Array(items.length)
    for (const group of groups.values()) {
      const out = await m.model({ pixel_values: concatPixelBatches(group.map(i => items[i].pixels)) })
      const logits = out.logits.data as Float32Array
      const classes = out.logits.dims[1] as number
      let row = 0
      for (const i of group) {
        const first = row
        row += items[i].pixels.dims[0]
        rowLogits[i] = Array.from({ length: row - first }, (_, r) => Array.from(logits.subarray((first + r) * classes, (first + r + 1) * classes)))
      }
    }
    const id2label = (m.config.id2label ?? {}) as Record<string, string>
    return items.map((item, i) => {
      const results = rowLogits[i].map(l => {
        const probs = softmax(l)
        const best = argmax(probs)
        const top = probs.map((score, c) => ({ label: id2label[c] ?? `LABEL_${c}`, score }))
          .sort((a, b) => b.score - a.score).slice(0, item.topK)
        return { label: id2label[best] ?? `LABEL_${best}`, score: probs[best], logits: l, top_k: top }
      })
      if (results.length === 1) return results[0]
      return {
        label: results.map(r => r.label),
        score: results.map(r => r.score),
        logits: results.map(r => r.logits),
        top_k: results.map(r => r.top_k)
      }
    })
  }

  warmupInput (m: LoadedModel): unknown {
    const c = m.config
    if (typeof c.image_size !== 'number') return undefined
    const n = (c.num_channels ?? 3) * c.image_size * c.image_size
    return { pixel_values: { data: new Float32Array(n), dims: [1, c.num_channels ?? 3, c.image_size, c.image_size] } }
  }
}
