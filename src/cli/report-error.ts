/** Prints an error for a person (name, message, the field or file it concerns) and picks the exit code. */
import { AccelerateError, ValidationError, toStorageError } from '../errors.js'

/**
 * `operation` names what was running (`ipfs add`). A failure of the local disk that no command turned
 * into one of ours (a bare ENOSPC, EACCES...) is reported here, once for every command, as a StorageError.
 */
export function reportError (err: unknown, stream: NodeJS.WritableStream = process.stderr, operation = 'ipfs-accelerate'): number {
  err = toStorageError(err, operation) ?? err
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
