/**
 * `IPFS_ACCELERATE_<SECTION>_<KEY>` environment variables onto the config schema, e.g.
 * `IPFS_ACCELERATE_HARDWARE_PREFER_CUDA=false`, `IPFS_ACCELERATE_IPFS_TIMEOUT=10`,
 * `IPFS_ACCELERATE_LOGGING_LEVEL=debug`. Only scalar keys of the sections below map; values are read as
 * JSON when they parse (numbers, booleans) and as strings otherwise. A variable that names no key is an
 * error, so a typo never goes unnoticed.
 */
import { ValidationError } from '../errors.js'
import { ipfsSchema, hardwareSchema, performanceSchema, loggingSchema, hubSchema } from './schema.js'

export const ENV_PREFIX = 'IPFS_ACCELERATE_'

/** Variables with the prefix that are not config keys. */
const RESERVED = new Set(['CONFIG', 'HOME', 'TEST'])

export const ENV_SECTIONS = {
  ipfs: Object.keys(ipfsSchema.shape),
  hardware: Object.keys(hardwareSchema.shape),
  performance: Object.keys(performanceSchema.shape),
  logging: Object.keys(loggingSchema.shape),
  hub: Object.keys(hubSchema.shape)
} as const

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
    const value = parseValue(raw)
    out[section][key] = key === 'log_file' || key === 'repo' || key === 'cache_dir' ? raw : value
  }
  return out
}
