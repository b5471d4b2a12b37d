/** `ipfs-accelerate models ...`: build tiny test models; publish, pull and list model packs. */
import type { Command } from 'commander'
import { InvalidArgumentError } from 'commander'
import { buildTinyModel } from '../../models/tiny/index.js'
import { TINY_FAMILIES, type TinyFamily, type TinyModelOptions } from '../../models/tiny/options.js'
import { registerModelPackCommands } from './model-pack-commands.js'
import { pathValue } from '../path-value.js'

function positiveInt (value: string): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive integer')
  return n
}

export function registerModels (program: Command): void {
  const models = program.command('models').description('work with models')
  registerModelPackCommands(models)
  models.command('tiny')
    .description(`write a deterministic tiny random-weight model (${TINY_FAMILIES.join(', ')}) that transformers.js loads`)
    .argument('<family>', TINY_FAMILIES.join(' | '))
    .argument('<dir>', 'folder to write: new, empty, or the same tiny model (same family and options), which is replaced; anything else is refused (exit 2)', pathValue('dir'))
    .option('--hidden-size <n>', 'hidden size', positiveInt)
    .option('--layers <n>', 'transformer layers', positiveInt)
    .option('--heads <n>', 'attention heads', positiveInt)
    .option('--vocab <n>', 'vocabulary size', positiveInt)
    .option('--positions <n>', 'longest sequence', positiveInt)
    .option('--seed <n>', 'seed of the random weights', positiveInt)
    .addHelpText('after', '\nThe files are written into a temporary folder next to <dir> and renamed into place, so a failed\nbuild leaves nothing behind.')
    .action(async (family: string, dir: string, opts: { hiddenSize?: number, layers?: number, heads?: number, vocab?: number, positions?: number, seed?: number }) => {
      const options: TinyModelOptions = {
        hiddenSize: opts.hiddenSize,
        numLayers: opts.layers,
        numHeads: opts.heads,
        vocabSize: opts.vocab,
        maxPositions: opts.positions,
        seed: opts.seed
      }
      for (const k of Object.keys(options) as Array<keyof TinyModelOptions>) if (options[k] === undefined) delete options[k]
      const info = await buildTinyModel(family as TinyFamily, dir, options)
      process.stdout.write(JSON.stringify(info, null, 2) + '\n')
    })
}
