import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

describe('ipfs-accelerate demo (the main job)', () => {
  it('runs one inference per model family offline and prints seed-shaped results', () => {
    const home = mkdtempSync(join(tmpdir(), 'ia-demo-'))
    try {
      const run = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'demo'], {
        encoding: 'utf8',
        timeout: 240_000,
        env: { ...process.env, IPFS_ACCELERATE_HOME: home }
      })
      assert.equal(run.status, 0, run.stderr)
      const sections = new Map<string, Record<string, unknown>>()
      for (const block of run.stdout.split('\n== ').slice(1)) {
        const newline = block.indexOf('\n')
        sections.set(block.slice(0, newline), JSON.parse(block.slice(newline + 1)))
      }
      const get = (prefix: string): Record<string, unknown> => {
        const key = [...sections.keys()].find(k => k.startsWith(prefix))
        assert.ok(key !== undefined, `section ${prefix} missing`)
        return sections.get(key) as Record<string, unknown>
      }
      assert.ok(Array.isArray(get('text_embedding').embedding))
      assert.equal(typeof get('text_generation').text, 'string')
      assert.equal(typeof get('image_classification').label, 'string')
      assert.equal(typeof get('multimodal').label, 'string')
      assert.equal(typeof get('audio_transcription (whisper)').confidence, 'number')
      assert.equal(typeof get('audio_transcription (wav2vec2').text, 'string')
      for (const [title, result] of sections) {
        if (title === 'hardware' || title === 'initEndpoints' || title.startsWith('publishModel') || title.startsWith('storeToIpfs')) continue
        assert.equal(typeof result.inference_time, 'number', `${title} has inference_time`)
        assert.equal(typeof result.model, 'string', `${title} has model`)
      }
      assert.match(String(get('publishModel').cid), /^Qm/)
      assert.equal(get('storeToIpfs').bytes, '{"model":"bert","result":[0.1,0.2,0.3]}')
    } finally {
      rmSync(home, { recursive: true, force: true })
    }
  })

  it('--keep with a relative folder runs the models it wrote there (not hub ids of the same names)', () => {
    const cwd = mkdtempSync(join(tmpdir(), 'ia-demo-keep-'))
    try {
      // run from another folder: `--keep .` once made `join('.', 'gpt2')` the hub id `gpt2`
      const run = spawnSync(process.execPath, ['--import', import.meta.resolve('tsx'), join(process.cwd(), 'src/cli/main.ts'), 'demo', '--keep', '.'], {
        cwd,
        encoding: 'utf8',
        timeout: 240_000,
        env: { ...process.env, IPFS_ACCELERATE_HOME: join(cwd, 'home') }
      })
      assert.equal(run.status, 0, run.stderr)
      assert.ok(existsSync(join(cwd, 'gpt2', 'config.json')), 'the models stay in the folder given')
    } finally {
      rmSync(cwd, { recursive: true, force: true })
    }
  })
})
