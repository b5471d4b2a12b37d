#!/usr/bin/env node
/**
 * The `ipfs-accelerate` command. One file per command under commands/; this file only wires them.
 * Exit codes: 0 success, 1 an operation failed, 2 bad usage or input (ValidationError).
 */
import { Command } from 'commander'
import { registerDemo } from './commands/demo.js'
import { registerModels } from './commands/models.js'
import { registerHardware } from './commands/hardware.js'
import { registerInfer } from './commands/infer.js'
import { registerIpfs } from './commands/ipfs.js'
import { reportError } from './report-error.js'

const program = new Command()
  .name('ipfs-accelerate')
  .description('Hardware-aware Hugging Face inference with content-addressed models over IPFS')
  .option('--config <file>', 'JSON config file (same keys as the resources object)')
  .showHelpAfterError()

registerDemo(program)
registerModels(program)
registerHardware(program)
registerInfer(program)
registerIpfs(program)

program.parseAsync(process.argv).catch((err: unknown) => {
  process.exitCode = reportError(err)
})
