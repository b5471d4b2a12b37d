/**
 * Commander's parser for a path given as an option or argument. An empty one (`--repo ""`, most often an
 * unset shell variable) is refused with a ValidationError naming it (exit 2), instead of being taken as
 * the current folder.
 */
import { ValidationError } from '../errors.js'

export function pathValue (field: string): (value: string) => string {
  return value => {
    if (value.trim() === '') throw ValidationError.field(field, 'is empty: give a path')
    return value
  }
}
