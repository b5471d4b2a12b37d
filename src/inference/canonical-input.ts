/**
 * What an inference input may be, and its canonical form.
 *
 * Inputs cross a structured-clone boundary to the inference worker and key the result cache, so they
 * must be plain data: null, booleans, numbers, bigints, strings, arrays, plain objects, typed arrays
 * and ArrayBuffers. `checkPlainInput` rejects anything else (functions, symbols, class instances,
 * proxies, arrays with holes, circular references, absurd nesting) with a `ValidationError` naming where
 * it sits, before anything is cached or sent.
 *
 * `canonicalJson` turns plain data into a string that is equal for two inputs only when they are the
 * same data: object keys are sorted, and every kind of value is written distinctly (the bigint 101n,
 * the number 101 and the string "101" differ; a key holding undefined is kept; a typed array names its
 * type). It keys the result cache, and a cache hit skips the worker's validation, so two inputs the
 * worker could treat differently must never share a key.
 */
import { types } from 'node:util'
import { ValidationError } from '../errors.js'

/** Deeper than any input a task takes (pixel_values are 4 levels): guards against stack overflows. */
const MAX_DEPTH = 32

function at (path: string, key: string | number): string {
  return typeof key === 'number' ? `${path}[${key}]` : `${path}.${key}`
}

function isPlainObject (value: object): boolean {
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

/** Throws a ValidationError naming the first value in `input` that is not plain data. */
export function checkPlainInput (input: unknown, field = 'input'): void {
  const ancestors = new Set<object>()
  const visit = (value: unknown, path: string, depth: number): void => {
    if (value === null || value === undefined) return
    switch (typeof value) {
      case 'boolean': case 'number': case 'bigint': case 'string': return
      case 'function': throw ValidationError.field(path, 'is a function; inputs must be plain data (numbers, strings, arrays, objects, typed arrays)')
      case 'symbol': throw ValidationError.field(path, 'is a symbol; inputs must be plain data (numbers, strings, arrays, objects, typed arrays)')
    }
    const obj = value as object
    // First: every other check below would run the proxy's traps (a revoked one throws a TypeError), and
    // structured clone refuses proxies (a DataCloneError from the worker boundary).
    if (types.isProxy(obj)) throw ValidationError.field(path, 'is a Proxy; inputs must be plain data (numbers, strings, arrays, objects, typed arrays)')
    if (ArrayBuffer.isView(obj) || obj instanceof ArrayBuffer) return
    if (depth >= MAX_DEPTH) throw ValidationError.field(path, `is nested more than ${MAX_DEPTH} levels deep`)
    if (ancestors.has(obj)) throw ValidationError.field(path, 'refers back to an enclosing value (circular input)')
    const isArray = Array.isArray(obj)
    if (!isArray && !isPlainObject(obj)) {
      throw ValidationError.field(path, `is a ${obj.constructor?.name ?? 'non-plain object'}; inputs must be plain data (numbers, strings, arrays, objects, typed arrays)`)
    }
    ancestors.add(obj)
    if (isArray) {
      const list = obj as unknown[]
      for (let i = 0; i < list.length; i++) {
        const item = list[i]
        // Lists of numbers (the common case: ids, pixels, samples) need no call per element.
        if (typeof item === 'number') continue
        // A hole reads as undefined but reaches the tasks as nothing they can convert (BigInt(undefined),
        // NaN dims). Stopping at the first one also bounds this walk by the elements the caller really
        // stored (the first hole follows them), so a sparse array's length (up to 2^32 - 1) is never
        // walked and no cap on lengths is needed.
        if (item === undefined && !Object.hasOwn(list, i)) throw ValidationError.field(at(path, i), 'is a hole (a sparse array); every element must be given')
        visit(item, at(path, i), depth + 1)
      }
    } else {
      for (const key of Object.keys(obj)) visit((obj as Record<string, unknown>)[key], at(path, key), depth + 1)
    }
    ancestors.delete(obj)
  }
  visit(input, field, 0)
}

function numberText (n: number): string {
  // JSON writes NaN and ±Infinity as null; these bare words cannot collide with anything else here.
  return Number.isFinite(n) ? JSON.stringify(n) : String(n)
}

/** The canonical string of plain data (see the module comment); call `checkPlainInput` first. */
export function canonicalJson (value: unknown): string {
  if (value === undefined) return 'undefined'
  if (value === null) return 'null'
  switch (typeof value) {
    case 'boolean': return value ? 'true' : 'false'
    case 'number': return numberText(value)
    case 'bigint': return `${value}n`
    case 'string': return JSON.stringify(value)
  }
  if (value instanceof ArrayBuffer) return `ArrayBuffer(${Buffer.from(value).toString('base64')})`
  if (ArrayBuffer.isView(value)) {
    if (value instanceof Uint8Array) return `Uint8Array(${Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64')})`
    const items = Array.from(value as unknown as ArrayLike<number | bigint>, v => typeof v === 'bigint' ? `${v}n` : numberText(v))
    return `${value.constructor.name}[${items.join(',')}]`
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`
  const obj = value as Record<string, unknown>
  return `{${Object.keys(obj).sort().map(key => `${JSON.stringify(key)}:${canonicalJson(obj[key])}`).join(',')}}`
}
