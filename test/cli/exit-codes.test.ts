import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** Runs the CLI with only the given IPFS_ACCELERATE_* variables (none from the calling shell). */
const cli = (args: string[], env: Record<string, string> = {}): { status: number | null, stdout: string, stderr: string } => {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('IPFS_ACCELERATE_')))
  const run = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { encoding: 'utf8', timeout: 120_000, env: { ...base, ...env } })
  return { status: run.status, stdout: String(run.stdout), stderr: String(run.stderr) }
}

describe('ipfs-accelerate exit codes', () => {
  it('exits 2 with commander\'s message on every usage error', () => {
    const root = mkdtempSync(join(tmpdir(), 'ia-cli-usage-'))
    try {
      const bogus = cli(['--bogus'])
      assert.equal(bogus.status, 2)
      assert.match(bogus.stderr, /unknown option '--bogus'/)
      const missing = cli(['infer'])
      assert.equal(missing.status, 2)
      assert.match(missing.stderr, /missing required argument 'model'/)
      const layers = cli(['models', 'tiny', 'bert', join(root, 'd'), '--layers', '-1'])
      assert.equal(layers.status, 2)
      assert.match(layers.stderr, /option '--layers <n>' argument '-1' is invalid\. expected a positive integer/)
      const command = cli(['frobnicate'])
      assert.equal(command.status, 2)
      assert.match(command.stderr, /unknown command 'frobnicate'/)
      // an empty path (an unset shell variable) is refused, never taken as the current folder
      for (const [args, field] of [
        [['ipfs', 'pin', 'ls', '--repo', ''], 'repo'], [['models', 'ls', '--cache-dir', ''], 'cache-dir'], [['demo', '--keep', ' '], 'keep'],
        [['ipfs', 'cat', 'bafkqaaa', '--config', ''], 'config'], [['ipfs', 'add', ''], 'path'], [['models', 'tiny', 'bert', ''], 'dir'],
        [['ipfs', 'get', 'bafkqaaa', '-o', ''], 'output']
      ] as const) {
        const run = cli([...args])
        assert.equal(run.status, 2, args.join(' '))
        assert.match(run.stderr, new RegExp(`ValidationError: ${field}: is empty`), args.join(' '))
      }
    } finally {
      rmSync(root, { recursive: true, force: true })
    }
  })

  it('exits 0 for --help and --version', () => {
    const help = cli(['--help'])
    assert.equal(help.status, 0)
    assert.match(help.stdout, /Usage: ipfs-accelerate/)
    const version = cli(['--version'])
    assert.equal(version.status, 0)
    assert.equal(version.stdout.trim(), (JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version)
    assert.equal(cli(['models', 'tiny', '--help']).status, 0)
  })
})

describe('ipfs-accelerate hardware reads the configuration', () => {
  it('refuses a bad --config file, IPFS_ACCELERATE_CONFIG or variable with exit 2, naming the culprit', () => {
    const root = mkdtempSync(join(tmpdir(), 'ia-cli-hwcfg-'))
    try {
      const file = join(root, 'bad.json')
      writeFileSync(file, JSON.stringify({ hardware: { batch_size: 0 } }))
      const bad = cli(['--config', file, 'hardware'])
      assert.equal(bad.status, 2)
      assert.match(bad.stderr, /^ValidationError: invalid configuration in config file .*bad\.json: hardware\.batch_size: Too small/)
      assert.equal(bad.stdout, '')
      const level = cli(['hardware'], { IPFS_ACCELERATE_LOGGING_LEVEL: 'verbose' })
      assert.equal(level.status, 2)
      assert.match(level.stderr, /IPFS_ACCELERATE_LOGGING_LEVEL \(logging\.level\): Invalid option/)
      const missing = cli(['hardware'], { IPFS_ACCELERATE_CONFIG: join(root, 'missing.json') })
      assert.equal(missing.status, 2)
      assert.match(missing.stderr, /config file .*missing\.json cannot be read/)
    } finally {
      rmSync(root, { recursive: true, force: true })
    }
  })

  it('applies logging: at debug level each probe\'s finding is logged to stderr', () => {
    const run = cli(['hardware'], { IPFS_ACCELERATE_LOGGING_LEVEL: 'debug' })
    assert.equal(run.status, 0, run.stderr)
    assert.equal(JSON.parse(run.stdout).cpu.available, true)
    const lines = run.stderr.split('\n').filter(l => l.startsWith('{')).map(l => JSON.parse(l) as { level: number, ns: string, backend: string })
    assert.ok(lines.some(l => l.level === 20 && l.ns === 'ipfs-accelerate:hardware' && l.backend === 'cpu'), run.stderr)
  })
})
