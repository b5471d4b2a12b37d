import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import * as api from '../../src/index.js'
import { errorClasses, ValidationError, ModelLoadError, serializeError, deserializeError } from '../../src/errors.js'

describe('errors', () => {
  it('docs/errors.md lists every error class with its code', () => {
    const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8')
    for (const [name, Cls] of Object.entries(errorClasses)) {
      const err = new (Cls as new (m: string) => { code: string })('x')
      assert.match(doc, new RegExp(`\\| \`${name}\` \\| \`${err.code}\` \\|`), `${name} missing from docs/errors.md`)
    }
    const documented = [...doc.matchAll(/^\| `(\w+Error)` \|/gm)].map(m => m[1]).sort()
    assert.deepEqual(documented, Object.keys(errorClasses).sort())
  })

  it('exports every class from the package, with name equal to the class name', () => {
    for (const [name, Cls] of Object.entries(errorClasses)) {
      assert.equal((api as Record<string, unknown>)[name], Cls)
      const options = { cause: new Error('inner'), context: { model: 'm' } }
      const err = Cls === ValidationError
        ? new ValidationError('boom', [{ path: 'x', message: 'bad' }], options)
        : new (Cls as new (m: string, o?: object) => Error)('boom', options)
      assert.equal(err.name, name)
      assert.ok(err instanceof Error)
      assert.equal((err.cause as Error).message, 'inner')
    }
  })

  it('survives a trip across a worker boundary', () => {
    const err = ValidationError.field('input_ids[2]', 'token id must not be negative, got -1', { model: 'bert' })
    const back = deserializeError(serializeError(err))
    assert.ok(back instanceof ValidationError)
    assert.equal(back.message, err.message)
    assert.equal(back.context.field, 'input_ids[2]')
    assert.deepEqual(back.issues, err.issues)
    const load = deserializeError(serializeError(new ModelLoadError('gone', { context: { file: '/x/config.json' } })))
    assert.ok(load instanceof ModelLoadError)
    assert.equal(load.context.file, '/x/config.json')
  })
})
