/** `ipfs-accelerate infer <model> <json-input>`: one inference, result as JSON. */
import type { Command } from 'commander'
import { ValidationError } from '../../errors.js'
import type { EndpointType } from '../../config/schema.js'
import { acceleratorFrom } from '../config-option.js'
import { createProgressReporter } from '../progress-bar.js'

export function registerInfer (program: Command): void {
  program.command('infer')
    .description('run one inference and print the seed-shaped result as JSON')
    .argument('<model>', 'hub id, local folder or custom:name')
    .argument('<input>', 'the input as JSON, e.g. \'{"input_ids":[101,2054,2003,102]}\'')
    .option('-t, --endpoint-type <type>', 'task (default: inferred from the model)', 'auto')
    .action(async (model: string, inputJson: string, opts: { endpointType: EndpointType }, command: Command) => {
      let input: unknown
      try {
        input = JSON.parse(inputJson)
      } catch (cause) {
        throw new ValidationError('input is not valid JSON', [{ path: 'input', message: (cause as Error).message }], { cause })
      }
      const acc = acceleratorFrom(command)
      // Model downloads show a bar on a terminal, a line per file otherwise (stderr: stdout is the result).
      const progress = createProgressReporter(process.stderr)
      try {
        const result = await acc.processAsync(model, input, opts.endpointType, {
          onProgress: event => { progress.onProgress(event as Parameters<typeof progress.onProgress>[0]) }
        })
        progress.stop()
        process.stdout.write(JSON.stringify(result) + '\n')
      } finally {
        progress.stop()
        await acc.stop()
      }
    })
}
