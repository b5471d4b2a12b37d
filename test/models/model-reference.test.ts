import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { base36 } from 'multiformats/bases/base36'
import { parseModelReference, modelSource, isValidHubRepo, expandHome, type ModelReference } from '../../src/models/model-reference.js'
import { resolveConfig } from '../../src/config/resolve.js'
import { ValidationError } from '../../src/errors.js'

function assertModelError (fn: () => unknown, pattern?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ValidationError, `expected ValidationError, got ${String(err)}`)
    assert.equal(err.context.field, 'model')
    if (pattern !== undefined) assert.match(err.message, pattern)
    return true
  })
}

function expectKind<K extends ModelReference['kind']> (ref: ModelReference, kind: K): Extract<ModelReference, { kind: K }> {
  assert.equal(ref.kind, kind)
  return ref as Extract<ModelReference, { kind: K }>
}

describe('parseModelReference', () => {
  let cwd: string
  let cidV1: string
  let cidV0: string
  before(async () => {
    cwd = await mkdtemp(join(tmpdir(), 'model-ref-'))
    await mkdir(join(cwd, 'models', 'bert'), { recursive: true })
    const digest = await sha256.digest(new TextEncoder().encode('hello model'))
    cidV1 = CID.create(1, 0x55, digest).toString()
    cidV0 = CID.createV0(await sha256.digest(new TextEncoder().encode('dag-pb node'))).toString()
  })
  after(async () => { await rm(cwd, { recursive: true, force: true }) })
  const opts = (): { cwd: string, homeDir: string } => ({ cwd, homeDir: '/home/tester' })

  describe('hub ids', () => {
    it('resolves built-in aliases to hub repositories at main', () => {
      const ref = expectKind(parseModelReference('bert-base-uncased', {}, opts()), 'hub')
      assert.deepEqual(ref, { kind: 'hub', id: 'bert-base-uncased', repo: 'Xenova/bert-base-uncased', revision: 'main' })
    })

    it('accepts org/name and name ids as they are', () => {
      assert.equal(expectKind(parseModelReference('Xenova/gpt2', {}, opts()), 'hub').repo, 'Xenova/gpt2')
      assert.equal(expectKind(parseModelReference('my-model.v2', {}, opts()), 'hub').repo, 'my-model.v2')
    })

    it('reads a revision after @', () => {
      const ref = expectKind(parseModelReference('Xenova/gpt2@v1.0', {}, opts()), 'hub')
      assert.equal(ref.repo, 'Xenova/gpt2')
      assert.equal(ref.revision, 'v1.0')
      assert.equal(expectKind(parseModelReference('gpt2@refs/pr/3', {}, opts()), 'hub').revision, 'refs/pr/3')
    })

    it('applies config aliases before built-in ones', () => {
      const ref = expectKind(parseModelReference('gpt2', { model_aliases: { gpt2: 'onnx-community/gpt2-ONNX' } }, opts()), 'hub')
      assert.equal(ref.repo, 'onnx-community/gpt2-ONNX')
    })

    it('attaches resources.models[id] and lets its source and revision override the id', () => {
      const config = resolveConfig({ models: { 'my-bert': { source: 'Org/bert-onnx', revision: 'abc123', precision: 'q8' } } }, { env: {} })
      const ref = expectKind(parseModelReference('my-bert', config, opts()), 'hub')
      assert.equal(ref.repo, 'Org/bert-onnx')
      assert.equal(ref.revision, 'abc123')
      assert.equal(ref.config?.precision, 'q8')
      assert.equal(ref.id, 'my-bert')
    })

    it('keeps the id when the model entry has no source', () => {
      const ref = expectKind(parseModelReference('gpt2', { models: { gpt2: { provider: 'huggingface', max_length: 64 } } }, opts()), 'hub')
      assert.equal(ref.repo, 'Xenova/gpt2')
      assert.equal(ref.config?.max_length, 64)
    })
  })

  describe('local folders', () => {
    it('resolves ./, ../ and absolute paths against cwd', () => {
      assert.equal(expectKind(parseModelReference('./models/bert', {}, opts()), 'local').path, join(cwd, 'models', 'bert'))
      assert.equal(expectKind(parseModelReference('../elsewhere', {}, opts()), 'local').path, join(cwd, '..', 'elsewhere'))
      assert.equal(expectKind(parseModelReference('/opt/models/x', {}, opts()), 'local').path, '/opt/models/x')
    })

    it('expands ~ to the home folder', () => {
      assert.equal(expectKind(parseModelReference('~/models/x', {}, opts()), 'local').path, '/home/tester/models/x')
      assert.equal(expandHome('~', '/h'), '/h')
      assert.equal(expandHome('a/~', '/h'), 'a/~')
    })

    it('reads file:// URLs', () => {
      const url = pathToFileURL(join(cwd, 'models', 'bert')).href
      assert.equal(expectKind(parseModelReference(url, {}, opts()), 'local').path, join(cwd, 'models', 'bert'))
    })

    it('treats a name that is an existing folder as local', () => {
      assert.equal(expectKind(parseModelReference('models/bert', {}, opts()), 'local').path, join(cwd, 'models', 'bert'))
      // The same shape that does not exist is a hub repository.
      assert.equal(parseModelReference('models/gpt', {}, opts()).kind, 'hub')
    })

    it('honours provider local for a source without ./', () => {
      const ref = expectKind(parseModelReference('x', { models: { x: { provider: 'local', source: 'models/none-yet' } } }, opts()), 'local')
      assert.equal(ref.path, join(cwd, 'models', 'none-yet'))
    })
  })

  describe('custom models', () => {
    const models = {
      'custom:embedder': { provider: 'huggingface' as const, source: 'Org/embedder' },
      classifier: { provider: 'local' as const, source: './models/bert', endpoint_type: 'text_embedding' as const },
      nosource: { provider: 'huggingface' as const }
    }

    it('finds custom:name under custom:name and parses its source', () => {
      const ref = expectKind(parseModelReference('custom:embedder', { models }, opts()), 'custom')
      assert.equal(ref.name, 'embedder')
      assert.equal(ref.key, 'custom:embedder')
      assert.deepEqual(modelSource(ref), { kind: 'hub', id: 'custom:embedder', repo: 'Org/embedder', revision: 'main', config: models['custom:embedder'] })
    })

    it('falls back to the bare name and supports folder sources', () => {
      const ref = expectKind(parseModelReference('custom:classifier', { models }, opts()), 'custom')
      assert.equal(ref.key, 'classifier')
      assert.equal(ref.config.endpoint_type, 'text_embedding')
      assert.equal(expectKind(ref.target, 'local').path, join(cwd, 'models', 'bert'))
    })

    it('supports ipfs sources', () => {
      const ref = expectKind(parseModelReference('custom:pinned', { models: { 'custom:pinned': { provider: 'ipfs', source: `ipfs://${cidV1}/bert` } } }, opts()), 'custom')
      assert.deepEqual(ref.target, { kind: 'ipfs', id: 'custom:pinned', cid: cidV1, path: 'bert', config: { provider: 'ipfs', source: `ipfs://${cidV1}/bert` } })
    })

    it('rejects unknown custom models, a missing source and an empty name', () => {
      assertModelError(() => parseModelReference('custom:unknown', { models }, opts()), /unknown custom model/)
      assertModelError(() => parseModelReference('custom:nosource', { models }, opts()), /source is required/)
      assertModelError(() => parseModelReference('custom:', { models }, opts()))
      assertModelError(() => parseModelReference('custom:loop', { models: { loop: { provider: 'huggingface', source: 'custom:loop' } } }, opts()))
    })
  })

  describe('ipfs', () => {
    it('parses ipfs://, /ipfs/ and bare CIDs (v0 and v1)', () => {
      assert.deepEqual(parseModelReference(`ipfs://${cidV1}`, {}, opts()), { kind: 'ipfs', id: `ipfs://${cidV1}`, cid: cidV1 })
      assert.deepEqual(parseModelReference(`/ipfs/${cidV0}/models/bert/`, {}, opts()), { kind: 'ipfs', id: `/ipfs/${cidV0}/models/bert/`, cid: cidV0, path: 'models/bert' })
      assert.equal(expectKind(parseModelReference(cidV1, {}, opts()), 'ipfs').cid, cidV1)
      assert.equal(expectKind(parseModelReference(cidV0, {}, opts()), 'ipfs').cid, cidV0)
    })

    it('normalises a base36 CID to its base32 form', () => {
      const b36 = CID.parse(cidV1).toString(base36)
      assert.equal(expectKind(parseModelReference(`ipfs://${b36}`, {}, opts()), 'ipfs').cid, cidV1)
    })

    it('rejects bad CIDs and path tricks', () => {
      assertModelError(() => parseModelReference('ipfs://not-a-cid', {}, opts()), /not a valid CID/)
      assertModelError(() => parseModelReference('ipfs://', {}, opts()))
      assertModelError(() => parseModelReference(`ipfs://${cidV1}/../etc`, {}, opts()), /\.\./)
      assertModelError(() => parseModelReference(`/ipfs/${cidV1}//x`, {}, opts()))
    })

    it('does not read short names as CIDs', () => {
      assert.equal(parseModelReference('bafy', {}, opts()).kind, 'hub')
      assert.equal(parseModelReference('QmSomething', {}, opts()).kind, 'hub')
    })
  })

  describe('invalid ids', () => {
    it('rejects empty, blank and padded ids', () => {
      assertModelError(() => parseModelReference('', {}, opts()), /empty/)
      assertModelError(() => parseModelReference('   ', {}, opts()), /empty/)
      assertModelError(() => parseModelReference(' gpt2', {}, opts()), /whitespace/)
      assertModelError(() => parseModelReference(42 as unknown as string, {}, opts()), /string/)
    })

    it('rejects .. tricks, bad characters and malformed repos', () => {
      for (const id of ['org/../etc', 'org/..', '..hidden/x', 'a/b/c', 'org/na me', 'org/name?x=1', 'org/name#x', 'org//name',
        'org/-name', 'org/name-', 'org/na--me', 'org/name.git', 'a\u0000b', '-x', 'org/', '/'.repeat(0) + 'org/name\n']) {
        assertModelError(() => parseModelReference(id, {}, opts()))
      }
    })

    it('rejects malformed revisions', () => {
      assertModelError(() => parseModelReference('gpt2@', {}, opts()), /revision/)
      assertModelError(() => parseModelReference('gpt2@../main', {}, opts()), /revision/)
      assertModelError(() => parseModelReference('gpt2@a b', {}, opts()), /revision/)
      assertModelError(() => parseModelReference('gpt2', { models: { gpt2: { provider: 'huggingface', revision: 'x/../y' } } }, opts()), /revision/)
    })

    it('names the id in the error context', () => {
      try {
        parseModelReference('org/../x', {}, opts())
        assert.fail('expected an error')
      } catch (err) {
        assert.ok(err instanceof ValidationError)
        assert.equal(err.context.model, 'org/../x')
      }
    })

    it('agrees with the hub naming rules', () => {
      assert.ok(isValidHubRepo('Xenova/whisper-tiny.en'))
      assert.ok(isValidHubRepo('a'))
      assert.ok(!isValidHubRepo('x'.repeat(97)))
    })
  })
})
