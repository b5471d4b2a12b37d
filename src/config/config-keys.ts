/**
 * Lists every config key the schema accepts, with its default, by walking the zod schema. The
 * documentation test compares this list with docs/configuration.md, so the two cannot drift apart.
 */
import { z } from 'zod'
import { resourcesSchema } from './schema.js'

export interface ConfigKey {
  /** Dotted path; `<id>` stands for a user-chosen record key (`models.<id>.precision`). */
  key: string
  /** The default as JSON, or undefined when the key has none. */
  default?: string
}

function walk (schema: z.ZodType, path: string, out: ConfigKey[], dflt?: unknown): void {
  if (schema instanceof z.ZodDefault) {
    const def = (schema.def as { defaultValue: unknown }).defaultValue
    walk(schema.unwrap() as z.ZodType, path, out, typeof def === 'function' ? (def as () => unknown)() : def)
    return
  }
  if (schema instanceof z.ZodOptional) {
    walk(schema.unwrap() as z.ZodType, path, out, dflt)
    return
  }
  if (schema instanceof z.ZodObject) {
    for (const [k, v] of Object.entries(schema.shape)) walk(v as z.ZodType, path === '' ? k : `${path}.${k}`, out)
    return
  }
  if (schema instanceof z.ZodRecord) {
    const value = schema.valueType as z.ZodType
    if (value instanceof z.ZodObject) walk(value, `${path}.<id>`, out)
    else out.push({ key: `${path}.<id>` })
    return
  }
  out.push({ key: path, ...(dflt === undefined ? {} : { default: JSON.stringify(dflt) }) })
}

export function configKeys (): ConfigKey[] {
  const out: ConfigKey[] = []
  walk(resourcesSchema, '', out)
  return out
}
