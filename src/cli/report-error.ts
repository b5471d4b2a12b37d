/** Prints an error for a person (name, message, the field or file it concerns) and picks the exit code. */
import { AccelerateError, ValidationError } from '../errors.js'

export function reportError (err: unknown, stream: NodeJS.WritableStream = process.stderr): number {
  if (err instanceof AccelerateError) {
    stream.write(`${err.name}: ${err.message}\n`)
    if (err instanceof ValidationError && err.issues.length > 1) {
      for (const issue of err.issues) stream.write(`  - ${issue.path}: ${issue.message}\n`)
    }
    return err instanceof ValidationError ? 2 : 1
  }
  stream.write(`Error: ${err instanceof Error ? err.message : String(err)}\n`)
  return 1
}
