/**
 * Turns the model identifier a caller passes (`bert-base-uncased`, `Xenova/gpt2@v1`, `./models/bert`,
 * `custom:my-model`, `ipfs://bafy...`) into a typed reference that says where the model lives. Parsing
 * only: nothing is downloaded or fetched here, and a local path need not exist yet (loading reports
 * that with ModelLoadError). Every malformed identifier is a ValidationError on field `model`, before
 * any I/O, so a bad id can never reach a URL or a cache path.
 */
import { statSync } from 'node:fs'
import { homedir } from 'node:os'
import { isAbsolute, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { CID } from 'multiformats/cid'
import { base32 } from 'multiformats/bases/base32'
import { base36 } from 'multiformats/bases/base36'
import { base58btc } from 'multiformats/bases/base58'
import { ValidationError } from '../errors.js'
import type { ModelConfig } from '../config/schema.js'
import { resolveModelAlias } from './model-aliases.js'

/** The hub revision used when neither the id (`repo@rev`) nor the config names one. */
export const DEFAULT_REVISION = 'main'

interface ReferenceBase {
  /** The identifier exactly as given. */
  id: string
  /** `resources.models[id]` (or the custom entry), when there is one. */
  config?: ModelConfig
}

/** A hub repository, downloaded through transformers.js into the model cache. */
export interface HubModelReference extends ReferenceBase {
  kind: 'hub'
  /** `org/name` or `name`, after alias resolution. */
  repo: string
  revision: string
}

/** A folder on this machine, used in place. */
export interface LocalModelReference extends ReferenceBase {
  kind: 'local'
  /** Absolute path. */
  path: string
}

/** A model folder (or file) stored in IPFS. */
export interface IpfsModelReference extends ReferenceBase {
  kind: 'ipfs'
  /** Canonical string form of the CID. */
  cid: string
  /** Path below the CID, without leading slash (`ipfs://<cid>/bert` gives `bert`). */
  path?: string
}

/** Where a `custom:` entry's `source` points. */
export type ModelSource = HubModelReference | LocalModelReference | IpfsModelReference

/** `custom:name`: a model declared in `resources.models`, whose `source` says where it lives. */
export interface CustomModelReference extends ReferenceBase {
  kind: 'custom'
  name: string
  /** The `resources.models` key the entry was found under (`custom:name` or `name`). */
  key: string
  config: ModelConfig
  /** The parsed `source`. */
  target: ModelSource
}

export type ModelReference = ModelSource | CustomModelReference

/** The parts of the resolved config this module reads. */
export interface ModelReferenceConfig {
  models?: Readonly<Record<string, ModelConfig>>
  model_aliases?: Readonly<Record<string, string>>
}

export interface ParseModelReferenceOptions {
  /** Folder relative paths are resolved against. Default: `process.cwd()`. */
  cwd?: string
  /** What `~` expands to. Default: `os.homedir()`. */
  homeDir?: string
}

const MAX_ID_LENGTH = 2048
/** One hub name segment: letters, digits, `-`, `_`, `.`; starts and ends with a letter or digit (hub rule). */
const HUB_SEGMENT = /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$/
/** Branch, tag or commit: git ref characters, with `/` allowed for `refs/pr/1`. */
const REVISION = /^[A-Za-z0-9](?:[A-Za-z0-9._\-/]{0,253}[A-Za-z0-9_])?$/
const CUSTOM_PREFIX = 'custom:'
/** Base32 (`b...`), base36 (`k...`) and base58btc (`z...`, and CIDv0 `Qm...`): the forms CIDs are written in. */
const CID_DECODER = base32.decoder.or(base36.decoder).or(base58btc.decoder)

function invalid (id: string, message: string, cause?: unknown): ValidationError {
  return new ValidationError(`model: ${message}`, [{ path: 'model', message }], { cause, context: { model: id, field: 'model' } })
}

/** Expands a leading `~` or `~/` to `homeDir`; other paths are returned as they are. */
export function expandHome (path: string, homeDir: string = homedir()): string {
  if (path === '~') return homeDir
  if (path.startsWith('~/')) return resolve(homeDir, path.slice(2))
  return path
}

/** True for a valid hub repository id (`name` or `org/name`) by the hub's own naming rules. */
export function isValidHubRepo (repo: string): boolean {
  const parts = repo.split('/')
  if (parts.length > 2) return false
  return parts.every(p => HUB_SEGMENT.test(p) && !p.includes('..') && !p.includes('--')) &&
    !repo.endsWith('.git') && !repo.endsWith('.ipynb')
}

/** True for a revision that is safe both in a URL and as a cache folder name. */
export function isValidRevision (revision: string): boolean {
  return REVISION.test(revision) && !revision.includes('..') && !revision.includes('//')
}

function looksLikePath (id: string): boolean {
  return id.startsWith('./') || id.startsWith('../') || id === '.' || id === '..' ||
    id.startsWith('/') || id === '~' || id.startsWith('~/') || id.startsWith('file://') || isAbsolute(id)
}

function isDirectory (path: string): boolean {
  try {
    return statSync(path).isDirectory()
  } catch {
    return false
  }
}

function localReference (id: string, path: string, options: ParseModelReferenceOptions, config?: ModelConfig): LocalModelReference {
  let p = path
  if (p.startsWith('file://')) {
    try {
      p = fileURLToPath(p)
    } catch (cause) {
      throw invalid(id, `${JSON.stringify(path)} is not a valid file:// URL`, cause)
    }
  }
  p = expandHome(p, options.homeDir)
  return withConfig({ kind: 'local', id, path: resolve(options.cwd ?? process.cwd(), p) }, config)
}

function withConfig<T extends ReferenceBase> (ref: T, config: ModelConfig | undefined): T {
  if (config !== undefined) ref.config = config
  return ref
}

/** Parses the part after `ipfs://` or `/ipfs/` (or a bare CID): `<cid>[/path]`. */
function ipfsReference (id: string, rest: string, config?: ModelConfig): IpfsModelReference {
  const slash = rest.indexOf('/')
  const cidText = slash < 0 ? rest : rest.slice(0, slash)
  const pathText = slash < 0 ? '' : rest.slice(slash + 1).replace(/\/+$/, '')
  const cid = parseCid(cidText)
  if (cid === undefined) throw invalid(id, `${JSON.stringify(cidText)} is not a valid CID`)
  const ref: IpfsModelReference = { kind: 'ipfs', id, cid: cid.toString() }
  if (pathText !== '') {
    const segments = pathText.split('/')
    if (segments.some(s => s === '' || s === '.' || s === '..')) {
      throw invalid(id, `path ${JSON.stringify(pathText)} below the CID must not contain empty, '.' or '..' segments`)
    }
    ref.path = pathText
  }
  return withConfig(ref, config)
}

function parseCid (text: string): CID | undefined {
  try {
    return CID.parse(text, CID_DECODER)
  } catch {
    return undefined
  }
}

/** A bare CID is only tried for strings shaped like one, so no short model name is ever read as a CID. */
function looksLikeBareCid (id: string): boolean {
  return /^(Qm[1-9A-HJ-NP-Za-km-z]{44}|b[a-z2-7]{50,}|k[0-9a-z]{45,}|z[1-9A-HJ-NP-Za-km-z]{45,})(\/.*)?$/.test(id)
}

function hubReference (id: string, target: string, config?: ModelConfig): HubModelReference {
  let repo = target
  let revision: string | undefined
  const at = target.indexOf('@')
  if (at >= 0) {
    repo = target.slice(0, at)
    revision = target.slice(at + 1)
    if (!isValidRevision(revision)) throw invalid(id, `revision ${JSON.stringify(revision)} is not a valid branch, tag or commit`)
  }
  if (!isValidHubRepo(repo)) {
    throw invalid(id, `${JSON.stringify(repo)} is not a valid model id: expected "name" or "org/name" of letters, digits, '-', '_' and '.', ` +
      'a local path starting with ./, ../, / or ~/, "custom:<name>", or an IPFS CID')
  }
  revision ??= config?.revision ?? DEFAULT_REVISION
  if (!isValidRevision(revision)) throw invalid(id, `revision ${JSON.stringify(revision)} is not a valid branch, tag or commit`)
  return withConfig({ kind: 'hub', id, repo, revision }, config)
}

/**
 * Parses a model source: a local path, an IPFS address, or a hub id (through the aliases). `provider`
 * `local` or `ipfs` forces that reading of a string that would otherwise look like a hub id.
 */
function parseSource (id: string, source: string, refConfig: ModelReferenceConfig, options: ParseModelReferenceOptions, config?: ModelConfig): ModelSource {
  if (source.startsWith('ipfs://')) return ipfsReference(id, source.slice('ipfs://'.length), config)
  if (source.startsWith('/ipfs/')) return ipfsReference(id, source.slice('/ipfs/'.length), config)
  if (config?.provider === 'ipfs') return ipfsReference(id, source, config)
  if (config?.provider === 'local' || looksLikePath(source)) return localReference(id, source, options, config)
  if (looksLikeBareCid(source) && parseCid(source.split('/')[0]) !== undefined) return ipfsReference(id, source, config)
  const resolved = resolveModelAlias(source, refConfig.model_aliases)
  if (resolved !== source) {
    // An alias may point at a folder or an IPFS address as well as at a hub repository.
    if (looksLikePath(resolved) || resolved.startsWith('ipfs://') || resolved.startsWith('/ipfs/')) {
      return parseSource(id, resolved, {}, options, config)
    }
  } else if (isValidHubRepo(source) && isDirectory(resolve(options.cwd ?? process.cwd(), source))) {
    // `models/bert` that exists next to us is a folder, not a hub repository of that name.
    return localReference(id, source, options, config)
  }
  return hubReference(id, resolved, config)
}

function checkShape (id: unknown): asserts id is string {
  if (typeof id !== 'string') throw ValidationError.field('model', `expected a string, got ${id === null ? 'null' : typeof id}`)
  if (id.trim() === '') throw ValidationError.field('model', 'must not be empty', { model: id })
  if (id !== id.trim()) throw invalid(id, 'must not start or end with whitespace')
  if (id.length > MAX_ID_LENGTH) throw invalid(id, `must be at most ${MAX_ID_LENGTH} characters`)
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(id)) throw invalid(id, 'must not contain control characters')
}

/**
 * Parses a model identifier.
 *
 * - `custom:<name>`: the entry `resources.models['custom:<name>']` (or `['<name>']`), whose `source`
 *   (a hub repo, a folder or an IPFS address) is parsed into `target`;
 * - `ipfs://<cid>[/path]`, `/ipfs/<cid>[/path]` or a bare CID: an IPFS reference (syntax-checked only);
 * - `./x`, `../x`, `/abs`, `~/x`, `file://...`, or a name that is an existing folder: a local folder;
 * - anything else: a hub repository, after `model_aliases` and the built-in aliases, optionally with
 *   `@revision`.
 *
 * `resources.models[id]`, when present, is attached as `config`; its `source` replaces `id` as the place
 * to load from and its `revision` applies to hub repositories.
 * @throws ValidationError with field `model` for a malformed or unknown identifier.
 */
export function parseModelReference (id: string, config: ModelReferenceConfig = {}, options: ParseModelReferenceOptions = {}): ModelReference {
  checkShape(id)
  const models = config.models ?? {}
  if (id.startsWith(CUSTOM_PREFIX)) {
    const name = id.slice(CUSTOM_PREFIX.length)
    if (name === '') throw invalid(id, 'custom: must be followed by a model name')
    const key = Object.hasOwn(models, id) ? id : Object.hasOwn(models, name) ? name : undefined
    if (key === undefined) {
      throw invalid(id, `unknown custom model ${JSON.stringify(name)}: declare it in resources.models[${JSON.stringify(id)}] with a source`)
    }
    const entry = models[key]
    if (entry.source === undefined) {
      throw invalid(id, `resources.models[${JSON.stringify(key)}].source is required for a custom model (a hub repo, a folder or an ipfs:// CID)`)
    }
    if (entry.source.startsWith(CUSTOM_PREFIX)) {
      throw invalid(id, `resources.models[${JSON.stringify(key)}].source must not be another custom: model`)
    }
    checkShape(entry.source)
    return { kind: 'custom', id, name, key, config: entry, target: parseSource(id, entry.source, config, options, entry) }
  }
  const entry = Object.hasOwn(models, id) ? models[id] : undefined
  return parseSource(id, entry?.source ?? id, config, options, entry)
}

/**
 * Checks a `resources.models[key]` entry the way a load would read it, so that an entry that can never
 * load is a config error rather than a failure at first use: a `custom:` entry without a `source`, a
 * `source` that is itself a `custom:` id (custom models do not chain), or a malformed source (hub id,
 * folder URL, CID, alias cycle). Whether a folder exists or a hub repository is there is left to loading.
 * @throws ValidationError whose first issue says what is wrong with the source.
 */
export function checkModelEntry (key: string, config: ModelReferenceConfig): void {
  const entry = config.models?.[key]
  if (entry === undefined) return
  if (entry.source === undefined) {
    if (key.startsWith(CUSTOM_PREFIX)) throw invalid(key, 'is required for a custom model (a hub repo, a folder or an ipfs:// CID)')
    return
  }
  if (entry.source.startsWith(CUSTOM_PREFIX)) {
    throw invalid(key, `${JSON.stringify(entry.source)} is another custom: model; a source must be a hub repo, a folder or an ipfs:// CID (custom models do not chain)`)
  }
  checkShape(entry.source)
  parseSource(key, entry.source, config, {}, entry)
}

/** The reference a loader acts on: a custom model's target, anything else as it is. */
export function modelSource (ref: ModelReference): ModelSource {
  return ref.kind === 'custom' ? ref.target : ref
}
