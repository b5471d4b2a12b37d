/**
 * Preloaded (`--import`) into a CLI child process: fails every write under IA_TEST_FAULT_UNDER with the
 * errno code IA_TEST_FAULT_CODE (fault-fs.ts), as a disk that fills up while the command runs would.
 */
import { injectFaults } from '../content/fault-fs.js'

const under = process.env.IA_TEST_FAULT_UNDER
const code = process.env.IA_TEST_FAULT_CODE ?? 'ENOSPC'
if (under !== undefined && under !== '') {
  // writeFile is left alone: fault-fs.ts fails it with ENOSPC whatever the code
  await injectFaults(({ op, file }) => op !== 'writeFile' && file.startsWith(under) ? { fail: code } : undefined)
}
