/** `ipfs-accelerate hardware`: what the probes found, as JSON. */
import type { Command } from 'commander'
import { HardwareDetection } from '../../hardware/index.js'

export function registerHardware (program: Command): void {
  program.command('hardware')
    .description('detect the hardware backends this machine offers and print the report as JSON')
    .action(() => {
      process.stdout.write(JSON.stringify(new HardwareDetection().detectAllHardware(), null, 2) + '\n')
    })
}
