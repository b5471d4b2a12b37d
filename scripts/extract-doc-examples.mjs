#!/usr/bin/env node
// Copies every ```ts block of README.md and docs/*.md into test/doc-examples/ so that `npm run
// typecheck` compiles them against the sources: an example that no longer matches the API fails CI.
import { readFileSync, readdirSync, writeFileSync, mkdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'

const out = 'test/doc-examples'
rmSync(out, { recursive: true, force: true })
mkdirSync(out, { recursive: true })
const files = ['README.md', ...readdirSync('docs').filter(f => f.endsWith('.md')).map(f => join('docs', f))]
let count = 0
for (const file of files) {
  const text = readFileSync(file, 'utf8')
  let i = 0
  for (const match of text.matchAll(/```ts\n([\s\S]*?)```/g)) {
    const name = `${file.replace(/[/.]/g, '_')}_${i++}.ts`
    // Each block is a module of its own; top-level await needs the `export {}`.
    writeFileSync(join(out, name), `// Extracted from ${file}; do not edit.\n${match[1]}\nexport {}\n`)
    count++
  }
}
console.log(`extracted ${count} documentation examples into ${out}/`)
