import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { BUILTIN_MODEL_ALIASES, resolveModelAlias } from '../../src/models/model-aliases.js'
import { ValidationError } from '../../src/errors.js'

describe('model aliases', () => {
  it('maps the seed names onto repositories with ONNX weights', () => {
    assert.equal(resolveModelAlias('bert-base-uncased'), 'Xenova/bert-base-uncased')
    assert.equal(resolveModelAlias('gpt2'), 'Xenova/gpt2')
    for (const id of ['vit-base-patch16-224', 'google/vit-base-patch16-224', 'microsoft/vit-base-patch16-224']) {
      assert.equal(resolveModelAlias(id), 'Xenova/vit-base-patch16-224')
    }
    for (const size of ['tiny', 'base', 'small']) {
      assert.equal(resolveModelAlias(`openai/whisper-${size}`), `Xenova/whisper-${size}`)
    }
    assert.equal(resolveModelAlias('openai/clip-vit-base-patch32'), 'Xenova/clip-vit-base-patch32')
    assert.equal(resolveModelAlias('facebook/wav2vec2-base-960h'), 'Xenova/wav2vec2-base-960h')
    assert.equal(resolveModelAlias('sentence-transformers/all-MiniLM-L6-v2'), 'Xenova/all-MiniLM-L6-v2')
  })

  it('leaves ids that are no alias unchanged', () => {
    assert.equal(resolveModelAlias('Xenova/gpt2'), 'Xenova/gpt2')
    assert.equal(resolveModelAlias('someone/something'), 'someone/something')
  })

  it('is frozen and every target is an org/name repository', () => {
    assert.ok(Object.isFrozen(BUILTIN_MODEL_ALIASES))
    for (const target of Object.values(BUILTIN_MODEL_ALIASES)) assert.match(target, /^[\w.-]+\/[\w.-]+$/)
  })

  it('lets config aliases add names and override built-in ones', () => {
    const aliases = { gpt2: 'onnx-community/gpt2-ONNX', 'my-embedder': 'Org/embedder' }
    assert.equal(resolveModelAlias('gpt2', aliases), 'onnx-community/gpt2-ONNX')
    assert.equal(resolveModelAlias('my-embedder', aliases), 'Org/embedder')
    assert.equal(resolveModelAlias('bert-base-uncased', aliases), 'Xenova/bert-base-uncased')
  })

  it('follows chains through config and built-in aliases', () => {
    assert.equal(resolveModelAlias('fast', { fast: 'bert-base-uncased' }), 'Xenova/bert-base-uncased')
  })

  it('reports an alias cycle as a ValidationError on model_aliases', () => {
    assert.throws(() => resolveModelAlias('a', { a: 'b', b: 'a' }), (err: unknown) => {
      assert.ok(err instanceof ValidationError)
      assert.equal(err.context.field, 'model_aliases')
      assert.match(err.message, /cycle/)
      return true
    })
  })

  it('does not treat inherited object keys as aliases', () => {
    assert.equal(resolveModelAlias('constructor'), 'constructor')
    assert.equal(resolveModelAlias('toString', {}), 'toString')
  })
})
