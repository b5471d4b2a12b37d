/**
 * Turns what a user passed (plus environment variables and an optional config file) into one
 * validated, deep-frozen config. Precedence, highest first:
 *   1. the `resources` object passed to `new IpfsAccelerate()` (or CLI flags),
 *   2. `IPFS_ACCELERATE_*` environment variables,
 *   3. the JSON config file (`--config` on the CLI, or `IPFS_ACCELERATE_CONFIG`),
 *   4. the defaults in `defaults.ts`.
 */
import { readFileSync, statSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import type { z } from 'zod'
import { ValidationError, type ValidationIssue } from '../errors.js'
import { resourcesSchema, metadataSchema, type ResourcesInit, type ResolvedConfig, type Metadata } from './schema.js'
import { configFromEnv, envName } from './env.js'
import { rebaseFilePaths } from './file-paths.js'
import { checkModelEntry } from '../models/model-reference.js'

export interface ResolveOptions {
  /** Environment to read `IPFS_ACCELERATE_*` from; `{}` to ignore the environment. Default: `process.env`. */
  env?: Record<string, string | undefined>
  /** Path of a JSON config file. Default: `IPFS_ACCELERATE_CONFIG` from `env`, if set. */
  configFile?: string
}

export function issuesOf (error: z.ZodError, prefix = ''): ValidationIssue[] {
  return error.issues.map(issue => ({ path: dottedPath([prefix, ...issue.path.map(String)]), message: issueMessage(issue) }))
}

function dottedPath (parts: readonly string[]): string {
  const path = parts.filter(p => p !== '').join('.')
  return path === '' ? '(root)' : path
}

function issueMessage (issue: z.core.$ZodIssue): string {
  return issue.code === 'unrecognized_keys' ? `unknown key(s) ${issue.keys.map(k => JSON.stringify(k)).join(', ')}` : issue.message
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

/** The largest config file read (a config is a few KiB; anything bigger is a wrong file). */
const MAX_CONFIG_FILE_BYTES = 1024 * 1024

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
    // Only a regular file of a sane size is read: /dev/zero or a FIFO would be read (or waited on) for ever.
    const info = statSync(file)
    if (!info.isFile()) throw new Error('it is not a regular file')
    if (info.size > MAX_CONFIG_FILE_BYTES) throw new Error(`it holds ${info.size} bytes; a config file is at most ${MAX_CONFIG_FILE_BYTES}`)
    text = readFileSync(file, 'utf8')
  } catch (cause) {
    throw new ValidationError(`config file ${file} cannot be read: ${(cause as Error).message}`, [{ path: 'config', message: (cause as Error).message }], { cause, context: { file } })
  }
  let parsed: unknown
  try {
    // Editors on Windows save UTF-8 with a byte-order mark, which JSON.parse refuses.
    parsed = JSON.parse(text.replace(/^\uFEFF/, ''))
  } catch (cause) {
    throw new ValidationError(`config file ${file} is not valid JSON`, [{ path: 'config', message: (cause as Error).message }], { cause, context: { file } })
  }
  if (!isPlainObject(parsed)) {
    throw new ValidationError(`config file ${file} must hold a JSON object`, [{ path: '(root)', message: 'expected an object' }], { context: { file } })
  }
  // Editors validate JSON files against the schema named here; it is not a setting.
  const { $schema: _schema, ...config } = parsed
  return config
}

/** Keys that would reach an object's prototype when merged; never config keys. */
const RESERVED_KEYS = new Set(['__proto__', 'constructor', 'prototype'])

/** Throws ValidationError naming the path of the first `__proto__`, `constructor` or `prototype` key. */
function rejectReservedKeys (value: unknown, path: string[], where: string, file?: string): void {
  if (value === null || typeof value !== 'object') return
  for (const key of Object.keys(value)) {
    const at = [...path, key]
    if (RESERVED_KEYS.has(key)) {
      throw new ValidationError(`invalid configuration${where}: ${dottedPath(at)}: ${JSON.stringify(key)} is not allowed as a key`,
        [{ path: dottedPath(at), message: `${JSON.stringify(key)} is not allowed as a key` }], { context: file === undefined ? {} : { file } })
    }
    rejectReservedKeys((value as Record<string, unknown>)[key], at, where, file)
  }
}

/** Where a value came from: a variable names itself, a file its path; the resources object needs no name. */
type Origin = { kind: 'env', name: string } | { kind: 'file', file: string } | { kind: 'resources' }

interface Layers {
  init: Record<string, unknown>
  env: Record<string, unknown>
  file: Record<string, unknown>
  fileName?: string
}

function holds (values: unknown, path: readonly string[]): boolean {
  let v = values
  for (const k of path) {
    if (!isPlainObject(v) || !Object.hasOwn(v, k) || v[k] === undefined) return false
    v = v[k]
  }
  return path.length > 0
}

/** The layer a problem at `path` comes from: the highest-precedence one that set the longest prefix of it. */
function originOf (layers: Layers, path: readonly string[]): Origin | undefined {
  for (let n = path.length; n > 0; n--) {
    const prefix = path.slice(0, n)
    if (holds(layers.init, prefix)) return { kind: 'resources' }
    // Variables only ever set `section.key`.
    if (holds(layers.env, prefix)) return { kind: 'env', name: envName(path[0], path[1]) }
    if (holds(layers.file, prefix) && layers.fileName !== undefined) return { kind: 'file', file: layers.fileName }
  }
  return undefined
}

interface Problem {
  path: string[]
  message: string
  /** The path whose value caused it, when not `path` itself (an unknown key, reported on its parent). */
  at?: string[]
}

/**
 * One ValidationError for every problem, each named after where its value came from: an environment
 * variable (`IPFS_ACCELERATE_HARDWARE_PREFER_CUDA (hardware.prefer_cuda): ...`), the config file
 * (`hardware.batch_size (in config file c.json): ...`, or the file once in front when every problem is
 * in it) or the resources object (`hardware.batch_size: ...`). Issues keep their config path and say
 * `(from <variable or file>)`.
 */
function configError (problems: readonly Problem[], layers: Layers, cause?: unknown): ValidationError {
  const found = problems.map(p => ({ path: dottedPath(p.path), message: p.message, origin: originOf(layers, p.at ?? p.path) }))
  const oneFile = layers.fileName !== undefined && found.every(f => f.origin?.kind === 'file')
  const labels = found.map(({ path, message, origin }) => {
    if (origin?.kind === 'env') return `${origin.name} (${path}): ${message}`
    if (origin?.kind === 'file' && !oneFile) return `${path} (in config file ${origin.file}): ${message}`
    return `${path}: ${message}`
  })
  const issues = found.map(({ path, message, origin }) => {
    const from = origin?.kind === 'env' ? origin.name : origin?.kind === 'file' ? `config file ${origin.file}` : undefined
    return { path, message: from === undefined ? message : `${message} (from ${from})` }
  })
  const variable = found.map(f => f.origin).find(o => o?.kind === 'env')
  const context = {
    ...(found.some(f => f.origin?.kind === 'file') ? { file: layers.fileName } : {}),
    ...(variable?.kind === 'env' ? { env: variable.name } : {})
  }
  const where = oneFile ? ` in config file ${layers.fileName ?? ''}` : ''
  return new ValidationError(`invalid configuration${where}: ${labels.join('; ')}`, issues, { cause, context })
}

/** Problems with `models` entries that the schema cannot see: a custom model's source, checked as a load would. */
function modelProblems (config: ResolvedConfig): Problem[] {
  const problems: Problem[] = []
  for (const key of Object.keys(config.models)) {
    try {
      checkModelEntry(key, config)
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err
      problems.push({ path: ['models', key, 'source'], message: err.issues[0]?.message ?? err.message })
    }
  }
  return problems
}

/** Validates and freezes a config. Throws ValidationError listing every problem with its path. */
export function resolveConfig (init: ResourcesInit | undefined | null = {}, options: ResolveOptions = {}): ResolvedConfig {
  if (!isPlainObject(options as unknown)) throw ValidationError.field('options', `expected an object, got ${options === null ? 'null' : Array.isArray(options) ? 'array' : typeof options}`)
  if (init !== undefined && init !== null && !isPlainObject(init)) {
    throw new ValidationError('resources must be an object', [{ path: '(root)', message: `expected an object, got ${Array.isArray(init) ? 'array' : typeof init}` }])
  }
  const env = options.env ?? process.env
  const file = options.configFile ?? env.IPFS_ACCELERATE_CONFIG
  let fromFile: Record<string, unknown> = {}
  if (file !== undefined && file !== '') {
    const raw = readConfigFile(file)
    rejectReservedKeys(raw, [], ` in config file ${file}`, file)
    fromFile = rebaseFilePaths(raw, dirname(resolve(file)))
  }
  const fromEnv = configFromEnv(env)
  const fromInit = (init ?? {}) as Record<string, unknown>
  rejectReservedKeys(fromInit, [], '')
  const layers: Layers = { init: fromInit, env: fromEnv, file: fromFile, ...(file === undefined || file === '' ? {} : { fileName: file }) }
  const merged = mergeConfig(mergeConfig(fromFile, fromEnv), fromInit)
  const result = resourcesSchema.safeParse(merged)
  if (!result.success) {
    const problems = result.error.issues.map(issue => {
      const path = issue.path.map(String)
      // An unknown key is reported on its parent object; the key itself says where it was written.
      return { path, message: issueMessage(issue), ...(issue.code === 'unrecognized_keys' ? { at: [...path, ...issue.keys.slice(0, 1)] } : {}) }
    })
    throw configError(problems, layers, result.error)
  }
  const config = result.data as ResolvedConfig
  const problems = modelProblems(config)
  if (problems.length > 0) throw configError(problems, layers)
  return deepFreeze(config)
}

export function resolveMetadata (metadata: unknown): Readonly<Metadata> {
  const result = metadataSchema.safeParse(metadata ?? {})
  if (!result.success) throw new ValidationError('invalid metadata', issuesOf(result.error, 'metadata'))
  return deepFreeze(result.data)
}
