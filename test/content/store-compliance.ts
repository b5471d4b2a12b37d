/**
 * The compliance suite every ContentStore runs (HeliaStore, KuboStore, GatewayStore, the router).
 * A store that cannot do something lists it in `gaps` with the reason instead of silently skipping.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { createHash } from 'node:crypto'
import type { ContentStore } from '../../src/content/content-store.js'
import { seededBytes } from './seeded-bytes.js'

export const HELLO = new TextEncoder().encode('hello world\n')
/** `ipfs add` of 'hello world\n' (Kubo 0.x, also Debian's ipfs-cid). */
export const HELLO_V0 = 'QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o'
/** `ipfs add --cid-version 1` of 'hello world\n'. */
export const HELLO_V1 = 'bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4'
/** seededBytes(174 * 256 KiB + 1, 42): one chunk more than a single level holds, so two levels. */
export const TWO_LEVEL_SIZE = 174 * 262_144 + 1
export const TWO_LEVEL_V0 = 'QmZqMU3Yd55Do7t6yG68dRQUSqUJDy9Monxbka4uX1mrps'

export interface ComplianceHarness {
  store: ContentStore
  /**
   * Adds content through the store's backing (for read-only stores such as the gateway) or through the
   * store itself; returns the root CID.
   */
  add: (bytes: Uint8Array, cidVersion: 0 | 1) => Promise<CID>
  /**
   * Makes reads of `cid` return wrong bytes, returning the store to read through (the same store for a
   * damaged disk, another pointed at a misbehaving server) and a probe saying whether the wrong block
   * ended up cached anywhere.
   */
  corrupt: (cid: CID) => Promise<{ store: ContentStore, cached: () => Promise<boolean>, close?: () => Promise<void> }>
  /** A store whose backend never answers (network stores), with the error name expected. */
  unresponsive?: () => Promise<{ store: ContentStore, close: () => Promise<void> }>
  close: () => Promise<void>
}

export interface ComplianceOptions {
  /** Cases this store cannot run, each with the reason. */
  gaps?: Partial<Record<'put' | 'unresponsive', string>>
}

/** A sha2-256 raw CID of random bytes: a block nobody has. */
export function missingCid (): CID {
  const bytes = createHash('sha256').update(String(Math.random()) + String(Date.now())).digest()
  return CID.createV1(0x55, Digest.create(0x12, createHash('sha256').update(bytes).digest()))
}

async function collect (source: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = []
  for await (const p of source) parts.push(p)
  return Buffer.concat(parts)
}

function expectName (names: string[]) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof Error, `expected an Error, got ${String(err)}`)
    assert.ok(names.includes(err.name), `expected ${names.join(' or ')}, got ${err.name}: ${err.message}`)
    return true
  }
}

export function runStoreCompliance (name: string, factory: () => Promise<ComplianceHarness>, options: ComplianceOptions = {}): void {
  const gaps = options.gaps ?? {}
  describe(`ContentStore compliance: ${name}`, () => {
    let h: ComplianceHarness
    before(async () => { h = await factory() })
    after(async () => { await h?.close() })

    it('adds and reads back small content with Kubo\'s CIDs (v0 and v1)', async () => {
      const v0 = await h.add(HELLO, 0)
      const v1 = await h.add(HELLO, 1)
      assert.equal(v0.toString(), HELLO_V0)
      assert.equal(v1.toString(), HELLO_V1)
      assert.deepEqual(Buffer.from(await h.store.get(v0)), Buffer.from(HELLO))
      assert.deepEqual(Buffer.from(await h.store.get(v1)), Buffer.from(HELLO))
      if (h.store.has !== undefined) {
        assert.equal(await h.store.has(v0), true)
        assert.equal(await h.store.has(missingCid()), false)
      }
    })

    it('put returns the same CID as add', { skip: gaps.put }, async () => {
      assert.ok(h.store.put !== undefined, `${name} has no put and lists no gap for it`)
      const cid = await h.store.put(HELLO, { cidVersion: 0 })
      assert.equal(cid.toString(), HELLO_V0)
      const streamed = await h.store.put((async function * () { yield HELLO.subarray(0, 5); yield HELLO.subarray(5) })(), { cidVersion: 1 })
      assert.equal(streamed.toString(), HELLO_V1)
    })

    it('reads large multi-level content (get and cat agree, progress reaches the total)', async () => {
      const bytes = seededBytes(TWO_LEVEL_SIZE, 42)
      const cid = await h.add(bytes, 0)
      assert.equal(cid.toString(), TWO_LEVEL_V0)
      let last = { bytes: 0, total: undefined as number | undefined }
      const got = await h.store.get(cid, { onProgress: p => { last = { bytes: p.bytes, total: p.total } } })
      assert.equal(got.byteLength, bytes.byteLength)
      assert.ok(Buffer.from(got).equals(Buffer.from(bytes)), 'get returned different bytes')
      assert.equal(last.bytes, bytes.byteLength)
      if (h.store.cat !== undefined) {
        const streamed = await collect(h.store.cat(cid))
        assert.ok(streamed.equals(Buffer.from(bytes)), 'cat returned different bytes')
      }
    })

    it('reads a several-MiB CIDv1 (raw leaves) file', async () => {
      const bytes = seededBytes(5 * 1024 * 1024 + 7, 7)
      const cid = await h.add(bytes, 1)
      assert.equal(cid.version, 1)
      assert.ok(Buffer.from(await h.store.get(cid)).equals(Buffer.from(bytes)))
    })

    it('a missing CID is a NotFoundError (or a clear error), and does not hang', async () => {
      await assert.rejects(h.store.get(missingCid(), { signal: AbortSignal.timeout(20_000) }),
        expectName(['NotFoundError', 'IpfsConnectionError']))
    })

    it('a block that does not match its CID is a ContentVerificationError and is not cached', async () => {
      const bytes = seededBytes(3 * 262_144 + 11, 99)
      const cid = await h.add(bytes, 0)
      const { store, cached, close } = await h.corrupt(cid)
      try {
        await assert.rejects(store.get(cid), expectName(['ContentVerificationError']))
        if (store.cat !== undefined) await assert.rejects(collect(store.cat(cid)), expectName(['ContentVerificationError']))
        assert.equal(await cached(), false, 'a corrupt block was cached')
      } finally {
        await close?.()
      }
    })

    it('an aborted signal rejects with AbortError; a passed deadline with TimeoutError', async () => {
      const cid = await h.add(seededBytes(2 * 1024 * 1024, 5), 1)
      const controller = new AbortController()
      controller.abort()
      await assert.rejects(h.store.get(cid, { signal: controller.signal }), expectName(['AbortError']))
      const deadline = AbortSignal.timeout(1)
      await new Promise(resolve => setTimeout(resolve, 20))
      assert.equal(deadline.aborted, true)
      await assert.rejects(h.store.get(cid, { signal: deadline }), expectName(['TimeoutError']))
    })

    it('a backend that never answers gives a TimeoutError (after its retries)', { skip: gaps.unresponsive }, async () => {
      assert.ok(h.unresponsive !== undefined, `${name} has no unresponsive harness and lists no gap for it`)
      const { store, close } = await h.unresponsive()
      try {
        await assert.rejects(store.get(missingCid()), expectName(['TimeoutError']))
      } finally {
        await close()
      }
    })
  })
}
