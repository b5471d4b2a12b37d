#!/usr/bin/env node
// Runs every test/**/*.test.ts with node's own test runner through tsx.
// Node 20's --test does not expand globs or pick up .ts files, so we list them here.
import { readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { spawnSync } from 'node:child_process'

function find (dir) {
  const out = []
  for (const name of readdirSync(dir)) {
    const path = join(dir, name)
    if (statSync(path).isDirectory()) out.push(...find(path))
    else if (name.endsWith('.test.ts')) out.push(path)
  }
  return out
}

const filters = process.argv.slice(2)
const files = find('test').sort().filter(f => filters.length === 0 || filters.some(x => f.includes(x)))
if (files.length === 0) {
  console.error('no test files matched')
  process.exit(1)
}
const result = spawnSync(process.execPath, [
  '--import', 'tsx',
  '--test', '--test-concurrency=1', '--test-reporter=spec',
  ...files
], { stdio: 'inherit', env: { ...process.env, IPFS_ACCELERATE_TEST: '1' } })
process.exit(result.status ?? 1)
