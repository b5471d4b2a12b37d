/** Validation of token id inputs (`input_ids`, `attention_mask`, `token_type_ids`) before any model sees them. */
import { ValidationError } from '../../errors.js'

/** A list of id rows: `[1, 2, 3]` is one row, `[[1, 2], [3]]` two. */
export function toIdRows (value: unknown, field: string): number[][] {
  if (ArrayBuffer.isView(value) && !(value instanceof DataView)) value = Array.from(value as unknown as ArrayLike<number | bigint>, Number)
  if (!Array.isArray(value)) throw ValidationError.field(field, `expected an array of token ids, got ${describe(value)}`)
  if (value.length === 0) throw ValidationError.field(field, 'is empty')
  const nested = Array.isArray(value[0]) || ArrayBuffer.isView(value[0])
  const rows = (nested ? value : [value]) as unknown[]
  return rows.map((row, r) => {
    const rowField = nested ? `${field}[${r}]` : field
    const arr = ArrayBuffer.isView(row) ? Array.from(row as unknown as ArrayLike<number | bigint>, Number) : row
    if (!Array.isArray(arr)) throw ValidationError.field(rowField, `expected an array of token ids, got ${describe(row)}`)
    if (arr.length === 0) throw ValidationError.field(rowField, 'is empty')
    return arr.map((id, i) => {
      const n = typeof id === 'bigint' ? Number(id) : id
      if (typeof n !== 'number' || !Number.isInteger(n)) throw ValidationError.field(`${rowField}[${i}]`, `token id must be an integer, got ${describe(id)}`)
      if (n < 0) throw ValidationError.field(`${rowField}[${i}]`, `token id must not be negative, got ${n}`)
      return n
    })
  })
}

/** Checks ids against the vocabulary and the position table. */
export function checkIdRows (rows: number[][], field: string, limits: { vocabSize?: number, maxLength?: number }): void {
  rows.forEach((row, r) => {
    const rowField = rows.length > 1 ? `${field}[${r}]` : field
    if (limits.maxLength !== undefined && row.length > limits.maxLength) {
      throw ValidationError.field(rowField, `has ${row.length} tokens; the model takes at most ${limits.maxLength}`)
    }
    if (limits.vocabSize !== undefined) {
      const bad = row.findIndex(id => id >= limits.vocabSize!)
      if (bad >= 0) throw ValidationError.field(`${rowField}[${bad}]`, `token id ${row[bad]} is outside the vocabulary (size ${limits.vocabSize})`)
    }
  })
}

/** An attention mask matching `rows`, or all ones when none was given. */
export function toMaskRows (value: unknown, rows: number[][], field = 'attention_mask'): number[][] {
  if (value === undefined || value === null) return rows.map(row => row.map(() => 1))
  const masks = toRowsLike(value, rows, field)
  masks.forEach((mask, r) => {
    const rowField = masks.length > 1 ? `${field}[${r}]` : field
    if (mask.some(v => v !== 0 && v !== 1)) throw ValidationError.field(rowField, 'must hold only 0 and 1')
    if (!mask.includes(1)) throw ValidationError.field(rowField, 'masks every token')
  })
  return masks
}

/** Token type (segment) ids matching `rows`, each in [0, typeVocabSize) when the size is known. */
export function toTokenTypeRows (value: unknown, rows: number[][], typeVocabSize: unknown, field = 'token_type_ids'): number[][] {
  const types = toRowsLike(value, rows, field)
  if (typeof typeVocabSize === 'number') {
    types.forEach((row, r) => {
      const bad = row.findIndex(t => t >= typeVocabSize)
      if (bad >= 0) throw ValidationError.field(`${types.length > 1 ? `${field}[${r}]` : field}[${bad}]`, `token type ${row[bad]} is outside [0, ${typeVocabSize}) (type_vocab_size)`)
    })
  }
  return types
}

/** Non-negative integer rows with exactly the shape of `rows` (the input_ids). */
function toRowsLike (value: unknown, rows: number[][], field: string): number[][] {
  const out = toIdRows(value, field)
  if (out.length !== rows.length) throw ValidationError.field(field, `has ${out.length} rows but input_ids has ${rows.length}`)
  out.forEach((row, r) => {
    const rowField = out.length > 1 ? `${field}[${r}]` : field
    if (row.length !== rows[r].length) throw ValidationError.field(rowField, `has length ${row.length} but input_ids has ${rows[r].length}`)
  })
  return out
}

export function describe (value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'array'
  // JSON.stringify writes NaN and ±Infinity as null.
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value)
  if (typeof value === 'bigint') return `bigint ${value}` // JSON.stringify throws on a BigInt
  return typeof value === 'object' ? (value.constructor?.name ?? 'object') : `${typeof value} ${JSON.stringify(value)}`
}

/** Largest position the model's position table covers, from its config. */
export function maxPositions (config: Record<string, any>): number | undefined { // eslint-disable-line @typescript-eslint/no-explicit-any
  const v = config.max_position_embeddings ?? config.n_positions ?? config.max_target_positions ?? config.text_config?.max_position_embeddings
  return typeof v === 'number' ? v : undefined
}
