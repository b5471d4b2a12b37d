import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { base16, base16upper } from 'multiformats/bases/base16'
import { base32, base32upper } from 'multiformats/bases/base32'
import { base36 } from 'multiformats/bases/base36'
import { base58btc } from 'multiformats/bases/base58'
import { base64, base64url } from 'multiformats/bases/base64'
import { createHash } from 'node:crypto'
import { parseCid, parseIpfsPath, toCid, verifyBlock, assertSupportedCid } from '../../src/content/cid.js'
import { HELLO, HELLO_V0, HELLO_V1 } from './store-compliance.js'

describe('parseCid / parseIpfsPath', () => {
  it('accepts bare CIDs, ipfs:// and /ipfs/ forms, with or without a path', () => {
    for (const value of [HELLO_V0, `ipfs://${HELLO_V0}`, `/ipfs/${HELLO_V0}`, `  ${HELLO_V0}\n`]) {
      assert.equal(parseCid(value).toString(), HELLO_V0)
    }
    assert.deepEqual(parseIpfsPath(`ipfs://${HELLO_V1}/models/bert/config.json`).path, 'models/bert/config.json')
    assert.deepEqual(parseIpfsPath(`/ipfs/${HELLO_V1}/a/`).path, 'a')
    assert.equal(parseIpfsPath(HELLO_V1).path, '')
  })

  it('parseCid (and toCid) refuse a path instead of dropping it', () => {
    for (const value of [`/ipfs/${HELLO_V1}/x`, `${HELLO_V0}/a/b`, `ipfs://${HELLO_V0}/onnx`]) {
      assert.throws(() => parseCid(value), (err: Error & { context?: { field?: string } }) => {
        assert.equal(err.name, 'ValidationError')
        assert.equal(err.context?.field, 'cid')
        assert.match(err.message, /without a path/)
        return true
      }, value)
      assert.throws(() => toCid(value), { name: 'ValidationError' })
    }
    assert.equal(parseCid(`/ipfs/${HELLO_V1}/`).toString(), HELLO_V1, 'a trailing slash is no path')
  })

  it('accepts a CIDv1 in any multibase multiformats ships, as Kubo does', () => {
    const cid = CID.parse(HELLO_V1)
    for (const base of [base16, base16upper, base32, base32upper, base36, base58btc, base64, base64url]) {
      const text = cid.toString(base)
      assert.equal(parseCid(text).toString(), HELLO_V1, text)
      assert.equal(parseIpfsPath(`ipfs://${text}/x`).path, 'x')
    }
    assert.throws(() => parseCid('x' + cid.toString(base16).slice(1)), /not a valid CID/)
  })

  it('an invalid CID string is a ValidationError on field cid', () => {
    for (const bad of ['', 'not-a-cid', 'ipfs://', '/ipfs/Qm123', 'QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5', 42 as unknown as string]) {
      assert.throws(() => parseCid(bad), (err: Error & { context?: { field?: string } }) => {
        assert.equal(err.name, 'ValidationError')
        assert.equal(err.context?.field, 'cid')
        return true
      }, String(bad))
    }
  })

  it('refuses . and .. and empty path segments', () => {
    for (const bad of [`ipfs://${HELLO_V0}/../etc`, `ipfs://${HELLO_V0}/a//b`, `ipfs://${HELLO_V0}/./a`]) {
      assert.throws(() => parseIpfsPath(bad), { name: 'ValidationError' })
    }
  })

  it('unsupported codecs and hash functions are ValidationErrors that say which', () => {
    const digest = Digest.create(0x12, createHash('sha256').update(HELLO).digest())
    const dagCbor = CID.createV1(0x71, digest)
    assert.throws(() => parseCid(dagCbor.toString()), /unsupported codec 0x71/)
    const sha512 = CID.createV1(0x55, Digest.create(0x13, createHash('sha512').update(HELLO).digest()))
    assert.throws(() => parseCid(sha512.toString()), /unsupported hash function 0x13/)
    assert.throws(() => toCid(dagCbor), { name: 'ValidationError' })
    assert.doesNotThrow(() => assertSupportedCid(CID.parse('bafkqaaa')))
  })
})

describe('verifyBlock', () => {
  const raw = CID.parse(HELLO_V1)
  it('accepts matching bytes (sha2-256 and identity)', () => {
    verifyBlock(raw, HELLO)
    verifyBlock(CID.parse('bafkqaddimvwgy3zao5xxe3debi'), HELLO)
  })

  it('a mismatch is a ContentVerificationError naming the CID and source', () => {
    assert.throws(() => verifyBlock(raw, new TextEncoder().encode('hello world!'), 'http://gw'), (err: Error & { context?: Record<string, unknown> }) => {
      assert.equal(err.name, 'ContentVerificationError')
      assert.equal(err.context?.cid, HELLO_V1)
      assert.equal(err.context?.source, 'http://gw')
      return true
    })
    assert.throws(() => verifyBlock(CID.parse('bafkqaddimvwgy3zao5xxe3debi'), new Uint8Array(3)), { name: 'ContentVerificationError' })
  })

  it('a hash it cannot compute is a ContentVerificationError', () => {
    const sha512 = CID.createV1(0x55, Digest.create(0x13, createHash('sha512').update(HELLO).digest()))
    assert.throws(() => verifyBlock(sha512, HELLO), { name: 'ContentVerificationError' })
  })
})
