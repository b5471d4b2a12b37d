/**
 * `text_embedding`: token ids or text in, one vector per sequence out. Pooling (mean over the
 * attention mask by default, or the first token) and L2 normalisation (on by default) are per
 * request. Rows from concurrent requests are padded into one batch (or into a few, grouped by length,
 * when padding to the longest row would cost more than another model call); masked positions never
 * change a row's result, so a text embeds the same alone and inside a padded batch. No model call
 * holds more than the model's batch size in rows (`RunContext.maxBatch`), however many texts one
 * request carries. Vectors go back to the caller as packed float32 lists (see `FloatList` in
 * protocol.ts).
 */
import { AutoModel, AutoTokenizer, Tensor } from '@huggingface/transformers'
import { ValidationError } from '../../errors.js'
import { toIdRows, toMaskRows, toTokenTypeRows, checkIdRows, maxPositions } from '../inputs/token-ids.js'
import { asObject, optionalBool, optionalEnum, rejectUnknownKeys } from '../inputs/options.js'
import { loadParts, type TaskHandler, type LoadedModel, type RunContext } from './task-handler.js'
import { floatList, type FloatList } from '../protocol.js'

export const POOLINGS = ['mean', 'cls', 'none'] as const
type Pooling = typeof POOLINGS[number]

interface EmbeddingRequest {
  ids: number[][]
  masks: number[][]
  /** Segment ids per row (BERT's sentence A / B); undefined means all zeros. */
  types?: number[][]
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
    const [model, tokenizer] = await loadParts([
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
    let types: number[][] | undefined
    let single: boolean
    if (obj.text !== undefined && obj.texts !== undefined) throw ValidationError.field('texts', 'give either text or texts, not both')
    const text = obj.text ?? obj.texts
    if (text !== undefined) {
      if (obj.input_ids !== undefined) throw ValidationError.field('text', 'give either text or input_ids, not both')
      // The tokenizer makes the mask and (single-segment) token types itself; given ones could not match.
      for (const key of ['attention_mask', 'token_type_ids']) {
        if (obj[key] !== undefined) throw ValidationError.field(key, 'goes with input_ids, not text')
      }
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
      if (obj.token_type_ids !== undefined && obj.token_type_ids !== null) {
        const inputNames = m.model?.sessions?.model?.inputNames
        if (Array.isArray(inputNames) && !inputNames.includes('token_type_ids')) {
          throw ValidationError.field('token_type_ids', `model ${m.id} takes no token_type_ids`)
        }
        types = toTokenTypeRows(obj.token_type_ids, ids, m.config.type_vocab_size)
      }
    }
    return { value: { ids, masks, types, single, pooling, normalize }, rows: ids.length }
  }

  async run (m: LoadedModel, items: EmbeddingRequest[], ctx: RunContext = {}): Promise<Array<Record<string, unknown>>> {
    // Every row of every request, in order; `pooled[row]` receives that row's vector(s).
    const rows: Rows = { ids: [], masks: [], types: [], poolings: [] }
    for (const item of items) {
      for (let r = 0; r < item.ids.length; r++) {
        rows.ids.push(item.ids[r])
        rows.masks.push(item.masks[r])
        rows.types.push(item.types?.[r])
        rows.poolings.push(item.pooling)
      }
    }
    const pooled: Float32Array[][] = new Array(rows.ids.length)
    for (const call of callPlan(rows.ids.map(row => row.length), callOverheadTokens(m), ctx.maxBatch ?? Infinity)) {
      await forwardGroup(m, call, rows, pooled)
    }
    let row = 0
    return items.map(item => {
      const flat: unknown[] = []
      for (let r = 0; r < item.ids.length; r++) {
        const vecs = pooled[row++]
        flat.push(item.pooling === 'none' ? vecs.map(v => toList(v, item.normalize)) : toList(vecs[0], item.normalize))
      }
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

/** Every row of a run, from all its requests, in order. */
interface Rows {
  ids: number[][]
  masks: number[][]
  /** undefined: all zeros. */
  types: Array<number[] | undefined>
  poolings: Pooling[]
}

/**
 * One model call for the rows `group` (indices into `rows`), padded to the longest of them; pools each
 * row's hidden states into `pooled`.
 */
async function forwardGroup (m: LoadedModel, group: number[], rows: Rows, pooled: Float32Array[][]): Promise<void> {
  const { ids, masks, types, poolings } = rows
  let width = 0
  for (const r of group) if (ids[r].length > width) width = ids[r].length
  const n = group.length * width
  const padId = BigInt(m.config.pad_token_id ?? 0)
  const idData = new BigInt64Array(n)
  if (padId !== 0n) idData.fill(padId)
  const maskData = new BigInt64Array(n)
  // Token types stay 0 for padding and for rows that gave none (what transformers.js feeds by default).
  const typeData = new BigInt64Array(n)
  let anyTypes = false
  for (let g = 0; g < group.length; g++) {
    const rowIds = ids[group[g]]
    const rowMask = masks[group[g]]
    const rowTypes = types[group[g]]
    const base = g * width
    for (let i = 0; i < rowIds.length; i++) {
      idData[base + i] = BigInt(rowIds[i])
      maskData[base + i] = rowMask[i] === 0 ? 0n : 1n
    }
    if (rowTypes !== undefined) {
      anyTypes = true
      for (let i = 0; i < rowTypes.length; i++) typeData[base + i] = BigInt(rowTypes[i])
    }
  }
  const dims = [group.length, width]
  const hidden = await forward(m, idData, maskData, anyTypes ? typeData : undefined, dims)
  const [, seq, size] = hidden.dims
  for (let g = 0; g < group.length; g++) {
    const r = group[g]
    pooled[r] = pool(hidden.data, g, seq, size, masks[r], poolings[r])
  }
}

const ENCODER_INPUTS = new Set(['input_ids', 'attention_mask', 'token_type_ids'])

/**
 * The model's hidden states for a batch of ids. A plain encoder (inputs: ids, mask, token types) is
 * run on its onnxruntime session directly, with exactly the feeds transformers.js would build (zero
 * token_type_ids unless given); anything else goes through transformers.js's model call.
 */
async function forward (m: LoadedModel, idData: BigInt64Array, maskData: BigInt64Array, typeData: BigInt64Array | undefined, dims: number[]): Promise<{ data: Float32Array, dims: number[] }> {
  const session = m.model.sessions?.model
  if (session !== undefined && typeof session.run === 'function' && Array.isArray(session.inputNames) && (session.inputNames as string[]).every(name => ENCODER_INPUTS.has(name))) {
    const feeds: Record<string, unknown> = {}
    for (const name of session.inputNames as string[]) {
      const data = name === 'input_ids' ? idData : name === 'attention_mask' ? maskData : typeData ?? new BigInt64Array(idData.length)
      feeds[name] = new Tensor('int64', data, dims).ort_tensor
    }
    const out = await session.run(feeds)
    const hidden = out.last_hidden_state ?? out.token_embeddings ?? out[session.outputNames[0]]
    return { data: hidden.data as Float32Array, dims: hidden.dims as number[] }
  }
  const out = await m.model({
    input_ids: new Tensor('int64', idData, dims),
    attention_mask: new Tensor('int64', maskData, dims),
    ...(typeData !== undefined ? { token_type_ids: new Tensor('int64', typeData, dims) } : {})
  })
  const hidden = out.last_hidden_state ?? out.token_embeddings ?? Object.values(out)[0]
  return { data: hidden.data as Float32Array, dims: hidden.dims as number[] }
}

/**
 * The cost of one more model call, in padded tokens: onnxruntime's fixed work per call (about the
 * time a BERT of hidden size 256 and 4 layers spends on 50 tokens, measured on 2 cores) over the
 * model's work per token (multiply-adds of its attention projections and feed-forward layers). Small
 * models never split a batch (a call costs more than any padding), large ones split readily.
 */
function callOverheadTokens (m: LoadedModel): number {
  const c = m.config
  const hidden = typeof c.hidden_size === 'number' ? c.hidden_size : typeof c.dim === 'number' ? c.dim : undefined
  const layers = typeof c.num_hidden_layers === 'number' ? c.num_hidden_layers : typeof c.n_layers === 'number' ? c.n_layers : undefined
  if (hidden === undefined || layers === undefined) return Infinity
  const ffn = typeof c.intermediate_size === 'number' ? c.intermediate_size : typeof c.hidden_dim === 'number' ? c.hidden_dim : 4 * hidden
  const perToken = layers * (4 * hidden * hidden + 2 * hidden * ffn)
  return Math.max(MIN_CALL_OVERHEAD_TOKENS, CALL_OVERHEAD_MACS / perToken)
}

/** onnxruntime's per-call overhead in multiply-adds (50 tokens of the 256/4 BERT, 3.1M MACs each). */
const CALL_OVERHEAD_MACS = 160e6
/** Never split a batch into calls smaller than this many tokens' worth of saving. */
const MIN_CALL_OVERHEAD_TOKENS = 32

/**
 * Splits rows into groups of similar length, minimising the estimated cost: per group, rows x its
 * longest row (the padded tokens the model computes), plus `overhead` tokens per model call. Rows are
 * sorted by length and cut into consecutive runs (optimal cuts by dynamic programming). Returns the
 * row indices of each group; one group holding every row in order when nothing is gained.
 */
export function lengthGroups (lengths: number[], overhead: number): number[][] {
  const n = lengths.length
  let min = Infinity
  let max = 0
  for (const len of lengths) {
    if (len < min) min = len
    if (len > max) max = len
  }
  const all = lengths.map((_, i) => i)
  // Splitting saves at most n x (max - min) padded tokens and costs at least one more call.
  if (n < 2 || min === max || !(overhead < n * (max - min))) return [all]
  const order = all.slice().sort((a, b) => lengths[a] - lengths[b] || a - b)
  // Cuts fall only between rows of different lengths (rows of one length are best in one group), so
  // the work is quadratic in the distinct lengths (at most the position table), not in the rows.
  // ends[k]: where the k-th run of equal lengths ends in `order` (ends[0] = 0).
  const ends = [0]
  for (let k = 1; k <= n; k++) if (k === n || lengths[order[k]] !== lengths[order[k - 1]]) ends.push(k)
  // best[j]: cheapest cost of the rows before ends[j]; cut[j]: the run where its last group starts.
  const best = new Float64Array(ends.length)
  const cut = new Int32Array(ends.length)
  for (let j = 1; j < ends.length; j++) {
    best[j] = Infinity
    const longest = lengths[order[ends[j] - 1]]
    for (let i = 0; i < j; i++) {
      const cost = best[i] + (ends[j] - ends[i]) * longest + overhead
      if (cost < best[j]) {
        best[j] = cost
        cut[j] = i
      }
    }
  }
  if (best[ends.length - 1] >= n * max + overhead) return [all]
  const groups: number[][] = []
  for (let j = ends.length - 1; j > 0; j = cut[j]) groups.unshift(order.slice(ends[cut[j]], ends[j]))
  return groups
}

/**
 * The model calls for rows of these lengths: the length groups (see lengthGroups), each cut into
 * consecutive calls of at most `maxRows` rows, so that one request carrying thousands of texts never
 * becomes one huge call. A group that must be cut is first sorted by length (fewer padded tokens for
 * the same number of calls). Returns the row indices of each call; every row is in exactly one.
 */
export function callPlan (lengths: number[], overhead: number, maxRows: number): number[][] {
  const step = Math.max(1, Math.floor(maxRows))
  const calls: number[][] = []
  for (const group of lengthGroups(lengths, overhead)) {
    if (group.length <= step) {
      calls.push(group)
      continue
    }
    const sorted = group.slice().sort((a, b) => lengths[a] - lengths[b] || a - b)
    for (let i = 0; i < sorted.length; i += step) calls.push(sorted.slice(i, i + step))
  }
  return calls
}

/** Returns one vector (mean / cls) or one per token (none), as Float32Arrays. */
function pool (data: Float32Array, row: number, seq: number, size: number, mask: number[], pooling: Pooling): Float32Array[] {
  const base = row * seq * size
  if (pooling === 'cls') return [data.slice(base, base + size)]
  if (pooling === 'none') {
    return mask.map((_, t) => data.slice(base + t * size, base + (t + 1) * size))
  }
  // Float32 sums in token order (the values transformers.js's mean pooling gives), four lanes per step.
  const sum = new Float32Array(size)
  const wide = size - (size % 4)
  let count = 0
  for (let t = 0; t < mask.length; t++) {
    if (mask[t] === 0) continue
    count++
    const off = base + t * size
    let h = 0
    for (; h < wide; h += 4) {
      sum[h] += data[off + h]
      sum[h + 1] += data[off + h + 1]
      sum[h + 2] += data[off + h + 2]
      sum[h + 3] += data[off + h + 3]
    }
    for (; h < size; h++) sum[h] += data[off + h]
  }
  for (let h = 0; h < size; h++) sum[h] /= count
  return [sum]
}

/**
 * The vector, L2-normalised in place when asked (the same float32 values `Float32Array.map` gave),
 * packed for the trip to the caller: the main thread unpacks it into a plain list of numbers.
 */
function toList (v: Float32Array, normalize: boolean): FloatList {
  if (normalize) {
    let norm = 0
    for (let h = 0; h < v.length; h++) norm += v[h] * v[h]
    norm = Math.sqrt(norm)
    if (norm !== 0) for (let h = 0; h < v.length; h++) v[h] = v[h] / norm
  }
  return floatList(v)
}
