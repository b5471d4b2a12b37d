/**
 * Test helper: in-process fault injection on node:fs/promises FileHandle writes, as a full disk (ENOSPC),
 * a failing disk (EIO) or a slow one would give. It patches FileHandle.prototype (shared by every handle
 * of the process) and tells files apart by the path behind the descriptor (Linux: /proc/self/fd).
 */
import { existsSync, readlinkSync } from 'node:fs'
import fs from 'node:fs/promises'

/** False where descriptors cannot be mapped to paths (no /proc): tests using faults skip with this message. */
export const faultsUnsupported: string | false = existsSync('/proc/self/fd') ? false : 'fault injection needs /proc/self/fd (Linux)'

export type FaultOp = 'write' | 'writev' | 'writeFile'

/** What to do with one call: fail it with an errno code, write only half its bytes (as a full disk does first), or delay it. */
export type FaultAction = { fail: string } | { short: true } | { delayMs: number }

export type FaultRule = (call: { op: FaultOp, file: string }) => FaultAction | undefined

function fileOf (fd: number): string {
  try {
    return readlinkSync(`/proc/self/fd/${fd}`)
  } catch {
    return ''
  }
}

export function errnoError (code: string, syscall: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: injected fault, ${syscall}`), { code, syscall })
}

/** Applies `rule` to every FileHandle write of this process until the returned function is called. */
export async function injectFaults (rule: FaultRule): Promise<() => void> {
  const probe = await fs.open(process.execPath, 'r')
  const proto = Object.getPrototypeOf(probe) as Record<FaultOp, (...args: any[]) => Promise<any>>
  await probe.close()
  const original = { write: proto.write, writev: proto.writev, writeFile: proto.writeFile }
  const wrap = (op: FaultOp, short: (self: any, args: any[]) => Promise<any>) => async function (this: fs.FileHandle, ...args: any[]) {
    const action = rule({ op, file: fileOf(this.fd) })
    if (action !== undefined) {
      if ('fail' in action) throw errnoError(action.fail, op)
      if ('delayMs' in action) await new Promise(resolve => setTimeout(resolve, action.delayMs))
      else return await short(this, args)
    }
    return await original[op].apply(this, args)
  }
  proto.write = wrap('write', async (self, args) => {
    const [buffer, a, b, c] = args as [Uint8Array, any, any, any]
    const options = typeof a === 'object' && a !== null ? a : { offset: a, length: b, position: c }
    const offset = options.offset ?? 0
    const length = options.length ?? buffer.byteLength - offset
    return await original.write.call(self, buffer, offset, Math.floor(length / 2), options.position)
  })
  proto.writev = wrap('writev', async (self, args) => {
    const [buffers, position] = args as [Uint8Array[], number | undefined]
    let left = Math.floor(buffers.reduce((n, b) => n + b.byteLength, 0) / 2)
    const half: Uint8Array[] = []
    for (const b of buffers) {
      if (left === 0) break
      half.push(b.subarray(0, Math.min(left, b.byteLength)))
      left -= half[half.length - 1].byteLength
    }
    return await original.writev.call(self, half, position)
  })
  proto.writeFile = wrap('writeFile', async () => { throw errnoError('ENOSPC', 'writeFile') })
  return () => Object.assign(proto, original)
}

/** Runs `fn` with `rule` applied to this process's writes, restored after it whatever it does. */
export async function withFaults<T> (rule: FaultRule, fn: () => Promise<T>): Promise<T> {
  const restore = await injectFaults(rule)
  try {
    return await fn()
  } finally {
    restore()
  }
}
