/**
 * `IPFS_ACCELERATE_<SECTION>_<KEY>` environment variables onto the config schema, e.g.
 * `IPFS_ACCELERATE_HARDWARE_PREFER_CUDA=false`, `IPFS_ACCELERATE_IPFS_TIMEOUT=10`,
 * `IPFS_ACCELERATE_LOGGING_LEVEL=debug`. Only scalar keys of the sections below map; values are read as
 * JSON when they parse (numbers, booleans) and as strings otherwise; a yes/no key also takes `TRUE`,
 * `False`, `1` and `0`, as shells and .env files write them. A variable that names no key is an error,
 * so a typo never goes unnoticed.
 */
import { ValidationError } from '../errors.js'
import { ipfsSchema, hardwareSchema, performanceSchema, loggingSchema, hubSchema } from './schema.js'

export const ENV_PREFIX = 'IPFS_ACCELERATE_'

/** Variables with the prefix that are not config keys. */
const RESERVED = new Set(['CONFIG', 'HOME', 'TEST'])

const SCHEMAS = { ipfs: ipfsSchema, hardware: hardwareSchema, performance: performanceSchema, logging: loggingSchema, hub: hubSchema } as const

export const ENV_SECTIONS = Object.fromEntries(Object.entries(SCHEMAS).map(([section, schema]) => [section, Object.keys(schema.shape)])) as
  { readonly [S in keyof typeof SCHEMAS]: string[] }

/** Whether `section.key` takes a boolean (and nothing else). */
function isBooleanKey (section: string, key: string): boolean {
  const field = (SCHEMAS[section as keyof typeof SCHEMAS].shape as Record<string, { safeParse: (v: unknown) => { success: boolean } }>)[key]
  return field.safeParse(true).success && !field.safeParse('text').success
}

const BOOLEAN_WORDS = new Map([['true', true], ['false', false], ['1', true], ['0', false]])

/** The environment variable name of a config key (`hardware.prefer_cuda` -> `IPFS_ACCELERATE_HARDWARE_PREFER_CUDA`). */
export function envName (section: string, key: string): string {
  return `${ENV_PREFIX}${section.toUpperCase()}_${key.toUpperCase()}`
}

function parseValue (raw: string): unknown {
  try {
    return JSON.parse(raw)
  } catch {
    return raw
  }
}

export function configFromEnv (env: Record<string, string | undefined>): Record<string, Record<string, unknown>> {
  const out: Record<string, Record<string, unknown>> = {}
  const lookup = new Map<string, [string, string]>()
  for (const [section, keys] of Object.entries(ENV_SECTIONS)) {
    for (const key of keys) lookup.set(envName(section, key), [section, key])
  }
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith(ENV_PREFIX) || raw === undefined) continue
    if (RESERVED.has(name.slice(ENV_PREFIX.length))) continue
    const target = lookup.get(name)
    if (target === undefined) {
      throw ValidationError.field(name, 'names no config key (see docs/configuration.md)')
    }
    const [section, key] = target
    out[section] ??= {}
    // Strings that look like numbers stay strings for string-typed keys (e.g. a log file named "1").
    const word = BOOLEAN_WORDS.get(raw.trim().toLowerCase())
    if (word !== undefined && isBooleanKey(section, key)) out[section][key] = word
    else out[section][key] = key === 'log_file' || key === 'repo' || key === 'cache_dir' ? raw : parseValue(raw)
  }
  return out
}
