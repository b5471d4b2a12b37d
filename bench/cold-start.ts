/**
 * Cold start: from spawning a fresh `node` process to its first embedding of a prebuilt tiny BERT,
 * for IpfsAccelerate (the built package, and the TypeScript sources under tsx) and for a bare
 * transformers.js script, with a breakdown of where the time goes. Runs of the variants are
 * interleaved; the table gives medians over the runs.
 *
 *   npx tsx bench/cold-start.ts [--runs 7]
 *
 * The built package is `dist/` when it exists (run `npm run build` first to measure the current
 * sources that way); otherwise the sources are compiled with tsc into a temp folder for this run.
 */
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, symlinkSync, writeFileSync, rmSync, statSync, readdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { benchBert } from './lib/models.js'
import { median, fmt, shuffle } from './lib/stats.js'
import { markdownTable } from './lib/table.js'
import { printHeader, argNumber } from './lib/env.js'

const RUNS = argNumber('runs', 7)
const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)))
const CHILD = join(ROOT, 'bench', 'lib', 'cold-start-child.mjs')

interface Variant {
  name: string
  /** Arguments after `node`, before the child script. */
  nodeArgs: string[]
  mode: 'empty' | 'transformers' | 'accelerate' | 'accelerate-init'
  entry?: string
}

interface Run {
  spawn: number
  /** Parent's clock when the child's result line arrived. */
  printed: number
  exited: number
  child: { marks: Record<string, number>, load_time_ms?: number, inference_time_ms?: number, second_inference_time_ms?: number, length?: number }
}

/** The built package: dist/ if present, else a tsc build into a temp folder that resolves this checkout's node_modules. */
function builtEntry (): { entry: string, note: string } {
  const dist = join(ROOT, 'dist', 'src', 'index.js')
  if (existsSync(dist)) {
    const builtAt = statSync(dist).mtimeMs
    const newer = sourceFiles(join(ROOT, 'src')).filter(f => statSync(f).mtimeMs > builtAt).length
    return {
      entry: dist,
      note: `built package: dist/ of this checkout${newer === 0 ? '' : ` (${newer} source file(s) changed since it was built: run \`npm run build\` to measure them)`}`
    }
  }
  const out = join(tmpdir(), 'ipfs-accelerate-bench-dist')
  rmSync(out, { recursive: true, force: true })
  mkdirSync(out, { recursive: true })
  const t0 = performance.now()
  const tsc = spawnSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(ROOT, 'tsconfig.build.json'), '--outDir', out], { cwd: ROOT, encoding: 'utf8' })
  const entry = join(out, 'src', 'index.js')
  if (!existsSync(entry)) throw new Error(`tsc did not produce ${entry}:\n${tsc.stdout}${tsc.stderr}`)
  writeFileSync(join(out, 'package.json'), JSON.stringify({ type: 'module' }))
  symlinkSync(join(ROOT, 'node_modules'), join(out, 'node_modules'), 'dir')
  return { entry, note: `built package: no dist/, so the sources were compiled with tsc into ${out} (${((performance.now() - t0) / 1000).toFixed(0)} s, not counted)` }
}

function sourceFiles (dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap(e => e.isDirectory() ? sourceFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [])
}

async function runOnce (v: Variant, modelDir: string): Promise<Run> {
  const env = { ...process.env }
  delete env.NODE_OPTIONS
  const args = [...v.nodeArgs, CHILD, v.mode, modelDir, ...(v.entry === undefined ? [] : [v.entry])]
  return await new Promise((resolvePromise, reject) => {
    const spawnAt = performance.timeOrigin + performance.now()
    const child = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    let printed: number | undefined
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString()
      if (printed === undefined && stdout.includes('\n')) printed = performance.timeOrigin + performance.now()
    })
    child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
    child.on('error', reject)
    child.on('exit', code => {
      const exited = performance.timeOrigin + performance.now()
      if (code !== 0 || printed === undefined) {
        reject(new Error(`${v.name}: child exited with ${code}\n${stderr}`))
        return
      }
      const parsed = JSON.parse(stdout.split('\n')[0]) as Run['child']
      if (v.mode !== 'empty' && parsed.length !== 32) reject(new Error(`${v.name}: unexpected embedding length ${parsed.length}`))
      resolvePromise({ spawn: spawnAt, printed, exited, child: parsed })
    })
  })
}

const ms = (values: number[]): string => values.length === 0 || values.some(v => !Number.isFinite(v)) ? '–' : fmt(median(values))

async function main (): Promise<void> {
  const started = Date.now()
  const model = await benchBert('tiny')
  const built = builtEntry()
  printHeader('Cold start', import.meta.url, [
    `${RUNS} runs per variant, interleaved; every run is a fresh \`node\` process (${process.version}) loading the prebuilt default tiny BERT from disk (files in the OS page cache after the first run)`,
    'the IpfsAccelerate child constructs an instance (result cache off) and awaits one `processAsync(dir, { input_ids: [101, 2054, 2003, 102] }, \'text_embedding\')`; the transformers.js child creates `pipeline(\'feature-extraction\', dir)` and embeds \'what is\' (the same 4 tokens)',
    built.note,
    `child script: bench/lib/cold-start-child.mjs`
  ])
  const tsx = ['--import', 'tsx']
  const srcEntry = pathToFileURL(join(ROOT, 'src', 'index.ts')).href
  const builtUrl = pathToFileURL(built.entry).href
  const variants: Variant[] = [
    { name: '`node`, empty script (runtime boot)', nodeArgs: [], mode: 'empty' },
    { name: '`node --import tsx`, empty script', nodeArgs: tsx, mode: 'empty' },
    { name: 'bare transformers.js: pipeline + 1 embedding (`node`)', nodeArgs: [], mode: 'transformers' },
    { name: 'IpfsAccelerate, built package: processAsync (`node`)', nodeArgs: [], mode: 'accelerate', entry: builtUrl },
    { name: 'IpfsAccelerate, built package: step by step (`node`)', nodeArgs: [], mode: 'accelerate-init', entry: builtUrl },
    { name: 'IpfsAccelerate, sources: processAsync (`node --import tsx`)', nodeArgs: tsx, mode: 'accelerate', entry: srcEntry }
  ]
  const runs = new Map<string, Run[]>(variants.map(v => [v.name, []]))
  // One unmeasured run of each first: fills the page cache and tsx's transform cache.
  for (const v of variants) await runOnce(v, model.dir)
  for (let r = 0; r < RUNS; r++) {
    for (const v of shuffle([...variants], 100 + r)) runs.get(v.name)?.push(await runOnce(v, model.dir))
  }

  const rows = variants.map(v => {
    const rs = runs.get(v.name) ?? []
    const m = (f: (r: Run) => number | undefined): string => ms(rs.map(r => f(r) ?? Number.NaN))
    const mark = (r: Run, k: string): number => r.child.marks[k] ?? Number.NaN
    const totals = rs.map(r => r.printed - r.spawn)
    const isInit = v.mode === 'accelerate-init'
    return [
      v.name,
      m(r => mark(r, 'start') - r.spawn),
      v.mode === 'empty' ? '–' : m(r => mark(r, 'imported') - mark(r, 'start')),
      isInit ? m(r => mark(r, 'hardware') - mark(r, 'constructed')) : '–',
      isInit ? m(r => mark(r, 'ready') - mark(r, 'hardware') - (r.child.load_time_ms ?? Number.NaN)) : '–',
      isInit ? m(r => r.child.load_time_ms) : v.mode === 'transformers' ? m(r => mark(r, 'ready') - mark(r, 'imported')) : '–',
      v.mode === 'empty' ? '–' : m(r => mark(r, 'first') - mark(r, isInit ? 'ready' : 'imported')),
      v.mode === 'empty' ? '–' : m(r => mark(r, 'first') - r.spawn),
      `${fmt(median(totals))} (${fmt(Math.min(...totals))}–${fmt(Math.max(...totals))})`,
      v.mode.startsWith('accelerate') ? m(r => r.child.second_inference_time_ms) : '–'
    ]
  })
  console.log(markdownTable([
    'variant',
    'boot ms',
    'import ms',
    'hardware detection ms',
    'worker start ms',
    'model load + warm-up ms',
    'first call ms',
    'spawn → first embedding ms',
    'spawn → printed result ms (min–max)',
    'next call in worker ms'
  ], rows))
  console.log(`
Columns: boot = spawn to the child script's first line (node start, plus tsx's loader where used); import = \`await import()\` of the library;
hardware detection = \`detectAllHardware()\` (the engine runs it before starting its worker); worker start = starting the
inference worker and its own imports (initEndpoints wall time less hardware detection and the engine's reported load_time);
model load + warm-up = the engine's load_time (transformers.js: \`pipeline()\`); first call = the awaited call that returns the
first embedding (for "processAsync" rows it includes hardware detection, worker start and model load); next call = a second
request's in-worker inference_time, for scale. Times are medians over the runs.`)
  console.log(`\nTotal run time ${((Date.now() - started) / 1000).toFixed(0)} s.`)
}

await main()
