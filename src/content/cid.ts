/**
 * CID parsing and block verification. Every CID that enters the content layer from outside goes
 * through `parseCid`/`parseIpfsPath` (bad input is a `ValidationError` on field `cid` before any I/O), and
 * every block that comes from a disk, a gateway or Kubo goes through `verifyBlock` before it is used.
 *
 * Supported: codecs dag-pb (0x70) and raw (0x55); hashes sha2-256 (0x12) and identity (0x00, inline data).
 */
import { createHash } from 'node:crypto'
import { bases } from 'multiformats/basics'
import { CID } from 'multiformats/cid'
import type { MultibaseDecoder } from 'multiformats/bases/interface'
import { ContentVerificationError, ValidationError } from '../errors.js'

export const DAG_PB_CODE = 0x70
export const RAW_CODE = 0x55
export const SHA2_256_CODE = 0x12
export const IDENTITY_CODE = 0x00

/** Identity CIDs carry their content inline; refuse ones longer than this (same bound as Helia). */
export const MAX_IDENTITY_DIGEST_LENGTH = 128

const CODEC_NAMES: Record<number, string> = { [DAG_PB_CODE]: 'dag-pb', [RAW_CODE]: 'raw' }
const HASH_NAMES: Record<number, string> = { [SHA2_256_CODE]: 'sha2-256', [IDENTITY_CODE]: 'identity' }

/** A CID plus the path below it (`ipfs://<cid>/a/b` gives path `a/b`; a bare CID gives `''`). */
export interface IpfsPath {
  cid: CID
  path: string
}

/**
 * Every multibase multiformats ships (base16 `f…`, base32 `b…`, base36 `k…`, base58btc `z…`, base64 `m…`,
 * base64url `u…`, …), as Kubo accepts a CIDv1 in any base it knows. CIDv0 (`Qm…`) needs none.
 */
const BASE_BY_PREFIX = new Map(Object.values(bases).map(b => [b.prefix as string, b.decoder as MultibaseDecoder<string>]))
const ANY_BASE: MultibaseDecoder<string> = {
  decode (text: string): ReturnType<MultibaseDecoder<string>['decode']> {
    const base = BASE_BY_PREFIX.get(text.charAt(0))
    if (base === undefined) throw new Error(`unknown multibase prefix ${JSON.stringify(text.charAt(0))}`)
    return base.decode(text)
  }
}

function hex (code: number): string {
  return `0x${code.toString(16)}`
}

/** Throws unless `cid` uses a codec and hash this package can verify. `field` names the input in errors. */
export function assertSupportedCid (cid: CID, field = 'cid'): void {
  if (CODEC_NAMES[cid.code] === undefined) {
    throw ValidationError.field(field, `unsupported codec ${hex(cid.code)} in ${cid.toString()} (supported: dag-pb 0x70, raw 0x55)`, { cid: cid.toString(), codec: cid.code })
  }
  const hash = cid.multihash.code
  if (HASH_NAMES[hash] === undefined) {
    throw ValidationError.field(field, `unsupported hash function ${hex(hash)} in ${cid.toString()} (supported: sha2-256 0x12, identity 0x00)`, { cid: cid.toString(), hash })
  }
  if (hash === SHA2_256_CODE && cid.multihash.size !== 32) {
    throw ValidationError.field(field, `sha2-256 digest of ${cid.multihash.size} bytes in ${cid.toString()} (expected 32)`, { cid: cid.toString() })
  }
  if (hash === IDENTITY_CODE && cid.multihash.size > MAX_IDENTITY_DIGEST_LENGTH) {
    throw ValidationError.field(field, `identity CID longer than ${MAX_IDENTITY_DIGEST_LENGTH} bytes`, { cid: cid.toString() })
  }
}

function stripPrefix (value: string): string {
  if (value.startsWith('ipfs://')) return value.slice('ipfs://'.length)
  if (value.startsWith('/ipfs/')) return value.slice('/ipfs/'.length)
  return value
}

/**
 * Parses `<cid>`, `<cid>/path`, `ipfs://<cid>[/path]` or `/ipfs/<cid>[/path]`. Path segments `.` and
 * `..` and empty segments (other than a trailing slash) are refused.
 */
export function parseIpfsPath (value: string): IpfsPath {
  if (typeof value !== 'string' || value.trim() === '') {
    throw ValidationError.field('cid', 'expected a CID, ipfs://<cid>[/path] or /ipfs/<cid>[/path]')
  }
  const rest = stripPrefix(value.trim())
  const slash = rest.indexOf('/')
  const head = slash === -1 ? rest : rest.slice(0, slash)
  let path = slash === -1 ? '' : rest.slice(slash + 1)
  if (path.endsWith('/')) path = path.slice(0, -1)
  let cid: CID
  try {
    cid = CID.parse(head, ANY_BASE)
  } catch (cause) {
    throw new ValidationError(`cid: ${JSON.stringify(head)} is not a valid CID (${(cause as Error).message})`,
      [{ path: 'cid', message: 'not a valid CID' }], { cause, context: { field: 'cid', value } })
  }
  if (path !== '') {
    for (const segment of path.split('/')) {
      if (segment === '' || segment === '.' || segment === '..') {
        throw ValidationError.field('cid', `path ${JSON.stringify(path)} has an empty, "." or ".." segment`, { value })
      }
    }
  }
  assertSupportedCid(cid)
  return { cid, path }
}

/**
 * The CID of `<cid>`, `ipfs://<cid>` or `/ipfs/<cid>`. A path after the CID is a ValidationError (field
 * `cid`): where one is allowed, use `parseIpfsPath` and resolve it, so it is never silently dropped.
 */
export function parseCid (value: string): CID {
  const { cid, path } = parseIpfsPath(value)
  if (path !== '') {
    throw ValidationError.field('cid', `expected a CID without a path, got ${JSON.stringify(value)}`, { cid: cid.toString(), path })
  }
  return cid
}

/** Accepts a CID object or any string `parseCid` accepts (no path). */
export function toCid (value: CID | string): CID {
  if (typeof value === 'string') return parseCid(value)
  const cid = CID.asCID(value)
  if (cid == null) throw ValidationError.field('cid', 'expected a CID')
  assertSupportedCid(cid)
  return cid
}

/** The bytes an identity CID carries, or undefined for any other CID. */
export function identityBytes (cid: CID): Uint8Array | undefined {
  return cid.multihash.code === IDENTITY_CODE ? cid.multihash.digest : undefined
}

function equalBytes (a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength))
}

/** sha2-256 of `bytes` as a Uint8Array. */
export function sha256 (bytes: Uint8Array): Uint8Array {
  return createHash('sha256').update(bytes).digest()
}

/**
 * Hashes `bytes` and compares them with `cid`. Throws ContentVerificationError on a mismatch or on a CID
 * this package cannot verify (unknown codec or hash). `source` names where the bytes came from.
 */
export function verifyBlock (cid: CID, bytes: Uint8Array, source?: string): void {
  const hash = cid.multihash.code
  const context = { cid: cid.toString(), ...(source === undefined ? {} : { source }) }
  if (CODEC_NAMES[cid.code] === undefined) {
    throw new ContentVerificationError(`cannot verify ${cid.toString()}: unsupported codec ${hex(cid.code)}`, { context: { ...context, codec: cid.code } })
  }
  let ok: boolean
  if (hash === SHA2_256_CODE) ok = equalBytes(sha256(bytes), cid.multihash.digest)
  else if (hash === IDENTITY_CODE) ok = equalBytes(bytes, cid.multihash.digest)
  else throw new ContentVerificationError(`cannot verify ${cid.toString()}: unsupported hash function ${hex(hash)}`, { context: { ...context, hash } })
  if (!ok) {
    throw new ContentVerificationError(`block ${cid.toString()}${source === undefined ? '' : ` from ${source}`} does not match its CID`, { context })
  }
}
