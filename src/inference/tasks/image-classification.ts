/**
 * `image_classification`: `pixel_values` or an image in, `{ label, score, logits }` out (the top
 * class, its softmax probability and the raw logits). A request holding several images gets
 * parallel lists. Requests for one model are batched; no model call holds more than the model's batch
 * size in images (`RunContext.maxBatch`).
 */
import { AutoModelForImageClassification, AutoProcessor, Tensor } from '@huggingface/transformers'
import { asObject, optionalInt, rejectUnknownKeys } from '../inputs/options.js'
import { readPixels, type PixelBatch } from '../inputs/pixel-values.js'
import { softmax, argmax } from '../inputs/softmax.js'
import { loadParts, type TaskHandler, type LoadedModel, type RunContext } from './task-handler.js'

interface ImageRequest {
  pixels: PixelBatch
  topK: number
}

const KEYS = ['pixel_values', 'image', 'image_size', 'top_k'] as const

export class ImageClassificationTask implements TaskHandler<ImageRequest> {
  readonly task = 'image_classification' as const
  readonly batchable = true

  async load (ctx: Parameters<TaskHandler['load']>[0]): ReturnType<TaskHandler['load']> {
    const [model, processor] = await loadParts([
      AutoModelForImageClassification.from_pretrained(ctx.dir, ctx.pretrained),
      AutoProcessor.from_pretrained(ctx.dir, { local_files_only: true }).catch(() => undefined)
    ])
    return { model, processor }
  }

  async prepare (input: unknown, m: LoadedModel): Promise<{ value: ImageRequest, rows: number }> {
    const obj = asObject(input, typeof input === 'string' || input instanceof Uint8Array ? 'image' : 'pixel_values')
    rejectUnknownKeys(obj, KEYS)
    const topK = optionalInt(obj.top_k, 'top_k', 1) ?? 5
    const pixels = await readPixels(obj, m)
    return { value: { pixels, topK }, rows: pixels.dims[0] }
  }

  async run (m: LoadedModel, items: ImageRequest[], ctx: RunContext = {}): Promise<Array<Record<string, unknown>>> {
    // One model call per image shape: a model whose config gives no image_size takes pixel_values of
    // any size, and requests of different sizes cannot share one tensor. Each shape's images run in
    // calls of at most `maxBatch` images, however many one request carries.
    const groups = new Map<string, number[]>()
    items.forEach((item, i) => {
      const key = item.pixels.dims.slice(1).join('x')
      const group = groups.get(key)
      if (group === undefined) groups.set(key, [i])
      else group.push(i)
    })
    const step = Math.max(1, Math.floor(ctx.maxBatch ?? Infinity))
    const rowLogits: number[][][] = items.map(() => [])
    for (const group of groups.values()) {
      // Every image of the group as [request, image within it], in order.
      const images = group.flatMap(i => Array.from({ length: items[i].pixels.dims[0] }, (_, r) => [i, r]))
      const [, c, h, w] = items[group[0]].pixels.dims
      const size = c * h * w
      for (let start = 0; start < images.length; start += step) {
        const call = images.slice(start, start + step)
        const data = new Float32Array(call.length * size)
        call.forEach(([i, r], k) => { data.set(items[i].pixels.data.subarray(r * size, (r + 1) * size), k * size) })
        const out = await m.model({ pixel_values: new Tensor('float32', data, [call.length, c, h, w]) })
        const logits = out.logits.data as Float32Array
        const classes = out.logits.dims[1] as number
        call.forEach(([i], k) => { rowLogits[i].push(Array.from(logits.subarray(k * classes, (k + 1) * classes))) })
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
