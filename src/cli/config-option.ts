/** Builds an IpfsAccelerate from the CLI's global options (`--config`). */
import type { Command } from 'commander'
import { IpfsAccelerate } from '../accelerator.js'
import type { ResourcesInit } from '../config/schema.js'

export function acceleratorFrom (command: Command, resources: ResourcesInit = {}): IpfsAccelerate {
  const globals = command.optsWithGlobals() as { config?: string }
  return new IpfsAccelerate(resources, {}, globals.config === undefined ? {} : { configFile: globals.config })
}
