/**
 * Relative paths written in a config file mean "next to this file", as in tsconfig.json or
 * docker-compose files: a project's config then works from whatever directory the tool is run in.
 * Paths from the resources object and environment variables stay relative to the working directory.
 */
import { isAbsolute, resolve } from 'node:path'

/** A path that names a folder relative to somewhere (not absolute, not `~/...`, not a URL or a hub id). */
function isRelativePath (value: unknown): value is string {
  return typeof value === 'string' && value !== '' && !isAbsolute(value) && !value.startsWith('~') && !/^[a-z][a-z0-9+.-]*:/i.test(value)
}

/** Only what reads as a local path (`./x`, `../x`): a bare `org/name` in these keys is a hub id. */
function isDotRelative (value: unknown): value is string {
  return typeof value === 'string' && (value === '.' || value === '..' || value.startsWith('./') || value.startsWith('../'))
}

function objectAt (value: unknown): Record<string, unknown> | undefined {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? value as Record<string, unknown> : undefined
}

/**
 * Returns the config file's contents with its relative paths resolved against `baseDir` (the file's
 * folder): `ipfs.repo`, `logging.log_file`, `hub.cache_dir`, `models.<id>.cache_dir`, and
 * `models.<id>.source` and `model_aliases` values written as `./...` or `../...` (any relative
 * source of a model whose provider is `local`). Values of the wrong
 * type are left for the schema to report.
 */
export function rebaseFilePaths (file: Record<string, unknown>, baseDir: string): Record<string, unknown> {
  const out: Record<string, unknown> = { ...file }
  const rebaseKey = (section: string, key: string, test: (v: unknown) => v is string): void => {
    const obj = objectAt(out[section])
    if (obj === undefined || !test(obj[key])) return
    out[section] = { ...obj, [key]: resolve(baseDir, obj[key]) }
  }
  rebaseKey('ipfs', 'repo', isRelativePath)
  rebaseKey('logging', 'log_file', isRelativePath)
  rebaseKey('hub', 'cache_dir', isRelativePath)
  const models = objectAt(out.models)
  if (models !== undefined) {
    out.models = Object.fromEntries(Object.entries(models).map(([id, settings]) => {
      const obj = objectAt(settings)
      if (obj === undefined) return [id, settings]
      const next = { ...obj }
      if (isRelativePath(next.cache_dir)) next.cache_dir = resolve(baseDir, next.cache_dir)
      // provider "local" makes any source a path; otherwise only ./ and ../ read as one.
      if (next.provider === 'local' ? isRelativePath(next.source) : isDotRelative(next.source)) next.source = resolve(baseDir, next.source as string)
      return [id, next]
    }))
  }
  const aliases = objectAt(out.model_aliases)
  if (aliases !== undefined) {
    out.model_aliases = Object.fromEntries(Object.entries(aliases).map(([name, target]) => [name, isDotRelative(target) ? resolve(baseDir, target) : target]))
  }
  return out
}
