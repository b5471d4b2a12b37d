/** `ipfs-accelerate hardware`: what the probes found, as JSON. */
import type { Command } from 'commander'
import { HardwareDetection } from '../../hardware/index.js'
import { componentLogger, createLogger } from '../../logging/logger.js'
import { cliConfig } from '../config-option.js'

export function registerHardware (program: Command): void {
  program.command('hardware')
    .description('detect the hardware backends this machine offers and print the report as JSON')
    .action((_opts: unknown, command: Command) => {
      // Like every command: a bad --config file or IPFS_ACCELERATE_* variable is a ValidationError (exit 2),
      // and `logging` applies (at debug level each probe's finding is logged).
      const config = cliConfig(command)
      const logger = createLogger(config.logging)
      try {
        const report = new HardwareDetection({ logger: componentLogger(logger, 'hardware') }).detectAllHardware()
        process.stdout.write(JSON.stringify(report, null, 2) + '\n')
      } finally {
        logger.flush()
      }
    })
}
