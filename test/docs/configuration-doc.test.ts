import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { configKeys } from '../../src/config/config-keys.js'

function documentedKeys (): Map<string, string> {
  const doc = readFileSync(new URL('../../docs/configuration.md', import.meta.url), 'utf8')
  const rows = new Map<string, string>()
  for (const match of doc.matchAll(/^\| `([^`]+)` \| ([^|]+) \|/gm)) rows.set(match[1], match[2].trim())
  return rows
}

describe('docs/configuration.md', () => {
  it('documents exactly the keys the schema accepts', () => {
    const schema = configKeys().map(k => k.key).sort()
    const doc = [...documentedKeys().keys()].sort()
    assert.deepEqual(doc, schema)
  })

  it('states each default as the schema has it', () => {
    const doc = documentedKeys()
    for (const key of configKeys()) {
      const expected = key.default === undefined ? '-' : `\`${key.default}\``
      assert.equal(doc.get(key.key), expected, `default of ${key.key}`)
    }
  })
})
