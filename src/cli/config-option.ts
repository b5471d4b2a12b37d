/** The configuration the CLI runs with: the global `--config` file, `IPFS_ACCELERATE_*` variables, defaults. */
import type { Command } from 'commander'
import { IpfsAccelerate } from '../accelerator.js'
import { resolveConfig, type ResolveOptions } from '../config/resolve.js'
import type { ResourcesInit, ResolvedConfig } from '../config/schema.js'

function resolveOptions (command: Command): ResolveOptions {
  const globals = command.optsWithGlobals() as { config?: string }
  return globals.config === undefined ? {} : { configFile: globals.config }
}

/** The resolved config (`--config`, `IPFS_ACCELERATE_*` variables, defaults); a bad one throws ValidationError. */
export function cliConfig (command: Command): ResolvedConfig {
  return resolveConfig({}, resolveOptions(command))
}

/** Builds an IpfsAccelerate from the CLI's global options (`--config`). */
export function acceleratorFrom (command: Command, resources: ResourcesInit = {}): IpfsAccelerate {
  return new IpfsAccelerate(resources, {}, resolveOptions(command))
}
