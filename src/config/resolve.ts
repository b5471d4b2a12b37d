/**
 * Turns what a user passed (plus environment variables and an optional config file) into one
 * validated, deep-frozen config. Precedence, highest first:
 *   1. the `resources` object passed to `new IpfsAccelerate()` (or CLI flags),
 *   2. `IPFS_ACCELERATE_*` environment variables,
 *   3. the JSON config file (`--config` on the CLI, or `IPFS_ACCELERATE_CONFIG`),
 *   4. the defaults in `defaults.ts`.
 */
import { readFileSync } from 'node:fs'
import type { z } from 'zod'
import { ValidationError, type ValidationIssue } from '../errors.js'
import { resourcesSchema, metadataSchema, type ResourcesInit, type ResolvedConfig, type Metadata } from './schema.js'
import { configFromEnv } from './env.js'

export interface ResolveOptions {
  /** Environment to read `IPFS_ACCELERATE_*` from; `{}` to ignore the environment. Default: `process.env`. */
  env?: Record<string, string | undefined>
  /** Path of a JSON config file. Default: `IPFS_ACCELERATE_CONFIG` from `env`, if set. */
  configFile?: string
}

export function issuesOf (error: z.ZodError, prefix = ''): ValidationIssue[] {
  return error.issues.map(issue => {
    const path = [prefix, ...issue.path.map(String)].filter(p => p !== '').join('.')
    let message = issue.message
    if (issue.code === 'unrecognized_keys') message = `unknown key(s) ${issue.keys.map(k => JSON.stringify(k)).join(', ')}`
    return { path: path === '' ? '(root)' : path, message }
  })
}

export function deepFreeze<T> (value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const v of Object.values(value)) deepFreeze(v)
  }
  return value
}

function isPlainObject (v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v)
}

/** Deep merge where `over` wins; arrays and scalars are replaced, not merged. */
export function mergeConfig (base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base }
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) continue
    out[k] = isPlainObject(v) && isPlainObject(out[k]) ? mergeConfig(out[k] as Record<string, unknown>, v) : v
  }
  return out
}

export function readConfigFile (file: string): Record<string, unknown> {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (cause) {
    throw new ValidationError(`config file ${file} cannot be read`, [{ path: 'config', message: (cause as Error).message }], { cause, context: { file } })
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (cause) {
    throw new ValidationError(`config file ${file} is not valid JSON`, [{ path: 'config', message: (cause as Error).message }], { cause, context: { file } })
  }
  if (!isPlainObject(parsed)) {
    throw new ValidationError(`config file ${file} must hold a JSON object`, [{ path: '(root)', message: 'expected an object' }], { context: { file } })
  }
  return parsed
}

/** Validates and freezes a config. Throws ValidationError listing every problem with its path. */
export function resolveConfig (init: ResourcesInit | undefined | null = {}, options: ResolveOptions = {}): ResolvedConfig {
  if (init !== undefined && init !== null && !isPlainObject(init)) {
    throw new ValidationError('resources must be an object', [{ path: '(root)', message: `expected an object, got ${Array.isArray(init) ? 'array' : typeof init}` }])
  }
  const env = options.env ?? process.env
  const file = options.configFile ?? env.IPFS_ACCELERATE_CONFIG
  let merged: Record<string, unknown> = {}
  if (file !== undefined && file !== '') merged = mergeConfig(merged, readConfigFile(file))
  merged = mergeConfig(merged, configFromEnv(env))
  merged = mergeConfig(merged, (init ?? {}) as Record<string, unknown>)
  const result = resourcesSchema.safeParse(merged)
  if (!result.success) {
    throw new ValidationError('invalid configuration', issuesOf(result.error), { cause: result.error })
  }
  return deepFreeze(result.data) as ResolvedConfig
}

export function resolveMetadata (metadata: unknown): Readonly<Metadata> {
  const result = metadataSchema.safeParse(metadata ?? {})
  if (!result.success) throw new ValidationError('invalid metadata', issuesOf(result.error, 'metadata'))
  return deepFreeze(result.data)
}
