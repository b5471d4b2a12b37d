/** Readers for optional per-request settings, each a ValidationError naming the field when wrong. */
import { ValidationError } from '../../errors.js'
import { describe } from './token-ids.js'

export function optionalInt (value: unknown, field: string, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (value === undefined || value === null) return undefined
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw ValidationError.field(field, `expected an integer in [${min}, ${max}], got ${describe(value)}`)
  }
  return value
}

export function optionalNumber (value: unknown, field: string, min: number, max: number, exclusiveMin = false): number | undefined {
  if (value === undefined || value === null) return undefined
  if (typeof value !== 'number' || !Number.isFinite(value) || value > max || value < min || (exclusiveMin && value === min)) {
    throw ValidationError.field(field, `expected a number in ${exclusiveMin ? '(' : '['}${min}, ${max}], got ${describe(value)}`)
  }
  return value
}

export function optionalBool (value: unknown, field: string): boolean | undefined {
  if (value === undefined || value === null) return undefined
  if (typeof value !== 'boolean') throw ValidationError.field(field, `expected true or false, got ${describe(value)}`)
  return value
}

export function optionalEnum<T extends string> (value: unknown, field: string, allowed: readonly T[]): T | undefined {
  if (value === undefined || value === null) return undefined
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    throw ValidationError.field(field, `expected one of ${allowed.join(', ')}, got ${describe(value)}`)
  }
  return value as T
}

/** The input as an object, with a bare value (string, array, bytes) put under `key`. */
export function asObject (input: unknown, key: string): Record<string, unknown> {
  if (input === null || input === undefined) throw ValidationError.field('input', 'is missing')
  if (typeof input === 'object' && !Array.isArray(input) && !ArrayBuffer.isView(input)) return input as Record<string, unknown>
  return { [key]: input }
}

/** Rejects keys the task does not know, so a typo (`input_id`) is not silently ignored. */
export function rejectUnknownKeys (input: Record<string, unknown>, allowed: readonly string[]): void {
  const unknown = Object.keys(input).filter(k => !allowed.includes(k))
  if (unknown.length > 0) {
    throw ValidationError.field(`input.${unknown[0]}`, `is not an input of this task (expected some of: ${allowed.join(', ')})`)
  }
}
