/**
 * Multimodal (CLIP) zero-shot classification: an image (`pixel_values` or `image`) and candidate
 * texts (`candidate_labels`, or token ids in `input_ids`, one row per candidate) in; each candidate's
 * softmax probability out, best first, plus the top `label` and `score` and the raw `logits`
 * (logits_per_image).
 */
import { AutoModel, AutoProcessor, AutoTokenizer, Tensor } from '@huggingface/transformers'
import { ValidationError } from '../../errors.js'
import { asObject, rejectUnknownKeys } from '../inputs/options.js'
import { toIdRows, checkIdRows, toMaskRows, maxPositions, describe } from '../inputs/token-ids.js'
import { readPixels, type PixelBatch } from '../inputs/pixel-values.js'
import { softmax } from '../inputs/softmax.js'
import { loadParts, type TaskHandler, type LoadedModel } from './task-handler.js'

/** The template candidate labels go into (`{}` is the label), as in transformers.js's pipeline. */
export const DEFAULT_HYPOTHESIS_TEMPLATE = 'This is a photo of {}'

interface ZeroShotRequest {
  pixels: PixelBatch
  labels: string[]
  ids: number[][]
  masks: number[][]
}

const KEYS = ['pixel_values', 'image', 'image_size', 'input_ids', 'attention_mask', 'candidate_labels', 'hypothesis_template'] as const

export class ZeroShotImageClassificationTask implements TaskHandler<ZeroShotRequest> {
  readonly task = 'zero_shot_image_classification' as const
  readonly batchable = false

  async load (ctx: Parameters<TaskHandler['load']>[0]): ReturnType<TaskHandler['load']> {
    const [model, processor, tokenizer] = await loadParts([
      AutoModel.from_pretrained(ctx.dir, ctx.pretrained),
      AutoProcessor.from_pretrained(ctx.dir, { local_files_only: true }).catch(() => undefined),
      AutoTokenizer.from_pretrained(ctx.dir, { local_files_only: true }).catch(() => undefined)
    ])
    return { model, processor, tokenizer }
  }

  async prepare (input: unknown, m: LoadedModel): Promise<{ value: ZeroShotRequest, rows: number }> {
    const obj = asObject(input, 'image')
    rejectUnknownKeys(obj, KEYS)
    const pixels = await readPixels(obj, m)
    if (pixels.dims[0] !== 1) throw ValidationError.field('pixel_values', 'zero-shot classification takes one image per request')
    const textConfig = m.config.text_config ?? m.config
    const limits = { vocabSize: textConfig.vocab_size, maxLength: maxPositions(m.config) }
    let ids: number[][]
    let masks: number[][]
    let labels: string[]
    if (obj.candidate_labels !== undefined) {
      const candidates = obj.candidate_labels
      if (!Array.isArray(candidates) || candidates.length === 0 || candidates.some(c => typeof c !== 'string' || c.length === 0)) {
        throw ValidationError.field('candidate_labels', 'expected a non-empty list of non-empty strings')
      }
      if (m.tokenizer === undefined) throw ValidationError.field('candidate_labels', `model ${m.id} has no tokenizer: pass input_ids`)
      if (obj.input_ids !== undefined) throw ValidationError.field('input_ids', 'give either candidate_labels or input_ids, not both')
      if (obj.attention_mask !== undefined) throw ValidationError.field('attention_mask', 'goes with input_ids, not candidate_labels')
      // transformers.js's zero-shot pipeline default, so scores match it
      const template = obj.hypothesis_template ?? DEFAULT_HYPOTHESIS_TEMPLATE
      if (typeof template !== 'string' || !template.includes('{}')) {
        throw ValidationError.field('hypothesis_template', `expected a string with {} where each label goes, got ${describe(template)}`)
      }
      labels = candidates as string[]
      ids = labels.map(label => m.tokenizer(template.replace('{}', () => label), { truncation: true, max_length: limits.maxLength, return_tensor: false }).input_ids as number[])
      masks = ids.map(row => row.map(() => 1))
    } else if (obj.input_ids !== undefined) {
      if (obj.hypothesis_template !== undefined) throw ValidationError.field('hypothesis_template', 'goes with candidate_labels, not input_ids')
      ids = toIdRows(obj.input_ids, 'input_ids')
      checkIdRows(ids, 'input_ids', limits)
      masks = toMaskRows(obj.attention_mask, ids)
      labels = ids.map((_, i) => m.tokenizer?.decode(ids[i], { skip_special_tokens: true }) || `text_${i}`)
    } else {
      throw ValidationError.field('candidate_labels', 'is missing (or pass input_ids)')
    }
    return { value: { pixels, labels, ids, masks }, rows: 1 }
  }

  async run (m: LoadedModel, items: ZeroShotRequest[]): Promise<Array<Record<string, unknown>>> {
    const results: Array<Record<string, unknown>> = []
    for (const item of items) {
      const width = Math.max(...item.ids.map(r => r.length))
      const padId = BigInt(m.config.text_config?.pad_token_id ?? m.config.pad_token_id ?? 0)
      const ids = new BigInt64Array(item.ids.length * width).fill(padId)
      const mask = new BigInt64Array(item.ids.length * width)
      item.ids.forEach((row, r) => row.forEach((id, i) => {
        ids[r * width + i] = BigInt(id)
        mask[r * width + i] = BigInt(item.masks[r][i])
      }))
      const dims = [item.ids.length, width]
      const out = await m.model({
        input_ids: new Tensor('int64', ids, dims),
        attention_mask: new Tensor('int64', mask, dims),
        pixel_values: new Tensor('float32', item.pixels.data, item.pixels.dims)
      })
      const logits = Array.from(out.logits_per_image.data as Float32Array)
      const probs = softmax(logits)
      const ranked = item.labels.map((label, i) => ({ label, score: probs[i] })).sort((a, b) => b.score - a.score)
      results.push({ label: ranked[0].label, score: ranked[0].score, labels: ranked, logits })
    }
    return results
  }
}
