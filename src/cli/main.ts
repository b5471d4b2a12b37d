#!/usr/bin/env node
/**
 * The `ipfs-accelerate` command. One file per command under commands/; this file only wires them.
 * Exit codes: 0 success (and `--help`, `--version`), 1 an operation failed, 2 bad usage (an unknown
 * option or command, a missing or malformed argument) or bad input (ValidationError).
 */
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Command, CommanderError } from 'commander'
import { registerDemo } from './commands/demo.js'
import { registerModels } from './commands/models.js'
import { registerHardware } from './commands/hardware.js'
import { registerInfer } from './commands/infer.js'
import { registerIpfs } from './commands/ipfs.js'
import { reportError } from './report-error.js'
import { pathValue } from './path-value.js'

/** This package's version, from the package.json above this file (src/cli/ or dist/src/cli/). */
function packageVersion (): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string, version?: string }
      if (pkg.name === 'ipfs-accelerate' && pkg.version !== undefined) return pkg.version
    } catch { /* none here, or unreadable: look further up */ }
    if (dirname(dir) === dir) return 'unknown'
  }
}

const program = new Command()
  .name('ipfs-accelerate')
  .description('Hardware-aware Hugging Face inference with content-addressed models over IPFS')
  .version(packageVersion())
  .option('--config <file>', 'JSON config file (same keys as the resources object)', pathValue('config'))
  .showHelpAfterError()
  // Commander exits with 1 on usage errors; throwing instead lets them take exit code 2 below. Set before
  // the commands are added, which inherit it.
  .exitOverride()

/** The command whose action runs (`ipfs add`): errors name it. */
let running = program.name()
program.hook('preAction', (_program, action) => {
  const names: string[] = []
  for (let c: Command | null = action; c !== null && c !== program; c = c.parent) names.unshift(c.name())
  running = names.join(' ')
})

registerDemo(program)
registerModels(program)
registerHardware(program)
registerInfer(program)
registerIpfs(program)

program.parseAsync(process.argv).catch((err: unknown) => {
  // Commander has already printed its message (or the help); only the exit code is left to choose.
  if (err instanceof CommanderError) process.exitCode = err.exitCode === 0 ? 0 : 2
  else process.exitCode = reportError(err, process.stderr, running)
})
