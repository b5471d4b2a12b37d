/**
 * Image inputs: `pixel_values` as nested arrays ([B,C,H,W] or [C,H,W]), as `{ data, dims }` with a
 * typed array, or an image (file path, http(s) URL, or encoded bytes) run through the model's own
 * image processor. Shapes are checked against the model's config and non-finite values are refused.
 */
import { RawImage, Tensor } from '@huggingface/transformers'
import { ValidationError } from '../../errors.js'
import { describe } from './token-ids.js'
import { boundedBody, discardBody } from '../../content/bounded-body.js'
import { readLocalFile } from './local-file.js'
import type { LoadedModel } from '../tasks/task-handler.js'

export interface PixelBatch {
  data: Float32Array
  /** [B, C, H, W] */
  dims: [number, number, number, number]
}

type Nested = ArrayLike<unknown>

function isList (value: unknown): value is Nested {
  return Array.isArray(value) || (ArrayBuffer.isView(value) && !(value instanceof DataView))
}

/**
 * Flattens nested lists into `out`, which must be exactly a box of shape `dims` (read from the first
 * element at each depth). A number where a list belongs, or a list where a number belongs, is refused:
 * otherwise the data would be shorter than the shape says and, in a batch, shift the next request's rows.
 */
function flatten (value: unknown, field: string, dims: number[], out: number[], index: number[] = []): void {
  const depth = index.length
  const at = (): string => `${field}${index.map(i => `[${i}]`).join('')}`
  if (depth === dims.length) {
    if (typeof value !== 'number' && typeof value !== 'bigint') throw ValidationError.field(at(), `expected a number (shape ${JSON.stringify(dims)}), got ${describe(value)}`)
    out.push(Number(value))
    return
  }
  if (!isList(value)) throw ValidationError.field(at(), `expected a list of ${dims[depth]} (shape ${JSON.stringify(dims)}), got ${describe(value)}`)
  if (value.length !== dims[depth]) throw ValidationError.field(at(), `is ragged: expected ${dims[depth]} entries (shape ${JSON.stringify(dims)}), got ${value.length}`)
  for (let i = 0; i < value.length; i++) {
    index.push(i)
    flatten(value[i], field, dims, out, index)
    index.pop()
  }
}

/** The shape of nested lists, from the first element at each depth. */
function shapeOf (value: unknown): number[] {
  const dims: number[] = []
  let v = value
  while (isList(v)) {
    dims.push(v.length)
    if (v.length === 0) break
    v = v[0]
  }
  return dims
}

/**
 * Expected [C, H, W] for a model: from its config (vision_config for CLIP), else from the fixed dims
 * of the graph's `pixel_values` input, so that a wrong size is a ValidationError and not a failure
 * inside onnxruntime.
 */
export function expectedImageShape (m: LoadedModel): [number, number, number] | undefined {
  const c = m.config.vision_config ?? m.config
  const size = c.image_size
  if (typeof size === 'number') return [c.num_channels ?? 3, size, size]
  return graphImageShape(m)
}

/** [C, H, W] of the `pixel_values` input of any of the model's sessions, when all three are fixed numbers. */
function graphImageShape (m: LoadedModel): [number, number, number] | undefined {
  const sessions = Object.values((m.model as { sessions?: Record<string, unknown> } | undefined)?.sessions ?? {})
  for (const session of sessions) {
    const inputs = (session as { inputMetadata?: unknown })?.inputMetadata
    if (!Array.isArray(inputs)) continue
    const shape = (inputs as Array<{ name?: string, shape?: unknown[] }>).find(i => i.name === 'pixel_values')?.shape
    if (Array.isArray(shape) && shape.length === 4 && shape.slice(1).every(d => typeof d === 'number' && d > 0)) {
      return shape.slice(1) as [number, number, number]
    }
  }
  return undefined
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
    dims = shapeOf(value)
    if (dims.length === 0) throw ValidationError.field(field, `expected nested lists of numbers or { data, dims }, got ${describe(value)}`)
    if (dims.includes(0)) throw ValidationError.field(field, `has an empty dimension (shape ${JSON.stringify(dims)})`)
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

/**
 * Longest wait for an image URL, body included. fetch's own limits are 300 s per stage, and a server
 * that trickles bytes holds it forever, with the request (and its model) held all that time.
 */
export const IMAGE_FETCH_TIMEOUT_MS = 30_000

/**
 * Largest image file read (a path or a URL's body): far above any photo or scan a vision model takes,
 * and it keeps a URL that answers with gigabytes from filling the worker's memory.
 */
export const MAX_IMAGE_BYTES = 100 * 1024 * 1024

/** The bytes of an image file path (a regular file) or http(s) URL, at most `MAX_IMAGE_BYTES`. */
export async function readImageBytes (location: string, timeoutMs = IMAGE_FETCH_TIMEOUT_MS, maxBytes = MAX_IMAGE_BYTES): Promise<Uint8Array> {
  const tooLarge = (size: number): Error => new Error(`the image has more than ${maxBytes} bytes (${size} at least)`)
  if (!/^https?:\/\//i.test(location)) return await readLocalFile(location, maxBytes, tooLarge)
  try {
    const response = await fetch(location, { signal: AbortSignal.timeout(timeoutMs) })
    if (!response.ok) {
      await discardBody(response)
      throw new Error(`HTTP ${response.status} ${response.statusText}`)
    }
    return await boundedBody(response, maxBytes, location, tooLarge)
  } catch (cause) {
    if ((cause as Error).name !== 'TimeoutError') throw cause
    throw new Error(`no complete response within ${timeoutMs / 1000} s`, { cause })
  }
}

/** Reads an image (path, URL, bytes) and runs the model's processor on it. */
export async function imageToPixelBatch (value: unknown, m: LoadedModel, field = 'image'): Promise<PixelBatch> {
  if (m.processor === undefined) throw ValidationError.field(field, `model ${m.id} has no image processor: pass pixel_values`)
  if (typeof value !== 'string' && !(value instanceof Uint8Array)) throw ValidationError.field(field, `expected a file path, a URL or image bytes, got ${describe(value)}`)
  let image: RawImage
  try {
    const bytes = typeof value === 'string' ? await readImageBytes(value) : value
    image = await RawImage.fromBlob(new Blob([new Uint8Array(bytes)]))
  } catch (cause) {
    throw new ValidationError(`${field}: cannot read the image (${(cause as Error).message})`, [{ path: field, message: 'cannot be read as an image' }], { cause })
  }
  const processed = await m.processor(image)
  const t = processed.pixel_values as Tensor
  return { data: t.data as Float32Array, dims: t.dims as PixelBatch['dims'] }
}

/** The request's image: `pixel_values`, or `image` run through the model's processor (one of the two). */
export async function readPixels (obj: Record<string, unknown>, m: LoadedModel): Promise<PixelBatch> {
  if (obj.pixel_values !== undefined && obj.image !== undefined) throw ValidationError.field('image', 'give either pixel_values or image, not both')
  if (obj.pixel_values !== undefined) return toPixelBatch(obj.pixel_values, m)
  if (obj.image !== undefined) return await imageToPixelBatch(obj.image, m)
  throw ValidationError.field('pixel_values', 'is missing (or pass image)')
}
