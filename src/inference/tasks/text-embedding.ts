/**
 * `text_embedding`: token ids or text in, one vector per sequence out. Pooling (mean over the
 * attention mask by default, or the first token) and L2 normalisation (on by default) are per
 * request. Rows from concurrent requests are padded into one batch; masked positions never change a
 * row's result, so a text embeds the same alone and inside a padded batch.
 */
import { AutoModel, AutoTokenizer, Tensor } from '@huggingface/transformers'
import { ValidationError } from '../../errors.js'
import { toIdRows, toMaskRows, checkIdRows, maxPositions } from '../inputs/token-ids.js'
import { asObject, optionalBool, optionalEnum, rejectUnknownKeys } from '../inputs/options.js'
import type { TaskHandler, LoadedModel } from './task-handler.js'

export const POOLINGS = ['mean', 'cls', 'none'] as const
type Pooling = typeof POOLINGS[number]

interface EmbeddingRequest {
  ids: number[][]
  masks: number[][]
  /** A single sequence (result is one vector) or a list (result is a list of vectors). */
  single: boolean
  pooling: Pooling
  normalize: boolean
}

const KEYS = ['input_ids', 'attention_mask', 'token_type_ids', 'text', 'texts', 'pooling', 'normalize'] as const

export class TextEmbeddingTask implements TaskHandler<EmbeddingRequest> {
  readonly task = 'text_embedding' as const
  readonly batchable = true

  async load (ctx: Parameters<TaskHandler['load']>[0]): ReturnType<TaskHandler['load']> {
    const [model, tokenizer] = await Promise.all([
      AutoModel.from_pretrained(ctx.dir, ctx.pretrained),
      AutoTokenizer.from_pretrained(ctx.dir, { local_files_only: true }).catch(() => undefined)
    ])
    return { model, tokenizer }
  }

  async prepare (input: unknown, m: LoadedModel): Promise<{ value: EmbeddingRequest, rows: number }> {
    const obj = asObject(input, typeof input === 'string' || (Array.isArray(input) && typeof input[0] === 'string') ? 'text' : 'input_ids')
    rejectUnknownKeys(obj, KEYS)
    const pooling = optionalEnum(obj.pooling, 'pooling', POOLINGS) ?? 'mean'
    const normalize = optionalBool(obj.normalize, 'normalize') ?? true
    const limit = Math.min(maxPositions(m.config) ?? Infinity, m.settings.max_length ?? Infinity)
    const maxLength = Number.isFinite(limit) ? limit : undefined
    let ids: number[][]
    let masks: number[][]
    let single: boolean
    const text = obj.text ?? obj.texts
    if (text !== undefined) {
      if (obj.input_ids !== undefined) throw ValidationError.field('text', 'give either text or input_ids, not both')
      const texts = typeof text === 'string' ? [text] : text
      if (!Array.isArray(texts) || texts.length === 0 || texts.some(t => typeof t !== 'string')) {
        throw ValidationError.field('text', 'expected a string or a non-empty list of strings')
      }
      if (m.tokenizer === undefined) throw ValidationError.field('text', `model ${m.id} has no tokenizer: pass input_ids`)
      single = typeof text === 'string'
      // Text longer than the model allows is truncated (documented); raw ids are rejected instead.
      ids = texts.map(t => encode(m, t as string, maxLength))
      masks = ids.map(row => row.map(() => 1))
    } else {
      if (obj.input_ids === undefined) throw ValidationError.field('input_ids', 'is missing (or pass text)')
      ids = toIdRows(obj.input_ids, 'input_ids')
      single = !(Array.isArray(obj.input_ids) && (Array.isArray(obj.input_ids[0]) || ArrayBuffer.isView(obj.input_ids[0])))
      checkIdRows(ids, 'input_ids', { vocabSize: m.config.vocab_size, maxLength })
      masks = toMaskRows(obj.attention_mask, ids)
    }
    return { value: { ids, masks, single, pooling, normalize }, rows: ids.length }
  }

  async run (m: LoadedModel, items: EmbeddingRequest[]): Promise<Array<Record<string, unknown>>> {
    const rows = items.flatMap(it => it.ids.map((ids, r) => ({ ids, mask: it.masks[r] })))
    const width = Math.max(...rows.map(r => r.ids.length))
    const padId = BigInt(m.config.pad_token_id ?? 0)
    const ids = new BigInt64Array(rows.length * width).fill(padId)
    const mask = new BigInt64Array(rows.length * width)
    rows.forEach((row, r) => {
      for (let i = 0; i < row.ids.length; i++) {
        ids[r * width + i] = BigInt(row.ids[i])
        mask[r * width + i] = BigInt(row.mask[i])
      }
    })
    const dims = [rows.length, width]
    const out = await m.model({ input_ids: new Tensor('int64', ids, dims), attention_mask: new Tensor('int64', mask, dims) })
    const hidden = out.last_hidden_state ?? out.token_embeddings ?? Object.values(out)[0]
    const [, seq, size] = hidden.dims as number[]
    const data = hidden.data as Float32Array
    let r = 0
    return items.map(item => {
      const vectors = item.ids.map(() => {
        const row = r++
        const vec = pool(data, row, seq, size, rows[row].mask, item.pooling)
        return item.normalize ? vec.map(v => l2normalize(v)) : vec
      })
      const flat = vectors.map(v => item.pooling === 'none' ? v.map(a => Array.from(a)) : Array.from(v[0]))
      return { embedding: item.single ? flat[0] : flat }
    })
  }

  warmupInput (m: LoadedModel): unknown {
    return { input_ids: [Math.min(m.config.cls_token_id ?? 101, (m.config.vocab_size ?? 102) - 1)] }
  }
}

function encode (m: LoadedModel, text: string, maxLength: number | undefined): number[] {
  const enc = m.tokenizer(text, { truncation: maxLength !== undefined, max_length: maxLength, return_tensor: false })
  return enc.input_ids as number[]
}

/** Returns one vector (mean / cls) or one per token (none), as Float32Arrays. */
function pool (data: Float32Array, row: number, seq: number, size: number, mask: number[], pooling: Pooling): Float32Array[] {
  const base = row * seq * size
  if (pooling === 'cls') return [data.slice(base, base + size)]
  if (pooling === 'none') {
    return mask.map((_, t) => data.slice(base + t * size, base + (t + 1) * size))
  }
  const sum = new Float32Array(size)
  let count = 0
  for (let t = 0; t < mask.length; t++) {
    if (mask[t] === 0) continue
    count++
    const off = base + t * size
    for (let h = 0; h < size; h++) sum[h] += data[off + h]
  }
  for (let h = 0; h < size; h++) sum[h] /= count
  return [sum]
}

function l2normalize (v: Float32Array): Float32Array {
  let norm = 0
  for (const x of v) norm += x * x
  norm = Math.sqrt(norm)
  if (norm === 0) return v
  return v.map(x => x / norm)
}
