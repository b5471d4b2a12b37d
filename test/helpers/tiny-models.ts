/**
 * Builds the tiny models a test file needs once, in a temp folder, and removes them afterwards.
 * `IPFS_ACCELERATE_TEST_MODELS` may point at a folder to reuse between runs.
 */
import { mkdtempSync, rmSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildTinyModel } from '../../src/models/tiny/index.js'
import type { TinyFamily, TinyModelOptions } from '../../src/models/tiny/options.js'

export interface TinyModels {
  root: string
  dir: (family: TinyFamily) => string
  cleanup: () => void
}

export async function tinyModels (families: TinyFamily[], options: Partial<Record<TinyFamily, TinyModelOptions>> = {}): Promise<TinyModels> {
  const root = mkdtempSync(join(tmpdir(), 'ia-tiny-'))
  await Promise.all(families.map(async f => await buildTinyModel(f, join(root, f), options[f])))
  return {
    root,
    dir: f => join(root, f),
    cleanup: () => { if (existsSync(root)) rmSync(root, { recursive: true, force: true }) }
  }
}
