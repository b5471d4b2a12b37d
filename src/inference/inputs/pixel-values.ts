/**
 * Image inputs: `pixel_values` as nested arrays ([B,C,H,W] or [C,H,W]), as `{ data, dims }` with a
 * typed array, or an image (file path, http(s) URL, or encoded bytes) run through the model's own
 * image processor. Shapes are checked against the model's config and non-finite values are refused.
 */
import { RawImage, Tensor } from '@huggingface/transformers'
import { ValidationError } from '../../errors.js'
import { describe } from './token-ids.js'
import type { LoadedModel } from '../tasks/task-handler.js'

export interface PixelBatch {
  data: Float32Array
  /** [B, C, H, W] */
  dims: [number, number, number, number]
}

function flatten (value: unknown, field: string, dims: number[], out: number[], depth = 0): void {
  if (Array.isArray(value) || (ArrayBuffer.isView(value) && !(value instanceof DataView))) {
    const arr = value as ArrayLike<unknown>
    if (dims.length === depth) dims.push(arr.length)
    else if (dims[depth] !== arr.length) throw ValidationError.field(field, `is ragged: expected ${dims[depth]} entries at depth ${depth}, got ${arr.length}`)
    if (ArrayBuffer.isView(arr)) {
      for (let i = 0; i < arr.length; i++) out.push(Number(arr[i]))
      return
    }
    for (let i = 0; i < arr.length; i++) flatten(arr[i], field, dims, out, depth + 1)
    return
  }
  if (typeof value !== 'number') throw ValidationError.field(field, `expected numbers, got ${describe(value)}`)
  out.push(value)
}

/** Expected [C, H, W] for a model, from its config (vision_config for CLIP). */
export function expectedImageShape (m: LoadedModel): [number, number, number] | undefined {
  const c = m.config.vision_config ?? m.config
  const size = c.image_size
  if (typeof size !== 'number') return undefined
  return [c.num_channels ?? 3, size, size]
}

export function toPixelBatch (value: unknown, m: LoadedModel, field = 'pixel_values'): PixelBatch {
  let data: Float32Array
  let dims: number[]
  if (value !== null && typeof value === 'object' && !Array.isArray(value) && 'data' in value && 'dims' in value) {
    const v = value as { data: unknown, dims: unknown }
    if (!(v.data instanceof Float32Array) && !Array.isArray(v.data)) throw ValidationError.field(`${field}.data`, 'expected a Float32Array or an array of numbers')
    if (!Array.isArray(v.dims) || v.dims.some(d => !Number.isInteger(d) || d < 1)) throw ValidationError.field(`${field}.dims`, 'expected positive integer dimensions')
    data = Float32Array.from(v.data as ArrayLike<number>)
    dims = [...v.dims as number[]]
    const count = dims.reduce((a, b) => a * b, 1)
    if (count !== data.length) throw ValidationError.field(field, `dims ${JSON.stringify(dims)} need ${count} values, data has ${data.length}`)
  } else {
    const flat: number[] = []
    dims = []
    flatten(value, field, dims, flat)
    data = Float32Array.from(flat)
  }
  if (dims.length === 3) dims = [1, ...dims]
  if (dims.length !== 4) throw ValidationError.field(field, `expected shape [batch, channels, height, width] or [channels, height, width], got ${JSON.stringify(dims)}`)
  const expected = expectedImageShape(m)
  if (expected !== undefined && (dims[1] !== expected[0] || dims[2] !== expected[1] || dims[3] !== expected[2])) {
    throw ValidationError.field(field, `has shape ${JSON.stringify(dims)}; model ${m.id} expects [batch, ${expected.join(', ')}]`)
  }
  const bad = data.findIndex(v => !Number.isFinite(v))
  if (bad >= 0) throw ValidationError.field(`${field}`, `value at flat index ${bad} is ${data[bad]}; pixel values must be finite`)
  return { data, dims: dims as PixelBatch['dims'] }
}

/** Reads an image (path, URL, bytes) and runs the model's processor on it. */
export async function imageToPixelBatch (value: unknown, m: LoadedModel, field = 'image'): Promise<PixelBatch> {
  if (m.processor === undefined) throw ValidationError.field(field, `model ${m.id} has no image processor: pass pixel_values`)
  let image: RawImage
  try {
    if (typeof value === 'string') image = await RawImage.read(value)
    else if (value instanceof Uint8Array) image = await RawImage.fromBlob(new Blob([new Uint8Array(value)]))
    else throw ValidationError.field(field, `expected a file path, a URL or image bytes, got ${describe(value)}`)
  } catch (cause) {
    if (cause instanceof ValidationError) throw cause
    throw new ValidationError(`${field}: cannot read the image (${(cause as Error).message})`, [{ path: field, message: 'cannot be read as an image' }], { cause })
  }
  const processed = await m.processor(image)
  const t = processed.pixel_values as Tensor
  return { data: t.data as Float32Array, dims: t.dims as PixelBatch['dims'] }
}

export function concatPixelBatches (batches: PixelBatch[]): Tensor {
  const [, c, h, w] = batches[0].dims
  const total = batches.reduce((n, b) => n + b.dims[0], 0)
  const data = new Float32Array(total * c * h * w)
  let offset = 0
  for (const b of batches) {
    data.set(b.data, offset)
    offset += b.data.length
  }
  return new Tensor('float32', data, [total, c, h, w])
}
